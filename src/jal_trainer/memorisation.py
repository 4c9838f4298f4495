"""`MemorisationCallback`: how much of the wrong training labels a model memorises, epoch by epoch.

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
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerControl, TrainerState, TrainingArguments

from jal_trainer.epoch_probabilities import EpochProbabilitiesCallback

MEMORISATION_JSON = "memorisation.json"
MEMORISATION_PNG = "memorisation.png"
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


__all__ = ["MemorisationCallback", "memorisation_callback_for", "memorisation_fractions"]
