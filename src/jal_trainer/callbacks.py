"""Callbacks that predict on the training set every epoch: memorisation curves and averaged probabilities.

- `EpochProbabilitiesCallback`: one prediction pass over the training rows per epoch, keeping the
  mean of the softmax probabilities over epochs. No clean labels needed. Its ``mean_probabilities``
  are what `jal_trainer.label_issues.find_label_issues` scores best with: pass the callback itself.
- `MemorisationCallback` (extends it, same single pass): also measures how much of the wrong
  labels the model memorises, when the clean labels are known.

Under label noise a cross-entropy model first learns the true classes, then memorises the wrong
labels (Arpit et al., ICML 2017); a robust loss such as JAL keeps predicting the true class.
`MemorisationCallback` measures this at the end of every epoch, on the training set itself:

- ``noisy_memorised``: of the training samples whose label is wrong, the fraction predicted as
  that given wrong label;
- ``noisy_true``: of the same samples, the fraction predicted as their true (clean) label
  (``noisy_memorised + noisy_true <= 1``: the rest is predicted as a third class);
- ``clean_fit``: of the correctly labelled samples, the fraction predicted as their label;
- ``test_accuracy``: the clean test accuracy of the same epoch (``eval_accuracy``, when the
  Trainer evaluates each epoch);
- ``seconds``: the cost of the measurement.

**Cost:** one forward pass (no backward, no augmentation) over the training rows per epoch, with
``trainer.predict``: about a third of a training epoch. Predictions are gathered over all processes
(last batch's padding dropped): the fractions are those of the whole training set on every process.
Only the main process writes files.

Files, in ``args.output_dir``: ``memorisation.json`` (``{"rows": [...]}``, rewritten after every
epoch) and, at the end of training, ``memorisation.png`` (`jal_trainer.report.plot_memorisation`).

Order of events (transformers 5.23): ``on_epoch_end`` runs *before* the epoch's evaluation. The
callback therefore records the row at ``on_epoch_end`` and fills ``test_accuracy`` in
``on_evaluate`` for the same epoch; if a Trainer evaluated first, the value is read from
``state.log_history`` at ``on_epoch_end`` instead. Both orders give the same rows.

Example:
    >>> from jal_trainer.callbacks import MemorisationCallback
    >>> callback = MemorisationCallback(noisy_train)  # doctest: +SKIP
    >>> trainer = JALTrainer(model, args, train_dataset=noisy_train, callbacks=[callback])  # doctest: +SKIP
    >>> trainer.train()  # JALTrainer hands itself to the callback: no bind step  # doctest: +SKIP
    >>> # with a plain transformers.Trainer: MemorisationCallback(noisy_train, trainer=trainer)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

MEMORISATION_JSON = "memorisation.json"
MEMORISATION_PNG = "memorisation.png"
EPOCH_PROBABILITIES = "epoch_probabilities.npz"
# Prefixes of evaluation metrics that measure the clean test set: the per-epoch evaluation (eval_)
# and the final `trainer.evaluate(metric_key_prefix="test")` of `jal train`.
TEST_PREFIXES = ("eval", "test")
_SAME_EPOCH = 1e-6


def memorisation_fractions(
    predictions: np.ndarray, labels: np.ndarray, clean_labels: np.ndarray
) -> dict[str, float | None]:
    """Memorisation statistics of predicted classes against given and clean labels.

    Args:
        predictions: (N,) predicted classes (argmax of the logits).
        labels: (N,) given, possibly wrong, labels.
        clean_labels: (N,) true labels.

    Returns:
        ``noisy_memorised`` and ``noisy_true`` (fractions of the samples with ``label !=
        clean_label``), ``clean_fit`` (fraction of the others predicted as their label). A fraction
        over an empty group is ``None``.

    Example:
        >>> memorisation_fractions(np.array([1, 0, 2, 0]), np.array([1, 1, 1, 0]), np.array([0, 0, 0, 0]))
        {'noisy_memorised': 0.3333333333333333, 'noisy_true': 0.3333333333333333, 'clean_fit': 1.0}
    """
    predictions, labels, clean_labels = (np.asarray(a, dtype=np.int64) for a in (predictions, labels, clean_labels))
    if not predictions.shape == labels.shape == clean_labels.shape or predictions.ndim != 1:
        raise ValueError(
            f"predictions {predictions.shape}, labels {labels.shape} and clean_labels {clean_labels.shape} must all "
            "have the same shape (N,). Pass one entry per training sample, in the same order."
        )
    noisy = labels != clean_labels

    def fraction(hit: np.ndarray, group: np.ndarray) -> float | None:
        return float(hit[group].mean()) if group.any() else None

    return {
        "noisy_memorised": fraction(predictions == labels, noisy),
        "noisy_true": fraction(predictions == clean_labels, noisy),
        "clean_fit": fraction(predictions == labels, ~noisy),
    }


class EpochProbabilitiesCallback(TrainerCallback):
    """Predict on the training rows at the end of every epoch; keep the mean probabilities over epochs.

    The mean over epochs of a model's in-sample probabilities is a cheap ensemble along the
    training trajectory: a wrong label the model fits only late weighs little in it, which makes
    it the best input of `jal_trainer.label_issues.find_label_issues` (measured in
    ``recipes/results/label_issues.md``).

    **Cost:** one forward pass (no backward, no augmentation) over the training rows per epoch,
    with ``trainer.predict`` (about a third of a training epoch), gathered over all processes, so
    every process holds the same mean; and N x K float32 numbers in memory (50,000 x 10: 2 MB).

    **File:** with ``save=True`` the main process writes ``epoch_probabilities.npz`` (``sum``:
    (N, K) float32 sum of the per-epoch probabilities, ``epochs``: how many) to the output
    directory after every epoch, so `find_label_issues` can run later from the run folder and a
    run resumed from its last checkpoint goes on averaging.

    Args:
        trainer: the `transformers.Trainer` to predict with; leave it out when the callback is passed
            to a `JALTrainer`, which hands itself over.
        train_eval_dataset: the training rows as the Trainer reads them, without augmentation, in
            a fixed order: a `datasets.Dataset`, or a `jal_trainer.data.DeviceImageDataset` built
            with ``augment=False``.
        output_dir: where to write files (default: ``args.output_dir``).
        save: write ``epoch_probabilities.npz``.

    Example:
        >>> callback = EpochProbabilitiesCallback(noisy_train)  # doctest: +SKIP
        >>> trainer = JALTrainer(model, args, train_dataset=noisy_train, callbacks=[callback])  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
        >>> find_label_issues(callback, noisy_train).dataset  # doctest: +SKIP
    """

    file_name = EPOCH_PROBABILITIES  # subclasses that keep other rows (jal_trainer.ner.epoch_words) rename it

    def __init__(self, train_eval_dataset: Any, *, trainer: Any = None, output_dir: str | Path | None = None,
                 save: bool = True) -> None:
        self.trainer = trainer
        self.dataset = train_eval_dataset
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.save = save
        self.probability_sum: np.ndarray | None = None
        self.epochs_seen = 0
        self._last: np.ndarray | None = None  # the latest epoch's probabilities, to step a saved sum back
        self.resume_checkpoint: str | None = None  # set by `jal train` when it resumes

    @property
    def mean_probabilities(self) -> np.ndarray:
        """(N, K) float64 mean over the epochs seen of the softmax probabilities, rows in dataset order."""
        if self.probability_sum is None or self.epochs_seen == 0:
            raise ValueError(
                "No epoch has ended yet, so there are no averaged probabilities. Train first (trainer.train()), "
                "or pass the trainer itself to find_label_issues to use the current model."
            )
        mean = self.probability_sum.astype(np.float64) / self.epochs_seen
        return mean / mean.sum(axis=1, keepdims=True)  # float32 sums drift from 1 by ~1e-7

    # ---- events ------------------------------------------------------------------------------------

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        """Start from nothing, or, when resuming, from the sum saved with the checkpoint (reconciled)."""
        self.probability_sum, self.epochs_seen, self._last = None, 0, None
        self._restore_records(args, state)
        if state.global_step == 0:
            return
        from jal_trainer.epoch_state import completed_epochs, restore

        saved = restore(self._checkpoint(args, state), self._dir(args) / self.file_name, state, rows=self._num_rows())
        if saved is not None:
            self.probability_sum, self.epochs_seen, self._last = saved
        done, at_boundary = completed_epochs(state)
        if at_boundary and self.epochs_seen == done - 1 and self.trainer is not None:
            # The checkpoint was saved on the epoch's last step, before the epoch-end pass; the
            # weights loaded now are that epoch's final ones, so the missed pass is redone exactly.
            self._predict_epoch(args, state)

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        """Predict on the training rows (a collective: every process) and record the epoch."""
        if self.trainer is None:
            raise ValueError(
                f"{type(self).__name__} has no trainer: pass it to a JALTrainer's callbacks=, or give trainer= "
                "when the trainer is a plain transformers.Trainer."
            )
        self._predict_epoch(args, state)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        """Save the running sum inside the checkpoint, so that a resume continues the same average."""
        if self.save and state.is_world_process_zero:
            from jal_trainer.epoch_state import save

            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():  # written even with no epoch yet: "0 epochs" is exact too
                total = self.probability_sum if self.probability_sum is not None else np.zeros((self._num_rows(), 0))
                save(folder / self.file_name, total, self.epochs_seen, self._last)

    def _predict_epoch(self, args: TrainingArguments, state: TrainerState) -> None:
        from jal_trainer.epoch_state import save

        start = time.perf_counter()
        probs, logits = self._epoch_pass()
        self.probability_sum = probs if self.probability_sum is None else self.probability_sum + probs
        self._last = probs
        self.epochs_seen += 1
        if self.save and state.is_world_process_zero:
            save(self._dir(args) / self.file_name, self.probability_sum, self.epochs_seen, probs)
        self._record_epoch(logits, args, state, seconds=time.perf_counter() - start)

    def _epoch_pass(self) -> tuple[np.ndarray, np.ndarray]:
        """((N, K) float32 probabilities, (N, K) logits) of the current model on the rows; subclasses redefine a row."""
        from jal_trainer.predictions import same_random_state, softmax, trainer_logits

        with same_random_state():  # the pass's DataLoader draws a seed: dropout and shuffling must not see it
            logits = trainer_logits(self.trainer, self.dataset)
        return softmax(logits).astype(np.float32), logits

    def _num_rows(self) -> int:  # rows of the running sum (words for jal_trainer.ner.epoch_words)
        return len(self.dataset)

    def _checkpoint(self, args: TrainingArguments, state: TrainerState) -> Path | None:
        """The checkpoint this run resumed from: as `jal train` set it, else where the Trainer saves them."""
        if self.resume_checkpoint:
            return Path(self.resume_checkpoint)
        resume = getattr(args, "resume_from_checkpoint", None)
        if resume and Path(resume).is_dir():
            return Path(resume)
        return Path(args.output_dir or ".") / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"

    def _restore_records(self, args: TrainingArguments, state: TrainerState) -> None:
        """Hook for subclasses: reload what they recorded up to the checkpoint."""

    def _record_epoch(self, logits: np.ndarray, args: TrainingArguments, state: TrainerState, *,
                      seconds: float) -> None:
        """Hook for subclasses: the (N, K) logits of this epoch's pass and what it cost."""

    def _dir(self, args: TrainingArguments) -> Path:
        if self.output_dir is not None:
            return self.output_dir
        if not args.output_dir:
            raise ValueError(f"{type(self).__name__} needs an output directory: set args.output_dir or output_dir=.")
        return Path(args.output_dir)


