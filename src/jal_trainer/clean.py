"""`jal clean`: detect, then retrain. Drop or relabel a run's flagged labels and train again with its recipe.

A run trained with ``find_label_issues: true`` wrote ``label_issues.csv`` (one row per training
example: ``index``, ``label``, ``is_label_issue``, ``predicted_label``, ...). `clean_run` reads the
run's own ``recipe.yaml``, rebuilds the same noisy training split (same data, noise seed and
subset: it checks that every given label matches the CSV), changes the flagged rows and trains
a new model into a **new** run folder. The original run is never touched.

The rule (``action``):

- ``"drop"`` (default): train without the flagged rows.
- ``"relabel"``: give each flagged row its ``predicted_label`` (the class-balanced prediction
  ``argmax_k p[k] / t_k``, `jal_trainer.cleanlab_format`); a flagged row whose prediction is its
  own given label is dropped (the model doubts the label but offers no other class).

The new folder holds a normal run plus ``clean.json``: the source run, the action, how many rows
were dropped or relabelled (and, when the clean labels are known, how many of them were truly
wrong), and both clean test accuracies.

Example:
    $ jal train --config quickstart --output_dir runs/quickstart
    $ jal clean runs/quickstart                         # -> runs/quickstart-clean-drop
    $ jal clean runs/quickstart --action relabel --output_dir runs/qs-relabel --num_train_epochs 6
    $ jal clean runs/quickstart --score_with runs/quickstart-ce   # flag with the CE + JAL-CE mean

    >>> from jal_trainer.clean import clean_run
    >>> result = clean_run("runs/quickstart", action="drop")  # doctest: +SKIP
    >>> result["test_accuracy"], result["source_test_accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ACTIONS = ("drop", "relabel")
CLEAN_JSON = "clean.json"


def read_issue_table(run_dir: Path) -> dict[str, np.ndarray]:
    """The run's ``label_issues.csv`` as arrays: ``index``, ``label``, ``is_label_issue``, ``predicted_label``, ..."""
    from jal_trainer.ner.card import is_token_run

    path = run_dir / "label_issues.csv"
    if is_token_run(run_dir):
        raise ValueError(f"{run_dir} is a token-classification (NER) run: jal clean retrains sequence classifiers "
                         "only. Its flagged tags and spans are per sentence in label_issues.json; fix them in your "
                         "data and run jal train again.")
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: the run found no label issues. Train it with --find_label_issues true "
            "(and at least one epoch) first."
        )
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "predicted_label" not in rows[0]:
        raise ValueError(f"{path} has no predicted_label column (written by an older jal). Retrain the run first.")
    table = {key: np.array([r[key] for r in rows]) for key in rows[0]}
    out = {key: table[key].astype(np.int64) for key in ("index", "label", "predicted_label")}
    out["is_label_issue"] = table["is_label_issue"] == "True"
    if "label_issue_score" in table:
        out["label_issue_score"] = table["label_issue_score"].astype(np.float64)
    if "clean_label" in table:
        out["clean_label"] = table["clean_label"].astype(np.int64)
    return out


def rescore(table: dict[str, np.ndarray], runs: list[Path], rule: str) -> dict[str, np.ndarray]:
    """Flags and predictions from the mean of several runs' epoch-mean probabilities (an ensemble).

    Each run must have trained on the same rows (its ``label_issues.csv`` has the same labels) and
    saved ``epoch_probabilities.npz``. The mean of a CE and a JAL-CE training's probabilities scores
    better than either alone on real noise (``recipes/results/label_issues.md``).
    """
    from jal_trainer.callbacks import EPOCH_PROBABILITIES
    from jal_trainer.label_issues import class_balanced_probs, score_label_issues

    means = []
    for run in runs:
        path = run / EPOCH_PROBABILITIES
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist. Score with runs trained with --find_label_issues true.")
        other = read_issue_table(run)["label"]
        if not np.array_equal(other, table["label"]):
            raise ValueError(f"{run} trained on other rows or labels than the run being cleaned. Score with runs of "
                             "the same data, noise and subset (e.g. the same recipe with another loss_type).")
        with np.load(path) as saved:
            mean = saved["sum"].astype(np.float64) / max(int(saved["epochs"]), 1)
        means.append(mean / mean.sum(axis=1, keepdims=True))
    probs = np.mean(means, axis=0)
    _, issues = score_label_issues(probs, table["label"], rule=rule)
    predicted = class_balanced_probs(probs, table["label"]).argmax(axis=1)
    return {**table, "is_label_issue": issues, "predicted_label": predicted.astype(np.int64)}


