"""``loss_type: auto``: choose the loss (and its parameters) without clean labels.

0. Leave out the rows whose label is a coin flip: a tied or empty majority vote of the weak labels
   when they are many (``auto_coin_flip_share``; :mod:`jal_trainer.auto_coinflips`).
1. Hold out a stratified slice (``auto_holdout``, 10%) of the noisy training rows.
2. Train every candidate on the other rows with a short schedule, through
   `transformers.Trainer.hyperparameter_search` (Optuna by default, one grid point per candidate;
   ``auto_backend="ray"`` runs the same search with Ray Tune, on one machine or several: see
   :mod:`jal_trainer.auto_search` for where its files go).
3. Score each on the slice: the noisy-slice accuracy, corrected to an estimated clean accuracy
   with the noise transition matrix estimated from the candidates' mean prediction (see
   :mod:`jal_trainer.selection`) when that estimate is clean-label dominant. Every slice row
   counts, even one whose majority vote was a tie (see :data:`SCORE_TIES_BY_CONSENSUS` for why).
4. Pick the best (CE on a tie; ``auto_ce_margin`` can ask CE to lead the best other candidate by
   a number of bootstrap stds of the gap, or a robust loss to beat CE: :mod:`jal_trainer.auto_decide`).
5. The caller retrains on all rows with the choice (`jal train` does it): `LossSelection.apply`
   gives the loss settings, `LossSelection.training_rows` the training set.

A candidate ``<loss>+clean`` (e.g. ``ce+clean``, ``jal-ce@finetune+clean``) detects, then
retrains: its trial trains ``<loss>``, drops the rows the class-balanced rule of
``find_label_issues`` flags, and trains ``<loss>`` again (`jal_trainer.auto_clean`). If it is
chosen, the final training drops the rows its trial flagged (the trained rows by their
epoch-mean probabilities, the slice rows by the first model's held-out predictions): one
training, not two.

Cost, in full trainings: 1 (the final one) + the candidates; by default at most
``1 + 0.5 * number of candidates``, a ``+clean`` candidate counted as two (it trains twice), and
``auto_budget`` lowers it. The choice, every candidate's scores, the reason and the rows a
``+clean`` choice drops go to ``loss_selection.json`` in the run folder and into the model card;
the slice rows with every candidate's probabilities go to ``loss_selection_slice.npz``.

Example:
    >>> from jal_trainer import JALConfig
    >>> from jal_trainer.auto import select_loss
    >>> args = JALConfig(output_dir="out", loss_type="auto", num_train_epochs=10)
    >>> selection = select_loss(lambda: make_model(), args, noisy_train)  # doctest: +SKIP
    >>> trainer = JALTrainer(model=make_model(), args=selection.apply(args),
    ...                      train_dataset=selection.training_rows(noisy_train))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging

from jal_trainer.auto_clean import FLAGS_SUFFIX, candidate_cost, no_batch_of_one, read_flags, record_flags, split_clean
from jal_trainer.auto_coinflips import WEAK_LABELS, coin_flip_rows
from jal_trainer.auto_search import (  # noqa: F401
    _CandidateTrainer, candidate_table, check_backend, file_name, replace_args, run_search, slice_columns,
    write_slice_file)
from jal_trainer.auto_decide import CE_MARGIN, SELECTION_FILE, LossSelection, decide
from jal_trainer.config import JALConfig
from jal_trainer.selection import stratified_holdout

logger = logging.get_logger(__name__)

AUTO = "auto"
#: Whether slice rows with a tied or empty majority vote (from :data:`WEAK_LABELS`) are scored by
#: agreement with the candidates' consensus instead of their (coin-flip) label. Off since 2026-12-01:
#: judged by ``recipes/auto_slice_check.py`` on 21 held-out probe slices' clean training labels
#: (never a test split; ``recipes/results/auto_slice_check.md``), scoring every row as it is gives
#: mean regret 0.1 pt against 0.4 with the consensus, the same worst regret (1.9 pt), and never a
#: choice below CE (with the consensus: GCE on all three WRENCH chemprot slices, 1.0-1.7 pt below
#: CE; on WRENCH sms GCE, not JAL-CE, on two slices, where GCE is as good or better by clean labels).
SCORE_TIES_BY_CONSENSUS = False
#: Candidates when ``auto_candidates`` is not set; CE is always added. The detect-then-retrain
#: candidates (``ce+clean``, ``jal-ce+clean``) are not among them, judged by
#: ``recipes/auto_slice_check.py`` on 21 held-out probe slices' clean training labels
#: (``recipes/results/auto_slice_check.md``, the shipped rule): adding them keeps the worst regret
#: (4.8 pt against the best of all seven) and never chooses below CE, but ``ce+clean`` is chosen on
#: 0 of 21 slices (its estimate is below CE's on 17, though by clean labels it is the best candidate
#: on WRENCH trec seeds 1 and 2) and ``jal-ce+clean`` on 1, raising the mean regret from 0.59 to
#: 0.62 pt. Each would raise the default cost from 3.5 to 4.5 trainings for nothing measurable.
#: Name them in ``auto_candidates``. Fine-tuning a pretrained encoder end to end is the exception
#: (`FINETUNE_CANDIDATES`).
DEFAULT_CANDIDATES = ("ce", "gce", "sce", "nce+rce", "jal-ce")
#: Candidates when a recipe fine-tunes a pretrained text encoder end to end and names none
#: (`jal_trainer.run_defaults.default_candidates`): the defaults plus ``jal-ce+clean``, 4.5 trainings
#: instead of 3.5. Judged on 18 fine-tuning slices' clean training labels (``recipes/auto_wide_check.py``,
#: ``recipes/results/auto_wide_check.md``; never a test split): the choice changes on 4, each a gain
#: (+3.5, +1.5, +0.8, +0.8 pt), and on none for the worse (WRENCH trec and chemprot keep CE, where
#: ``jal-ce+clean`` is far below it). The frozen-encoder probe keeps `DEFAULT_CANDIDATES`: there it
#: was chosen on 1 of 21 slices and raised the mean regret (above).
FINETUNE_CANDIDATES = (*DEFAULT_CANDIDATES, "jal-ce+clean")
LOSS_FIELDS = ("loss_type", "loss_preset", "alpha", "beta", "a", "q", "gamma")
#: Rows a class needs to be scored: 2 on the slice (one row cannot rank two candidates) and 2 to train on.
MIN_SCORED_ROWS = 4
#: ``auto_rare_classes``: stop on a class with fewer than `MIN_SCORED_ROWS` rows, or train on it unscored.
#: The default stops (issue 11 asks for the error): after weak supervision drops its coin flips, a 2,000-row
#: WRENCH chemprot subsample holds 1-3 rows of class 7 at each of seeds 0-2.
RARE_CLASS_ACTIONS = ("error", "train")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A loss to try: ``label`` as written (``jal-ce``, ``jal-ce@cifar10``, ``ce+clean``), its name and
    preset, and ``clean``: detect, then retrain (`jal_trainer.auto_clean`)."""

    label: str
    loss_type: str
    preset: str | None
    clean: bool = False

    @property
    def plain_ce(self) -> bool:
        """CE without detect-then-retrain: the candidate auto always has and falls back to."""
        return self.loss_type == "ce" and not self.clean

    def settings(self) -> dict[str, Any]:
        """JALConfig loss fields that select this candidate (explicit parameters cleared)."""
        return {"loss_type": self.loss_type, "loss_preset": self.preset, "alpha": None, "beta": None, "a": None,
                "q": None, "gamma": None}


