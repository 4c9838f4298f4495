"""Detect-then-retrain cells of the accuracy benchmark (`recipes/benchmark.py`), issue 15 item 4.

A grid names them as pseudo-losses beside the plain losses: ``<loss>+clean`` (e.g. ``ce+clean``,
``jal-ce+clean``) drops the flagged rows, ``<loss>+relabel`` relabels them. One such cell is two
trainings, the cost `jal clean` has for a user:

1. **detect**: the plain ``<loss>`` run of the cell (the same argv as the grid's ``<loss>`` cell, plus
   ``--find_label_issues true``), which flags its training labels with the default rule
   (``label_issue_rule: class-balanced``, from the epoch-mean probabilities);
2. **retrain**: `jal_trainer.clean.clean_run` with ``action="drop"`` (``+clean``) or ``"relabel"``
   (``+relabel``: a flagged row gets its class-balanced prediction; one predicted as its own label is
   dropped): the same recipe and loss, trained again on the edited rows.

The cell's JSON has the usual fields (``test_accuracy`` is the retrained model's clean test
accuracy) plus ``plain_test_accuracy`` (step 1's), ``flagged``, ``dropped``, ``relabelled``,
``trainings`` (2), ``plain_seconds``, ``action`` and ``detect_rule``, and, when the clean training
labels are known, ``wrong_before``, ``dropped_truly_wrong``, ``relabelled_to_clean`` and ``wrong_after``.

Example (grid YAML):
    losses: [ce, jal-ce, ce+clean, jal-ce+clean, jal-ce+relabel]
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

# pseudo-loss suffix -> `jal clean` action: drop the flagged rows (the default), or relabel them
ACTIONS = {"+clean": "drop", "+relabel": "relabel"}
ACTION = "drop"
TRAININGS = 2  # detect (the plain run) + retrain on the kept rows
# Fields of clean.json copied into the cell's JSON.
COUNTS = ("rows", "flagged", "dropped", "relabelled", "dropped_for_batch", "wrong_before", "dropped_truly_wrong",
          "relabelled_to_clean", "wrong_after")


def is_clean(loss: str) -> bool:
    """True for a detect-then-retrain pseudo-loss such as ``ce+clean`` or ``jal-ce+relabel``."""
    return any(loss.endswith(suffix) for suffix in ACTIONS)


def is_single(loss: str) -> bool:
    """True for a single loss: not detect-then-retrain, not ``auto`` nor an auto variant (``auto-wide``)."""
    return not (is_clean(loss) or loss.startswith("auto"))


def action(loss: str) -> str:
    """The `jal clean` action of a pseudo-loss: ``ce+clean`` -> ``drop``, ``ce+relabel`` -> ``relabel``."""
    return next(act for suffix, act in ACTIONS.items() if loss.endswith(suffix))


def base_loss(loss: str) -> str:
    """The loss a cell trains with: ``jal-ce+clean`` -> ``jal-ce``; a plain loss is its own base.

    Example:
        >>> base_loss("nce+rce+clean"), base_loss("ce+relabel"), base_loss("nce+rce")
        ('nce+rce', 'ce', 'nce+rce')
    """
    return next((loss.removesuffix(s) for s in ACTIONS if loss.endswith(s)), loss)


def run_cell(argv: list[str], log_dir_prefix: str = "jalbench-clean-", *, act: str = ACTION) -> dict[str, Any]:
    """Train the plain run of ``argv`` (a `jal train` argv without ``--output_dir``), then `jal clean` it.

    Both run folders live in a scratch folder removed afterwards. Returns the fields the benchmark
    records: ``metrics`` (the retrained run's final metrics), ``plain_metrics``, ``report`` (the noise
    report of the plain run), ``seconds``, ``plain_seconds``, ``curve`` (the retrained run's clean
    test accuracy per epoch, when it evaluated per epoch) and the `jal clean` counts.
    """
    from jal_trainer.clean import clean_run
    from jal_trainer.train import main

    scratch = Path(tempfile.mkdtemp(prefix=log_dir_prefix))
    plain_dir, clean_dir = scratch / "plain", scratch / "clean"
    start = time.perf_counter()
    try:
        plain = main([*argv, "--find_label_issues", "true", "--output_dir", str(plain_dir)])
        plain_seconds = time.perf_counter() - start
        # the retrained run needs no flags of its own: one forward pass per epoch saved
        result = clean_run(plain_dir, action=act, output_dir=clean_dir,
                           overrides=["--find_label_issues", "false", "--report_to", "none"])
        seconds = time.perf_counter() - start
        metrics = json.loads((clean_dir / "metrics.json").read_text())
        report = json.loads((plain_dir / "noise_report.json").read_text())
        issues = json.loads((plain_dir / "label_issues.json").read_text())
        curve, plain_curve = _curve(clean_dir), _curve(plain_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"metrics": metrics, "plain_metrics": plain, "report": report, "seconds": seconds,
            "plain_seconds": round(plain_seconds, 2), "curve": curve, "plain_curve": plain_curve,
            "detect_rule": issues.get("rule"), "action": act,
            **{k: result[k] for k in COUNTS if k in result}}


def _curve(run_dir: Path) -> list[list[float]]:
    state = run_dir / "trainer_state.json"
    history = json.loads(state.read_text()).get("log_history", []) if state.exists() else []
    return [[h["epoch"], h["eval_accuracy"]] for h in history if "eval_accuracy" in h]


def cell_record(cell: dict[str, Any]) -> dict[str, Any]:
    """The detect-then-retrain fields of a benchmark JSON (beside ``test_accuracy`` and ``seconds``)."""
    extra = {k: cell[k] for k in COUNTS if k in cell}
    return {"plain_test_accuracy": float(cell["plain_metrics"]["test_accuracy"]), "trainings": TRAININGS,
            "action": cell["action"], "detect_rule": cell.get("detect_rule"), "plain_seconds": cell["plain_seconds"],
            "curve": cell["curve"], **extra}


# ---- report -------------------------------------------------------------------------------------


def _key(row: dict[str, Any]) -> tuple:
    return row.get("regime"), row["dataset"], row["noise_type"], row["noise_rate"]


def comparisons(rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setting and ``<loss>+clean`` row: against its plain loss and against the best single loss.

    ``best`` is the best mean over the plain losses of the setting (not ``auto``, not another
    ``+clean`` row). ``clear`` is True when a gap exceeds the larger std of the two rows (and both
    have more than one seed), the guard `benchmark.jal_verdicts` uses. Nothing here chooses
    anything: the test split only reports.
    """
    out = []
    for row in (r for r in rows if is_clean(r["loss"])):
        cell = [r for r in rows if _key(r) == _key(row)]
        singles = [r for r in cell if is_single(r["loss"])]
        plain = next((r for r in singles if r["loss"] == base_loss(row["loss"])), None)
        if plain is None or not singles:
            continue
        best = max(singles, key=lambda r: r["mean_accuracy"])
        members = [r for r in runs if _key(r) == _key(row) and r["loss"] == row["loss"]]
        # paired with its own detecting runs (the same seeds) when recorded; else the plain row
        detected = [m["plain_test_accuracy"] for m in members if m.get("plain_test_accuracy") is not None]
        plain_mean = round(sum(detected) / len(detected), 4) if len(detected) == len(members) and detected else \
            plain["mean_accuracy"]
        out.append({
            "regime": row.get("regime"), "dataset": row["dataset"], "noise_type": row["noise_type"],
            "noise_rate": row["noise_rate"], "loss": row["loss"], "n_seeds": row["n_seeds"],
            "mean_accuracy": row["mean_accuracy"], "std_accuracy": row["std_accuracy"],
            "plain_mean": plain_mean, "vs_plain": round(row["mean_accuracy"] - plain_mean, 4),
            "best": best["loss"], "best_mean": best["mean_accuracy"],
            "vs_best": round(row["mean_accuracy"] - best["mean_accuracy"], 4),
            "clear_vs_best": min(row["n_seeds"], best["n_seeds"]) > 1
            and abs(row["mean_accuracy"] - best["mean_accuracy"]) > max(row["std_accuracy"], best["std_accuracy"]),
            "mean_dropped": _mean(members, "dropped"), "mean_relabelled": _mean(members, "relabelled"),
            "mean_rows": _mean(members, "rows"), "dropped_precision": _ratio(members, "dropped_truly_wrong", "dropped"),
            "relabel_precision": _ratio(members, "relabelled_to_clean", "relabelled"),
            "wrong_before": _ratio(members, "wrong_before", "rows"),
            "wrong_after": _ratio(members, "wrong_after", "rows", minus="dropped"),
            "trainings": TRAININGS, "plain_reproduced": _reproduced(members, runs, base_loss(row["loss"])),
        })
    return out