def edit_rows(train: Any, table: dict[str, np.ndarray], action: str,
              batch_size: int | None = None) -> tuple[Any, dict[str, int]]:
    """Drop or relabel the flagged rows of ``train`` (a `datasets.Dataset`); return it and the counts.

    Args:
        train: the run's noisy training split, rebuilt from its recipe (same rows, same order).
        table: `read_issue_table` of the run.
        action: ``"drop"`` or ``"relabel"`` (module docstring).
        batch_size: the training batch (over all processes). When the kept rows would leave a last
            batch of one row, which batch norm cannot train on, the kept row with the highest
            ``label_issue_score`` is dropped too (counted in ``dropped`` and ``dropped_for_batch``).
    """
    from jal_trainer.label_issues import column_array

    labels = column_array(train, "label").astype(np.int64)
    if len(labels) != len(table["label"]) or not np.array_equal(labels, table["label"]):
        raise ValueError(
            f"The training split rebuilt from recipe.yaml ({len(labels)} rows) does not match label_issues.csv "
            f"({len(table['label'])} rows, or other labels): the data or the noise changed since the run. "
            "Clean a run whose data is still where its recipe points."
        )
    flagged = table["is_label_issue"]
    relabel = flagged & (table["predicted_label"] != labels) if action == "relabel" else np.zeros_like(flagged)
    drop = flagged & ~relabel
    extra = 0
    if batch_size and int((~drop).sum()) % batch_size == 1:
        score = table.get("label_issue_score", np.arange(len(labels), dtype=np.float64))
        drop[np.flatnonzero(~drop)[np.argmax(score[~drop])]] = True
        extra = 1
    new_labels = np.where(relabel, table["predicted_label"], labels)
    counts = {"rows": int(len(labels)), "flagged": int(flagged.sum()), "dropped": int(drop.sum()),
              "relabelled": int(relabel.sum()), "dropped_for_batch": extra}
    if "clean_label" in train.column_names:
        clean = column_array(train, "clean_label").astype(np.int64)
        wrong = labels != clean
        counts.update(wrong_before=int(wrong.sum()), dropped_truly_wrong=int((drop & wrong).sum()),
                      relabelled_to_clean=int((relabel & (new_labels == clean)).sum()))
    if relabel.any():
        feature = train.features["label"]
        train = train.remove_columns("label").add_column("label", new_labels).cast_column("label", feature)
        if "clean_label" in train.column_names and "is_noisy" in train.column_names:
            train = train.remove_columns("is_noisy").add_column("is_noisy", new_labels != clean)
    if drop.any():
        train = train.select(np.flatnonzero(~drop))
    if "clean_label" in train.column_names:
        counts["wrong_after"] = int((column_array(train, "label") != column_array(train, "clean_label")).sum())
    return train, counts


