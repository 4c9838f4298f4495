"""The training-set prediction pass of every epoch, and the mean of its probabilities over epochs.

`EpochProbabilitiesCallback` predicts on the training rows at the end of every epoch and keeps
the running sum of the softmax probabilities; its ``mean_probabilities`` are what
`jal_trainer.label_issues.find_label_issues` scores best with. No clean labels are needed.
`jal_trainer.memorisation.MemorisationCallback` extends it (same single pass) to measure how much
of the wrong labels the model memorises. Both are importable from `jal_trainer.callbacks`.

Example:
    >>> from jal_trainer.epoch_probabilities import EpochProbabilitiesCallback
    >>> callback = EpochProbabilitiesCallback(noisy_train)  # doctest: +SKIP
    >>> trainer = JALTrainer(model, args, train_dataset=noisy_train, callbacks=[callback])  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    >>> find_label_issues(callback, noisy_train).dataset  # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

EPOCH_PROBABILITIES = "epoch_probabilities.npz"


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


__all__ = ["EPOCH_PROBABILITIES", "EpochProbabilitiesCallback"]