def _reproduced(members: list[dict[str, Any]], runs: list[dict[str, Any]], plain: str) -> str | None:
    """``"k/n"``: in how many seeds the detecting run's accuracy equals the grid's own plain run (to 1e-6)."""
    # a plain cell written from a detecting run (`derived_from`) is that run: it cannot confirm itself
    stored = {r["seed"]: r["test_accuracy"] for r in runs
              if r["loss"] == plain and not r.get("derived_from") and members and _key(r) == _key(members[0])}
    pairs = [(m["plain_test_accuracy"], stored[m["seed"]]) for m in members
             if m.get("plain_test_accuracy") is not None and m["seed"] in stored]
    return f"{sum(abs(a - b) <= 1e-6 for a, b in pairs)}/{len(pairs)}" if pairs else None


def annotate(rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add to each ``<loss>+clean`` table row ``trainings``, ``mean_dropped`` and ``plain_mean_accuracy``
    (the mean of its detecting runs' own accuracy); other rows are returned as they are."""
    out = []
    for row in rows:
        if is_clean(row["loss"]):
            members = [r for r in runs if _key(r) == _key(row) and r["loss"] == row["loss"]]
            plain = [m["plain_test_accuracy"] for m in members if m.get("plain_test_accuracy") is not None]
            row = {**row, "trainings": TRAININGS, "mean_dropped": _mean(members, "dropped"),
                   "plain_mean_accuracy": round(sum(plain) / len(plain), 4) if plain else None}
        out.append(row)
    return out


def _mean(members: list[dict[str, Any]], key: str) -> float | None:
    values = [m[key] for m in members if m.get(key) is not None]
    return round(sum(values) / len(values), 1) if values else None


def _ratio(members: list[dict[str, Any]], num: str, den: str, minus: str | None = None) -> float | None:
    pairs = [(m[num], m[den] - (m[minus] if minus else 0)) for m in members if m.get(num) is not None and m.get(den)]
    total = sum(d for _, d in pairs)
    return round(sum(n for n, _ in pairs) / total, 4) if pairs and total else None


def markdown(comps: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: the comparison table and the verdict on `auto` candidacy, computed from ``comps``."""
    if not comps:
        return []
    lines = ["## Detect, then retrain (`<loss>+clean`, `<loss>+relabel`)", "",
             "Each such row trains the plain `<loss>` run, flags its training labels (class-balanced rule on the "
             "epoch-mean probabilities) and retrains the same recipe with `jal clean`: `+clean` drops the flagged "
             "rows, `+relabel` gives them their class-balanced prediction (a flagged row predicted as its own label "
             f"is dropped). Cost: {TRAININGS} trainings. Precision is the share of dropped rows whose label was "
             "wrong (and of relabelled rows given their true class); wrong labels are the fraction of training "
             "labels that are wrong before and after the edit.", "",
             "| regime | data set | setting | row | accuracy | plain loss | vs plain | best single loss | vs best | "
             "rows changed | precision | wrong before -> after |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in comps:
        lines.append(f"| {c['regime']} | {c['dataset']} | {_setting(c)} | {c['loss'].upper()} | "
                     f"{c['mean_accuracy'] * 100:.2f} ± {c['std_accuracy'] * 100:.2f} | {c['plain_mean'] * 100:.2f} | "
                     f"{c['vs_plain'] * 100:+.2f} | {c['best'].upper()} {c['best_mean'] * 100:.2f} | "
                     f"{c['vs_best'] * 100:+.2f} | {_changed(c)} | {_precision(c)} | {_wrong(c)} |")
    same = [c["plain_reproduced"] for c in comps if c.get("plain_reproduced")]
    if same:
        hits, total = (sum(int(x.split("/")[i]) for x in same) for i in (0, 1))
        lines += ["", f"The detecting run is the grid's plain run retrained with `--find_label_issues true`: its "
                  f"accuracy equals the plain cell's in {hits} of {total} cells (same seed), so the flags come from "
                  "the very model the plain row reports."]
    return lines + ["", verdict(comps), ""]


def _changed(c: dict[str, Any]) -> str:
    if c["mean_dropped"] is None:
        return "n/a"
    relabelled = f"{c['mean_relabelled']:.0f} relabelled, " if c.get("mean_relabelled") else ""
    return f"{relabelled}{c['mean_dropped']:.0f} dropped of {c['mean_rows']:.0f}"


def _precision(c: dict[str, Any]) -> str:
    parts = [f"{name} {c[key] * 100:.0f}%" for name, key in (("relabel", "relabel_precision"),
                                                           ("drop", "dropped_precision")) if c.get(key) is not None]
    return ", ".join(parts) or "n/a"


def _wrong(c: dict[str, Any]) -> str:
    if c["wrong_before"] is None or c["wrong_after"] is None:
        return "n/a"
    return f"{c['wrong_before'] * 100:.1f}% -> {c['wrong_after'] * 100:.1f}%"


def _setting(c: dict[str, Any]) -> str:
    """``sym 0.4``, ``pairflip 0.4`` or the real noise's name, as `benchmark.column_name` writes it."""
    if c["noise_rate"] is None:
        return c["noise_type"]
    return f"{'sym' if c['noise_type'] == 'symmetric' else c['noise_type']} {c['noise_rate']:g}"


def verdict(comps: list[dict[str, Any]]) -> str:
    """Does detect-then-retrain earn a place among `auto`'s candidates? Issue 11: where it beats the best
    single loss. Per regime: against its own plain loss, and every case ahead of the best single loss.
    A report on the test split, not a choice: `auto` must still choose without test labels."""
    parts = []
    for regime in dict.fromkeys(c["regime"] for c in comps):
        cs = [c for c in comps if c["regime"] == regime]
        above_plain = [c for c in cs if c["vs_plain"] > 0]
        above_best = sorted((c for c in cs if c["vs_best"] > 0), key=lambda c: -c["vs_best"])
        clear = [c for c in above_best if c["clear_vs_best"]]
        text = (f"**{regime}**: a detect-then-retrain row beats its own plain loss in {len(above_plain)} of {len(cs)} "
                f"cases (mean change {sum(c['vs_plain'] for c in cs) / len(cs) * 100:+.2f} pt) and the best single "
                f"loss of its setting in {len(above_best)} of {len(cs)}, {len(clear)} of them by more than one std")
        if above_best:
            text += ": " + "; ".join(
                f"{c['loss'].upper()} on {c['dataset']} {_setting(c)} {c['vs_best'] * 100:+.2f} pt over "
                f"{c['best'].upper()}{'' if c['clear_vs_best'] else ' (within one std)'}" for c in above_best)
        text += "."
        if clear:
            names = ", ".join(dict.fromkeys(c["loss"].upper() for c in clear))
            text += (f" By issue 11's test (ahead of the best single loss somewhere, here beyond one std) {names} "
                     f"earns a place among `auto`'s candidates, at {TRAININGS} trainings each.")
        elif above_best:
            text += (" Where it is ahead, the margin is within one std over seeds: not enough to add it to `auto`'s "
                     "candidates by issue 11's test.")
        else:
            text += " It does not earn a place among `auto`'s candidates by issue 11's test."
        parts.append(text)
    return "\n\n".join(parts)