def parse_candidates(names: list[str] | tuple[str, ...] | None, preset: str | None) -> list[Candidate]:
    """Candidates from ``name``, ``name@preset`` or ``name[@preset]+clean`` strings, CE first; ValueError on an
    unknown one.

    A bare name takes ``preset`` when that preset defines the loss, else the loss's defaults.
    ``+clean``: train the loss, drop the rows it flags, train again (`jal_trainer.auto_clean`).

    Example:
        >>> [c.label for c in parse_candidates(["jal-ce@cifar10", "ce+clean"], None)]
        ['ce', 'jal-ce@cifar10', 'ce+clean']
        >>> [c.label for c in parse_candidates(["gce,jal-ce"], None)]  # commas separate too
        ['ce', 'gce', 'jal-ce']
    """
    from jal_trainer.losses import LOSS_NAMES, PRESETS, build_loss

    labels = list(names or DEFAULT_CANDIDATES)
    # `--auto_candidates ce,gce` (commas, as users write lists on a command line) means ce and gce
    labels = [part.strip() for label in labels for part in (label.split(",") if isinstance(label, str) else [label])]
    if not labels or not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"auto_candidates must be a list of loss names, got {names!r}; e.g. ['ce', 'gce', 'jal-ce'].")
    parts = {label: split_clean(label) for label in dict.fromkeys(labels)}  # label -> (loss[@preset], +clean)
    if not any(loss.split("@")[0] == "ce" and not clean for loss, clean in parts.values()):
        parts = {"ce": ("ce", False), **parts}  # CE is always a candidate: auto never trails it by more than noise
    out = []
    for label, (loss, clean) in parts.items():
        name, _, own = loss.partition("@")
        if name == AUTO or name not in LOSS_NAMES:
            raise ValueError(f"auto: unknown candidate {label!r}; a candidate is a loss name ({', '.join(LOSS_NAMES)}) "
                             "optionally with @preset and +clean (detect, then retrain), e.g. 'jal-ce@finetune', "
                             "'ce+clean'.")
        chosen = own or (preset if preset in PRESETS and name in PRESETS[preset] else None)
        build_loss(name, preset=chosen)  # an unknown preset, or one without values for the loss, fails here
        out.append(Candidate(label, name, chosen, clean))
    return out