def clean_run(run_dir: str | os.PathLike[str], *, action: str = "drop",
              output_dir: str | os.PathLike[str] | None = None,
              overrides: list[str] | None = None, score_with: list[str | os.PathLike[str]] | None = None
              ) -> dict[str, Any]:
    """Retrain a finished run without (or with relabelled) flagged rows; return the new run's ``clean.json``.

    Args:
        run_dir: a folder written by ``jal train`` with ``recipe.yaml`` and ``label_issues.csv``.
        action: ``"drop"`` or ``"relabel"`` (module docstring).
        output_dir: the new run folder (default ``<run_dir>-clean-<action>``); must not exist or be empty,
            and is never ``run_dir``.
        overrides: further ``jal train`` flags, e.g. ``["--num_train_epochs", "3"]``.
        score_with: other runs on the same rows (e.g. the same recipe with ``loss_type: ce``, or the
            run ``loss_type: auto`` chose): flag with the mean of their and this run's epoch-mean
            probabilities (`rescore`) instead of this run's own flags.
    """
    from jal_trainer.arguments import parse_recipe
    from jal_trainer.train import run

    if action not in ACTIONS:
        raise ValueError(f"action={action!r} is unknown. Choose one of {', '.join(ACTIONS)}.")
    source = Path(run_dir)
    recipe = source / "recipe.yaml"
    if not recipe.is_file():
        raise FileNotFoundError(f"{recipe} does not exist. Pass the folder of a finished `jal train` run.")
    table = read_issue_table(source)  # before any training: a run without issues fails at once
    out = Path(output_dir) if output_dir is not None else source.with_name(f"{source.name}-clean-{action}")
    if out.resolve() == source.resolve():
        raise ValueError(f"output_dir {out} is the run being cleaned. Pass a new folder: the original run is kept.")
    with tempfile.TemporaryDirectory() as work:
        # never overwrite: whatever the source run used, the new folder must be new (or empty)
        argv = ["--config", str(_replayable_recipe(recipe, Path(work))), "--output_dir", str(out),
                "--overwrite_output_dir", "false", *(overrides or [])]
        data_args, model_args, args = parse_recipe(argv)
    if score_with:
        table = rescore(table, [source, *map(Path, score_with)], data_args.label_issue_rule)
    counts: dict[str, int] = {}

    def edit(train: Any) -> Any:
        edited, found = edit_rows(train, table, action,
                                  batch_size=args.per_device_train_batch_size * max(args.world_size, 1))
        counts.update(found)
        return edited

    metrics = run(data_args, model_args, args, command=["jal", "clean", str(source), "--action", action],
                  edit_train=edit)
    before = _read_json(source / "metrics.json") or {}
    result = {"source_run": str(source), "action": action, **counts,
              "test_accuracy": metrics.get("test_accuracy"), "source_test_accuracy": before.get("test_accuracy"),
              "overrides": overrides or [], "scored_with": [str(source), *map(str, score_with or [])]}
    if Path(args.output_dir).is_dir():
        (Path(args.output_dir) / CLEAN_JSON).write_text(json.dumps(result, indent=2))
    return result


def _replayable_recipe(recipe: Path, work: Path) -> Path:
    """A copy of a run's resolved ``recipe.yaml`` that ``jal train`` reads back.

    The saved recipe holds every TrainingArguments value as ``to_dict()`` wrote it: lists where the
    command line takes one value (``report_to: []``), expanded nested configs and unset (null)
    fields. Unset fields, nested configs and empty lists are left to their defaults, a one-element list
    becomes its element (for one-value fields); the run's own output and resume settings are dropped
    (the new run has its own folder).
    """
    from jal_trainer.arguments import make_parser as recipe_parser

    takes_list = {a.dest for a in recipe_parser()._actions if a.nargs in ("+", "*")}
    values = yaml.safe_load(recipe.read_text()) or {}
    kept: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("output_dir", "resume_from_checkpoint", "overwrite_output_dir") or value is None:
            continue
        if isinstance(value, dict):  # nested configs (accelerator_config, ...) as their defaults expanded
            continue
        if isinstance(value, list) and key not in takes_list:
            if not value:
                continue
            value = value[0] if len(value) == 1 else value
        kept[key] = value
    path = work / "recipe.yaml"
    path.write_text(yaml.safe_dump(kept, sort_keys=False))
    return path


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jal clean", allow_abbrev=False,
                                     description="Drop or relabel a run's flagged training labels and retrain with "
                                                 "its recipe.yaml into a new run folder.",
                                     epilog="Any other `jal train` flag overrides the recipe, e.g. "
                                            "--num_train_epochs 3.")
    parser.add_argument("run_dir", help="folder of a finished `jal train` run with label_issues.csv")
    parser.add_argument("--action", choices=ACTIONS, default="drop",
                        help="drop the flagged rows, or relabel them to the predicted class (default: drop)")
    parser.add_argument("--output_dir", default=None, help="new run folder (default: <run_dir>-clean-<action>)")
    parser.add_argument("--score_with", nargs="+", default=None, metavar="RUN",
                        help="other runs on the same rows (e.g. a CE run of the same recipe): flag with the mean of "
                             "their and this run's epoch-mean probabilities")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jal clean``."""
    args, overrides = make_parser().parse_known_args(argv)
    result = clean_run(args.run_dir, action=args.action, output_dir=args.output_dir, overrides=overrides,
                       score_with=args.score_with)
    changed = f"{result['dropped']} dropped, {result['relabelled']} relabelled of {result['rows']} rows"
    print(f"jal clean: {changed}; clean test accuracy {result['source_test_accuracy']} -> {result['test_accuracy']}")
    return 0


__all__ = ["ACTIONS", "clean_run", "edit_rows", "main", "read_issue_table", "rescore"]
