"""The running sum of `EpochProbabilitiesCallback` on disk, and how a resumed run gets it back.

The sum of the per-epoch softmax probabilities is saved twice: in the run folder after every epoch
(so `find_label_issues` can run from the folder) and inside every checkpoint (so a resume continues
the same average). A resume prefers the checkpoint's copy, which is exact for that step; without
one it reconciles the run folder's copy with the epochs the checkpoint has completed:

- equal: used as is;
- one epoch ahead (saved after the checkpoint): that epoch's probabilities, kept beside the sum,
  are subtracted;
- behind (epochs were trained without a saved pass): used, and a warning says the mean covers
  fewer epochs;
- further ahead: dropped with a warning (the earlier sums are not kept).

File format (``numpy.savez``): ``sum`` (N, K) float32, ``epochs`` int64, and ``last`` (N, K)
float32, the latest epoch's probabilities, when known.

Example:
    >>> from transformers import TrainerState
    >>> completed_epochs(TrainerState(epoch=3.0)), completed_epochs(TrainerState(epoch=2.5))
    ((3, True), (2, False))
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from transformers import TrainerState

from jal_trainer.atomic import atomic_target

_EPS = 1e-6

# (sum of the per-epoch probabilities or None before the first epoch, epochs, last epoch's or None)
Saved = tuple["np.ndarray | None", int, "np.ndarray | None"]


def completed_epochs(state: TrainerState) -> tuple[int, bool]:
    """(epochs whose last step is done, whether ``state`` sits exactly at an epoch's end)."""
    epoch = float(state.epoch or 0.0)
    nearest = round(epoch)
    if abs(epoch - nearest) < _EPS:
        return int(nearest), True
    return int(math.floor(epoch)), False


def save(path: Path, total: np.ndarray, epochs: int, last: np.ndarray | None) -> None:
    """Write the sum atomically (a killed process never leaves half a file that a resume would trust)."""
    arrays = {"sum": total, "epochs": np.int64(epochs)}
    if last is not None:
        arrays["last"] = last
    with atomic_target(path) as tmp:
        np.savez(tmp, **arrays)


def _load(path: Path | None, rows: int) -> Saved | None:
    if path is None or not path.is_file():
        return None
    with np.load(path) as data:
        if len(data["sum"]) != rows:
            return None
        epochs = int(data["epochs"])
        if epochs == 0:
            return None, 0, None
        last = data["last"].astype(np.float32) if "last" in data.files else None
        return data["sum"].astype(np.float32), epochs, last


def restore(checkpoint: Path | None, run_file: Path, state: TrainerState, *, rows: int) -> Saved | None:
    """The (sum, epochs, last) a run resumed at ``state`` continues from, or None to start over.

    Args:
        checkpoint: the checkpoint folder resumed from (its copy is preferred).
        run_file: the run folder's ``epoch_probabilities.npz``.
        state: the restored `TrainerState` (its ``epoch`` tells how many epochs are complete).
        rows: N, the training rows; a file of another size belongs to another data set and is ignored.
    """
    done, at_boundary = completed_epochs(state)
    exact = _load(checkpoint / run_file.name if checkpoint is not None else None, rows)
    if exact is not None and exact[1] <= done:
        return exact
    saved = _load(run_file, rows)
    if saved is None:
        return None
    total, epochs, last = saved
    if total is None:
        return saved
    if epochs == done or (at_boundary and epochs == done - 1):
        return saved
    if epochs == done + 1 and last is not None:
        return total - last, epochs - 1, None
    if epochs < done:
        warnings.warn(
            f"{run_file} holds the probabilities of {epochs} epochs but the checkpoint completed {done}: the "
            "averaged probabilities behind the label issues will miss those epochs. Resume from a checkpoint "
            "saved by this version of jal-trainer to keep them.",
            stacklevel=3,
        )
        return saved
    warnings.warn(
        f"{run_file} holds {epochs} epochs, more than the {done} of the checkpoint, and cannot be stepped back: "
        "the averaged probabilities restart from this checkpoint.",
        stacklevel=3,
    )
    return None


__all__ = ["completed_epochs", "restore", "save"]
