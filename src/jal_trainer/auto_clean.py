"""Detect, then retrain, as a candidate of ``loss_type: auto``: ``<loss>+clean``.

A ``+clean`` candidate (``ce+clean``, ``jal-ce+clean``, ``jal-ce@finetune+clean``) is what
`jal clean` does after a run, folded into one search trial so that it competes with the plain
losses on the same held-out slice:

1. train ``<loss>`` on the trial's rows (all rows but the held-out slice) with the short schedule,
   collecting the epoch-mean probabilities as `EpochProbabilitiesCallback` does for
   ``find_label_issues`` (the pass runs with the random state saved and restored, so this model is
   the plain ``<loss>`` candidate's);
2. flag those rows with the default class-balanced rule (`score_label_issues`, the rule of
   ``find_label_issues`` and ``jal clean``), and the slice rows with the same rule on the first
   model's held-out slice probabilities (those rows were never trained on, so their probabilities
   are out-of-sample; the rule's per-class thresholds come from the slice itself);
3. train ``<loss>`` again, from the same initial model and with the same schedule, on the trial's
   rows minus the flagged ones (the same epochs, so fewer steps, as `jal clean` retrains a recipe);
   its slice predictions are scored like any candidate's.

The trial is self-contained (it reads no other trial's files), so it runs under Ray as under
Optuna. Besides its slice probabilities it writes ``<candidate>.flags.npz`` into the search's
scratch folder: ``trained`` ``(N_trained,)`` and ``slice`` ``(N_slice,)`` bool flags and the scores
behind them. When the candidate is chosen, these flags give the final training set (every row
minus the flagged ones: `LossSelection.training_rows`), so the final training costs one training,
not two.

**Cost:** two trainings at the short schedule (plus one prediction pass over the trained rows per
epoch): `candidate_cost` counts a ``+clean`` candidate twice in auto's budget.

Example:
    >>> split_clean("jal-ce@finetune+clean")
    ('jal-ce@finetune', True)
    >>> split_clean("nce+rce")
    ('nce+rce', False)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jal_trainer.atomic import atomic_target

CLEAN_SUFFIX = "+clean"
FLAGS_SUFFIX = ".flags.npz"


def split_clean(label: str) -> tuple[str, bool]:
    """``(the loss part of the label, whether it ends in +clean)``; ValueError when ``+clean`` is repeated.

    Example:
        >>> split_clean("ce+clean+clean")
        Traceback (most recent call last):
        ...
        ValueError: auto: candidate 'ce+clean+clean' repeats +clean; write it once, at the end: e.g. 'ce+clean'.
    """
    if not label.endswith(CLEAN_SUFFIX):
        return label, False
    base = label[: -len(CLEAN_SUFFIX)]
    if base.endswith(CLEAN_SUFFIX) or CLEAN_SUFFIX + "@" in base:
        raise ValueError(f"auto: candidate {label!r} repeats {CLEAN_SUFFIX}; write it once, at the end: e.g. "
                         "'ce+clean'.")
    return base, True


def candidate_cost(labels: list[str] | tuple[str, ...]) -> int:
    """Trainings at the short schedule the candidates take: 2 for a ``+clean`` one, else 1.

    Example:
        >>> candidate_cost(["ce", "gce", "ce+clean"])
        4
    """
    return sum(2 if split_clean(label)[1] else 1 for label in labels)


def label_array(dataset: Any) -> np.ndarray:
    """``(N,)`` int64 labels of a training or slice data set (``labels`` or ``label`` column)."""
    from jal_trainer.label_issues import column_array

    column = next((c for c in ("labels", "label") if c in dataset.column_names), None)
    if column is None:
        raise ValueError(f"auto: +clean needs a 'labels' or 'label' column; the rows have {dataset.column_names}.")
    return column_array(dataset, column).astype(np.int64)


def train_clean_trial(trainer: Any, train: Any, trial: Any, flags_path: Path) -> Any:
    """Run one ``+clean`` trial on ``trainer`` (a `_CandidateTrainer` set up for the base loss).

    ``train`` is the plain training call (``JALTrainer.train``); it is called twice with ``trial``,
    so `transformers.Trainer` re-initialises the model (``model_init``) for the second training.
    Returns the second training's output; writes the flags to ``flags_path`` in between.
    """
    from jal_trainer.callbacks import EpochProbabilitiesCallback
    from jal_trainer.issue_scores import score_label_issues
    from jal_trainer.predictions import softmax, trainer_logits

    rows = trainer.train_dataset
    watch = EpochProbabilitiesCallback(rows, trainer=trainer, save=False)
    record, trainer.compute_metrics = trainer.compute_metrics, None  # the passes below are not the slice's score
    trainer.add_callback(watch)
    try:
        train(trial=trial)
        # no epoch ended (a schedule under one epoch): the final model's in-sample probabilities instead
        trained_probs = watch.mean_probabilities if watch.epochs_seen else softmax(trainer_logits(trainer, rows))
        slice_probs = softmax(trainer_logits(trainer, trainer.eval_dataset, desc="Predicting the held-out slice"))
    finally:
        trainer.remove_callback(watch)
        trainer.compute_metrics = record
    trained_scores, trained_flags = score_label_issues(trained_probs, label_array(rows))
    slice_scores, slice_flags = score_label_issues(slice_probs, label_array(trainer.eval_dataset))
    batch = trainer.args.per_device_train_batch_size * max(trainer.args.world_size, 1)
    trained_flags = no_batch_of_one(trained_flags, trained_scores, batch)
    if trained_flags.all():
        raise ValueError(f"auto: {trainer.current} flagged every one of its {len(rows)} training rows; nothing is "
                         "left to retrain on.")
    with atomic_target(flags_path) as tmp:
        np.savez(tmp, trained=trained_flags, slice=slice_flags, trained_scores=trained_scores,
                 slice_scores=slice_scores)
    trainer.train_dataset = rows.select(np.flatnonzero(~trained_flags))
    try:
        return train(trial=trial)
    finally:
        trainer.train_dataset = rows


def no_batch_of_one(flags: np.ndarray, scores: np.ndarray, batch: int) -> np.ndarray:
    """``flags`` plus, when the unflagged rows would leave a last batch of one row (which batch norm cannot
    train on), the unflagged row with the highest score (as `jal_trainer.clean.edit_rows` does).

    Example:
        >>> no_batch_of_one(np.array([True, False, False, False]), np.array([0.9, 0.1, 0.5, 0.2]), 2).tolist()
        [True, False, True, False]
    """
    flags = np.asarray(flags, dtype=bool).copy()
    if batch > 1 and int((~flags).sum()) % batch == 1 and (~flags).sum() > 1:
        free = np.flatnonzero(~flags)
        flags[free[np.argmax(np.asarray(scores)[free])]] = True
    return flags


def read_flags(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays a ``+clean`` trial wrote (`train_clean_trial`), or None when it wrote none."""
    if not path.is_file():
        return None
    with np.load(path) as saved:
        return {key: saved[key] for key in saved.files}