def resolve_budget(budget: float | None, num_candidates: int) -> float:
    """The budget in full trainings: default ``1 + 0.5 * num_candidates``; ValueError below what it must cover.

    ``num_candidates`` counts a ``+clean`` candidate twice (`jal_trainer.auto_clean.candidate_cost`).
    """
    if budget is None:
        return 1.0 + 0.5 * num_candidates
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not np.isfinite(budget) or budget < 1:
        raise ValueError(f"auto_budget={budget!r} is below one training: the final training on all rows alone costs "
                         "1. Set auto_budget above 1 (the default is 1 + 0.5 x the number of candidates).")
    if budget <= 1.0:
        raise ValueError(f"auto_budget={budget} leaves nothing for the {num_candidates} candidates after the final "
                         "training; set it above 1, e.g. 1 + 0.25 x the number of candidates.")
    return float(budget)


def check_auto_settings(args: JALConfig) -> list[Candidate]:
    """Validate the auto fields of ``args`` (candidates, budget, holdout, CE margin, backend) before anything is
    trained."""
    check_backend(args.auto_backend)
    if not 0.0 < args.auto_holdout < 0.5:
        raise ValueError(f"auto_holdout must be in (0, 0.5), got {args.auto_holdout}; 0.1 holds out 10% of the rows.")
    if args.auto_rare_classes not in RARE_CLASS_ACTIONS:
        raise ValueError(f"auto_rare_classes must be one of {', '.join(RARE_CLASS_ACTIONS)}, got "
                         f"{args.auto_rare_classes!r}; train scores the candidates without classes too rare to score.")
    share = args.auto_coin_flip_share
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
        raise ValueError(f"auto_coin_flip_share must be a share of the rows in [0, 1], got {share!r}; e.g. 0.2 (the "
                         "default), 0 to leave out every coin flip, 1 to keep them.")
    margin = args.auto_ce_margin
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))
                               or not np.isfinite(margin)):
        raise ValueError(f"auto_ce_margin must be a finite number of bootstrap stds, got {margin!r}; e.g. 1.0, or "
                         "leave it unset for the default.")
    candidates = parse_candidates(args.auto_candidates, args.loss_preset)
    resolve_budget(args.auto_budget, candidate_cost([c.label for c in candidates]))
    return candidates