class MemorisationCallback(EpochProbabilitiesCallback):
    """Record, each epoch, how much of the wrong training labels the model has memorised.

    Args:
        trainer: the `transformers.Trainer` to predict with; leave it out with a `JALTrainer`.
        train_eval_dataset: the training rows as the Trainer reads them, without augmentation:
            model inputs, the given labels in ``label_column`` and the true ones in
            ``clean_label_column``: a `datasets.Dataset`, or a tensor data set such as
            `jal_trainer.data.DeviceImageDataset` (built with ``augment=False``).
        label_column: column of the given (possibly wrong) labels.
        clean_label_column: column of the true labels.
        metric_key: name of the accuracy metric of the evaluation (``eval_<metric_key>``).
        output_dir: where to write the JSON and PNG (default: ``args.output_dir``).
        plot: also write ``memorisation.png``.
        save_probabilities: also write ``epoch_probabilities.npz`` (`EpochProbabilitiesCallback`).

    Attributes:
        rows: one dict per epoch: ``epoch``, ``test_accuracy``, ``noisy_memorised``,
            ``noisy_true``, ``clean_fit``, ``seconds``.
    """

    def __init__(self, train_eval_dataset: Any, *, trainer: Any = None, label_column: str = "label",
                 clean_label_column: str = "clean_label", metric_key: str = "accuracy",
                 output_dir: str | Path | None = None, plot: bool = True, save_probabilities: bool = True) -> None:
        labels, clean = _label_arrays(train_eval_dataset, label_column, clean_label_column)
        super().__init__(train_eval_dataset, trainer=trainer, output_dir=output_dir, save=save_probabilities)
        self.labels, self.clean_labels = labels, clean
        self.metric_key = metric_key
        self.plot = plot
        self.rows: list[dict[str, Any]] = []
        self._training_done = False

    # ---- events ------------------------------------------------------------------------------------

    def _restore_records(self, args: TrainingArguments, state: TrainerState) -> None:
        """Start from the rows already written when resuming from a checkpoint, else from none."""
        path = self._dir(args) / MEMORISATION_JSON
        if state.global_step > 0 and path.is_file():
            from jal_trainer.report import read_memorisation

            self.rows = [r for r in read_memorisation(path) if r["epoch"] <= (state.epoch or 0) + _SAME_EPOCH]
        else:
            self.rows = []
        self._training_done = False

    def _record_epoch(self, logits: np.ndarray, args: TrainingArguments, state: TrainerState, *,
                      seconds: float) -> None:
        """The memorisation row of this epoch, from the logits of the shared prediction pass."""
        row = {"epoch": round(float(state.epoch or 0.0), 4), "test_accuracy": self._logged_accuracy(state)}
        row.update(memorisation_fractions(logits.argmax(axis=1), self.labels, self.clean_labels))
        row["seconds"] = round(seconds, 4)
        self.rows.append(row)
        self._write(args, state, plot=False)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        """Fill the clean test accuracy of this epoch's row, when evaluation runs after ``on_epoch_end``."""
        accuracy = _accuracy(metrics or {}, self.metric_key)
        if accuracy is None or not self.rows:
            return
        last = self.rows[-1]
        if last["test_accuracy"] is None and abs(last["epoch"] - float(state.epoch or 0.0)) < _SAME_EPOCH:
            last["test_accuracy"] = accuracy
            # after training (a final test evaluation), the figure already written needs this value too
            self._write(args, state, plot=self._training_done)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        """Write the figure once, at the end (the JSON is rewritten after every epoch)."""
        self._training_done = True
        if self.rows:
            self._write(args, state, plot=True)

    # ---- helpers -------------------------------------------------------------------------------------

    def _logged_accuracy(self, state: TrainerState) -> float | None:
        """The accuracy already logged at this very epoch (evaluation ran before the callback), else None."""
        for entry in reversed(state.log_history):
            if abs(float(entry.get("epoch", -1.0)) - float(state.epoch or 0.0)) >= _SAME_EPOCH:
                break
            accuracy = _accuracy(entry, self.metric_key)
            if accuracy is not None:
                return accuracy
        return None

    def _write(self, args: TrainingArguments, state: TrainerState, *, plot: bool) -> None:
        if not state.is_world_process_zero:
            return
        out = self._dir(args)
        out.mkdir(parents=True, exist_ok=True)
        payload = {
            "num_samples": int(len(self.labels)),
            "num_wrong_labels": int((self.labels != self.clean_labels).sum()),
            "cost": "one forward pass over the training rows per epoch",
            "rows": self.rows,
        }
        (out / MEMORISATION_JSON).write_text(json.dumps(payload, indent=2))
        if plot and self.plot:
            from jal_trainer.report import plot_memorisation

            name = getattr(args, "loss_type", None) or "run"
            plot_memorisation({name: self.rows}, out / MEMORISATION_PNG, title="Memorisation of the wrong labels")