def dropped_rows(flags: dict[str, np.ndarray], kept: np.ndarray, held: np.ndarray, batch: int,
                 base: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices into the full training set of the rows a chosen ``+clean`` candidate drops.

    ``kept`` ``(N_trained,)`` and ``held`` ``(N_slice,)``: the rows the trial trained on and the
    slice, as indices into the full set. Every flagged row is dropped, and every row ``base``
    ``(n,)`` marks (the coin flips auto left out: `jal_trainer.auto_coinflips`); when the rest would
    leave a last batch of one row, also the trained row with the highest score (`no_batch_of_one`).

    Example:
        >>> flags = {"trained": np.array([False, True, False]), "slice": np.array([True]),
        ...          "trained_scores": np.array([0.1, 0.9, 0.2]), "slice_scores": np.array([0.8])}
        >>> dropped_rows(flags, np.array([0, 1, 3]), np.array([2]), 32).tolist()
        [1, 2]
    """
    drop = np.zeros(len(kept) + len(held), dtype=bool) if base is None else np.asarray(base, dtype=bool).copy()
    drop[kept[flags["trained"]]] = True
    drop[held[flags["slice"]]] = True
    if batch > 1 and int((~drop).sum()) % batch == 1:
        free_trained = ~flags["trained"]
        if free_trained.any():
            drop[kept[free_trained][np.argmax(flags["trained_scores"][free_trained])]] = True
    return np.flatnonzero(drop)


def record_flags(selection: Any, flags: dict[str, dict[str, np.ndarray] | None], kept: np.ndarray,
                 held: np.ndarray, batch: int, base: np.ndarray | None = None) -> None:
    """Add the ``+clean`` candidates' flag counts (``flagged_rows``) to their rows of ``selection`` (a
    `jal_trainer.auto.LossSelection`) and, when one was chosen, set ``selection.dropped``: the rows to drop
    (`dropped_rows`, with the rows ``base`` marks)."""
    for row in selection.candidates:
        found = flags.get(row["label"])
        if found is not None and row["status"] == "ok":
            row["flagged_rows"] = int(found["trained"].sum() + found["slice"].sum())
    if selection.chosen.clean and flags.get(selection.chosen.label) is not None:
        selection.dropped = dropped_rows(flags[selection.chosen.label], kept, held, batch, base)
        total = len(kept) + len(held) if base is None else len(base)
        selection.reason += (f"; detect, then retrain: the final training drops the {len(selection.dropped)} rows "
                             f"(of {total}) its trial flagged" + ("" if base is None else " or left out as coin flips"))


__all__ = ["CLEAN_SUFFIX", "candidate_cost", "dropped_rows", "no_batch_of_one", "read_flags", "record_flags",
           "split_clean", "train_clean_trial"]