def select_loss(model_init: Callable[[], torch.nn.Module], args: JALConfig, train_dataset: Any, *,
                data_collator: Any = None, processing_class: Any = None, label_column: str | None = None,
                backend: str | None = None) -> LossSelection:
    """Choose a loss for ``train_dataset``'s noisy labels as the module docstring says.

    Args:
        model_init: returns a fresh, untrained model (called once per candidate).
        args: a `JALConfig`; ``auto_candidates``, ``auto_budget``, ``auto_holdout``, ``auto_ce_margin``, the schedule
            (``num_train_epochs`` or ``max_steps``), ``seed``, ``auto_backend`` and
            ``auto_storage`` are read. Its ``output_dir`` receives only ``loss_selection.json`` and
            ``loss_selection_slice.npz`` (`write_slice_file`);
            candidates train in a temporary folder (inside ``auto_storage`` when set: with Ray
            on several machines, a folder every machine sees).
        train_dataset: a `datasets.Dataset` with a label column (``labels`` or ``label``).
        backend: ``"optuna"`` or ``"ray"`` (default: ``args.auto_backend``), passed to
            `Trainer.hyperparameter_search`.

    Raises:
        ValueError: before any training, on an unknown candidate, a budget below one training, a
            slice with fewer than 2 rows of some class (unless ``auto_rare_classes`` is ``train`` and the class
            has fewer than 4 rows: then it trains the candidates unscored), a dataset without ``select``, or Ray on
            several machines without ``auto_storage``.
        ImportError: before any training, when the backend's package is missing (it names the extra).
        RuntimeError: every candidate failed (``loss_selection.json`` still records why).
    """
    candidates = check_auto_settings(args)
    backend = backend or args.auto_backend
    check_backend(backend)
    cost = candidate_cost([c.label for c in candidates])  # a +clean candidate trains twice
    budget = resolve_budget(args.auto_budget, cost)
    if not hasattr(train_dataset, "select"):
        raise ValueError(f"auto needs a datasets.Dataset to hold out rows from, got {type(train_dataset).__name__}; "
                         "pass the training set as a datasets.Dataset.")
    label_column = label_column or next((c for c in ("labels", "label") if c in train_dataset.column_names), None)
    if label_column is None:
        raise ValueError("auto: the training set has no 'labels' or 'label' column; pass label_column=.")
    labels = np.asarray(train_dataset.with_format("numpy", columns=[label_column])[:][label_column], dtype=np.int64)
    kept, held, flips, flips_why = _split_rows(train_dataset, labels, args)
    if flips is not None and flips.any():
        logger.warning(f"auto: {flips_why}.")
    unscored = {} if args.auto_rare_classes != "train" else unscored_classes(labels if flips is None
                                                                               else labels[~flips])
    if unscored:
        logger.warning(f"auto: {_unscored_text(unscored)}: every row of them trains the candidates, and the choice "
                       "is made on the other classes (auto_rare_classes: train).")
    share = (budget - 1.0) / cost  # of a full training, per candidate training
    schedule = _short_schedule(args, share / (1.0 - len(held) / (len(kept) + len(held))))
    settings = {"budget_trainings": budget, "candidate_trainings": cost,
                "candidate_share_of_a_training": round(share, 4),
                "holdout_fraction": args.auto_holdout, "holdout_rows": int(len(held)), "trained_rows": int(len(kept)),
                "candidate_schedule": schedule, "backend": backend, "seed": args.seed,
                "coin_flip_rows": 0 if flips is None else int(flips.sum()), "coin_flips": flips_why,
                "unscored_classes": {str(c): n for c, n in unscored.items()}}
    margin = CE_MARGIN if args.auto_ce_margin is None else float(args.auto_ce_margin)
    table = {c.label: c for c in candidates}
    if args.auto_storage:
        Path(args.auto_storage).mkdir(parents=True, exist_ok=True)
    # the trials' files, removed below; absolute, as Ray's workers run in folders of their own
    scratch = os.path.abspath(tempfile.mkdtemp(prefix="jal-auto-", dir=args.auto_storage))
    try:
        probabilities, failures = run_search(model_init, args, table, train_dataset.select(kept),
                                             train_dataset.select(held), data_collator, processing_class, schedule,
                                             scratch, backend)
        flags = {c.label: read_flags(Path(scratch) / f"{file_name(c.label)}{FLAGS_SUFFIX}")
                 for c in candidates if c.clean}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for c in candidates:  # a trial that left no file ran where the driver cannot see its folder
        if c.label not in probabilities and c.label not in failures:
            failures[c.label] = "no predictions" + (f" in the scratch folder {scratch}; with Ray on several machines, "
                                                    "auto_storage must be a folder every machine sees"
                                                    if backend == "ray" else "")
    weak = None
    if SCORE_TIES_BY_CONSENSUS and WEAK_LABELS in train_dataset.column_names:
        weak = np.asarray(train_dataset.select(held).with_format("numpy", columns=[WEAK_LABELS])[:][WEAK_LABELS])
    for label, found in flags.items():  # a +clean trial scored without its flags could not be applied
        if found is None and label in probabilities and label not in failures:
            failures[label] = "no flags file"
    selection = decide(candidates, probabilities, failures, labels[held], settings, weak_labels=weak, ce_margin=margin)
    batch = args.per_device_train_batch_size * max(args.world_size, 1)
    record_flags(selection, flags, kept, held, batch, base=flips)
    if unscored:
        selection.reason += f"; {_unscored_text(unscored)}: not scored (auto_rare_classes: train)"
    if selection.dropped is None and flips is not None and flips.any():
        selection.dropped = np.flatnonzero(no_batch_of_one(flips, np.arange(len(flips)), batch))  # the last row
        selection.reason += f"; the final training leaves out the {int(flips.sum())} coin-flip rows"
    if args.output_dir and args.process_index == 0:
        selection.write(args.output_dir)
        write_slice_file(args.output_dir, held, labels[held], probabilities, slice_columns(train_dataset, held))
    if all(row["status"] != "ok" for row in selection.candidates):
        raise RuntimeError(f"auto: every candidate failed ({failures}); see {SELECTION_FILE}.")
    logger.warning(f"auto chose {selection.chosen.label}: {selection.reason}\n{candidate_table(selection.candidates)}")
    return selection