def _label_arrays(dataset: Any, label_column: str, clean_column: str) -> tuple[np.ndarray, np.ndarray]:
    """(N,) given and (N,) clean labels of a `datasets.Dataset` or a tensor data set (`DeviceImageDataset`)."""
    columns = getattr(dataset, "column_names", None)
    tensors = getattr(dataset, "tensors", None)
    if columns is not None:
        source, names = dataset, list(columns)
    elif isinstance(tensors, dict):
        # DeviceImageDataset renames the label column to `labels`
        source = {k: v.cpu().numpy() for k, v in tensors.items()}
        source.setdefault(label_column, source.get("labels"))
        names = [k for k, v in source.items() if v is not None]
    else:
        raise ValueError(
            f"Cannot read labels from a {type(dataset).__name__}. Pass a datasets.Dataset (or a DeviceImageDataset) "
            "holding the given and the clean labels."
        )
    for name, role in ((label_column, "label_column"), (clean_column, "clean_label_column")):
        if name not in names:
            raise ValueError(
                f"train_eval_dataset has no column {name!r} ({role}); its columns are {names}. Memorisation needs "
                f"the given and the clean labels: pass the dataset made by add_label_noise or set {role}= to the "
                "right column."
            )
    if columns is not None:  # Arrow columns, read at once (not row by row)
        from jal_trainer.label_issues import column_array

        labels, clean = (column_array(dataset, c).astype(np.int64) for c in (label_column, clean_column))
    else:
        labels = np.asarray(source[label_column], dtype=np.int64)
        clean = np.asarray(source[clean_column], dtype=np.int64)
    if labels.shape != clean.shape or len(labels) != len(dataset):
        raise ValueError(f"{label_column} and {clean_column} must hold one label per row ({len(dataset)} rows).")
    return labels, clean


def _accuracy(metrics: dict[str, Any], key: str) -> float | None:
    for prefix in TEST_PREFIXES:
        value = metrics.get(f"{prefix}_{key}")
        if isinstance(value, (int, float)):
            return float(value)
    return None


def memorisation_callback_for(dataset: Any, *, label_column: str = "label",
                              clean_label_column: str = "clean_label") -> MemorisationCallback | None:
    """A `MemorisationCallback` when ``dataset`` has clean labels, else ``None`` (for recipes).

    `JALTrainer` hands itself to the callback when it is passed in ``callbacks=``.
    """
    try:
        _label_arrays(dataset, label_column, clean_label_column)
    except ValueError:
        return None  # no clean labels: nothing to measure
    return MemorisationCallback(dataset, label_column=label_column, clean_label_column=clean_label_column)


__all__ = ["EpochProbabilitiesCallback", "MemorisationCallback", "memorisation_callback_for", "memorisation_fractions"]