def select_for_recipe(parts: dict[str, Any], args: JALConfig, *, raw: dict[str, Any] | None = None,
                      callbacks: Callable[[dict[str, Any]], list[Any]] | None = None) -> JALConfig:
    """`jal train` with ``loss_type: auto``: select on the built parts, return ``args`` for the chosen loss.

    Each candidate starts from a copy of the recipe's freshly built (untrained) model. When a
    ``+clean`` candidate is chosen, the flagged rows leave ``parts["dataset"]["train"]`` (and
    ``raw["train"]``, the same rows before embedding or tokenizing), and ``parts["callbacks"]``
    is rebuilt by ``callbacks(parts["dataset"])`` for the remaining rows.
    """
    import copy

    template = parts["model"]
    selection = select_loss(lambda: copy.deepcopy(template), args, parts["dataset"]["train"],
                            data_collator=parts.get("collator"), processing_class=parts.get("processing_class"))
    if selection.dropped is not None:
        parts["dataset"]["train"] = selection.training_rows(parts["dataset"]["train"])
        if raw is not None:
            raw["train"] = selection.training_rows(raw["train"])
        if callbacks is not None:
            parts["callbacks"] = callbacks(parts["dataset"])
    return selection.apply(args)


def _split_rows(train_dataset: Any, labels: np.ndarray,
                args: JALConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """``(kept, held, flips, why)``: the rows the candidates train on and the slice (indices into
    ``train_dataset``), without the coin flips when auto leaves them out (``flips``, ``(n,)`` bool, else
    None; ``why``: `jal_trainer.auto_coinflips.coin_flip_rows`'s reason)."""
    flips, why = coin_flip_rows(train_dataset, labels, max_share=args.auto_coin_flip_share)
    split = (args.auto_holdout, args.seed, args.auto_rare_classes == "train")
    if flips is not None:
        usable = np.flatnonzero(~flips)
        try:
            kept, held = _holdout(labels[usable], *split)
            return usable[kept], usable[held], flips, why
        except ValueError as error:  # a class lives (almost) on coin flips alone: keep them
            flips, why = None, f"kept: without them {error}"
    kept, held = _holdout(labels, *split)
    return kept, held, None, why


def unscored_classes(labels: np.ndarray) -> dict[int, int]:
    """Class -> row count of the classes of ``labels`` ``(n,)`` too rare to score: fewer than `MIN_SCORED_ROWS` rows.

    Example:
        >>> unscored_classes(np.array([0] * 10 + [1] * 3))
        {1: 3}
    """
    classes, total = np.unique(labels, return_counts=True)
    return {int(c): int(n) for c, n in zip(classes, total) if n < MIN_SCORED_ROWS}


def _unscored_text(unscored: dict[int, int]) -> str:
    """``class 7 (2 rows)`` or ``classes 3 (1 row), 7 (2 rows)``."""
    parts = [f"{c} ({n} row{'s' if n != 1 else ''})" for c, n in unscored.items()]
    return f"class{'es' if len(parts) > 1 else ''} {', '.join(parts)} too rare to score"


def _holdout(labels: np.ndarray, fraction: float, seed: int, train_rare: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, held)`` indices into ``labels``: a stratified ``fraction`` held out (``auto_holdout``); with
    ``train_rare`` (``auto_rare_classes: train``) a class too rare to score (`unscored_classes`) keeps every row
    for training and gives the slice none."""
    rare = unscored_classes(labels) if train_rare else {}
    if rare:
        scored = np.flatnonzero(~np.isin(labels, list(rare)))
        if np.unique(labels[scored]).size < 2:
            raise ValueError(f"auto: {_unscored_text(rare)}, and fewer than 2 classes are left to score the "
                             "candidates on. Add rows, or name a loss_type instead of auto.")
        kept, held = _holdout(labels[scored], fraction, seed, train_rare=False)
        held = scored[held]
        return np.setdiff1d(np.arange(labels.size), held), held
    # a rare class still gets 2 slice rows when it has 4 or more: its score needs more than one row
    kept, held = stratified_holdout(labels, fraction, seed=seed, min_per_class=2)
    classes, total = np.unique(labels, return_counts=True)
    in_slice = np.array([(labels[held] == c).sum() for c in classes])
    if (in_slice < 2).any():
        worst, rows = int(classes[np.argmin(in_slice)]), int(total[np.argmin(in_slice)])
        if rows < MIN_SCORED_ROWS:  # raising auto_holdout would hold out most of this class and starve the rest
            raise ValueError(
                f"auto: class {worst} has only {rows} training row(s); auto scores its candidates on at least 2 "
                "held-out rows of every class and trains them on the rest, which needs 4 or more rows of a class at "
                "a usual holdout. Add rows of that class, drop its rows, set auto_rare_classes: train (its rows "
                "then only train the candidates, and the choice is made on the other classes), or name a "
                "loss_type instead of auto."
            )
        raise ValueError(
            f"auto: the held-out slice ({fraction:.0%} of the rows) has {int(in_slice.min())} row(s) of class "
            f"{worst}, which has {int(total[np.argmin(in_slice)])} training rows; it needs at least 2 of every class. "
            "Raise auto_holdout, add data, or name a loss_type instead of auto."
        )
    return kept, held


def _short_schedule(args: JALConfig, fraction: float) -> dict[str, float]:
    """The candidates' schedule: ``fraction`` of the full one (fewer epochs or steps)."""
    if args.max_steps and args.max_steps > 0:
        return {"max_steps": max(1, int(args.max_steps * fraction))}
    return {"num_train_epochs": round(float(args.num_train_epochs) * min(fraction, 1.0), 4)}


__all__ = ["AUTO", "Candidate", "DEFAULT_CANDIDATES", "FINETUNE_CANDIDATES", "LossSelection", "check_auto_settings",
           "decide", "parse_candidates", "resolve_budget", "select_for_recipe", "select_loss", "unscored_classes"]
