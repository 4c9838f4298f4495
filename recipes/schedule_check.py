"""Check: is the probe's 20-epoch schedule long enough, or are losses still climbing when it ends?

Issue 11 asks for schedules long enough that no loss is still climbing, shown by a curve per set.
``recipes/grids/probe_schedule.yaml`` trains the probe for 40 and 60 epochs on the two cells where
losses still gained in the last quarter of 20 epochs (TREC pair-flip 0.4, WRENCH trec). For every
loss and schedule this script reports the final clean test accuracy and the *late gain*: accuracy
at the end minus accuracy at 75% of the schedule (mean over the seeds that finished). The learning
rate decays linearly to 0, so every curve flattens at its very end; a late gain above
:data:`CLIMBING_PT` says the loss was still learning when the rate ran out.

The test curves are read to judge the schedule's length, as the issue asks; no loss or parameter is
chosen with them.

Usage:
    python recipes/schedule_check.py   # writes recipes/results/probe_schedule.{json,md,png}

Example:
    >>> late_gain([[1, 0.5], [2, 0.6], [3, 0.7], [4, 0.75]])
    5.0
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "recipes/results/runs"
OUT = ROOT / "recipes/results/probe_schedule"
COMMAND = "OMP_NUM_THREADS=1 python recipes/benchmark.py run recipes/grids/probe_schedule.yaml --workers 1 --threads 1"
CLIMBING_PT = 0.5  # a late gain above this (pt, mean over seeds) counts as still climbing
# cell -> (folder of the committed 20-epoch runs, folder prefix of the longer ones)
CELLS = {"trec pair-flip 0.4": ("finetune/probe/trec/pairflip0.4", "probe-schedule/probe/trec-ep{n}/pairflip0.4"),
         "wrench-trec majority-vote": ("finetune/probe/wrench-trec/majority-vote",
                                       "probe-schedule/probe/wrench-trec-ep{n}/majority-vote")}
SCHEDULES = (20, 40, 60)


def late_gain(curve: list[list[float]], at: float = 0.75) -> float:
    """Accuracy at the last epoch minus at ``at`` of the schedule, in points.

    ``curve``: ``[[epoch, accuracy], ...]`` as a run JSON stores it (accuracy in 0..1).
    """
    epochs = np.asarray([e for e, _ in curve], dtype=float)
    acc = np.asarray([a for _, a in curve], dtype=float)
    i = int(np.argmin(np.abs(epochs - at * epochs[-1])))
    return round(100 * float(acc[-1] - acc[i]), 2)


def load(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Single-loss runs in ``folder`` (auto and detect-then-retrain left out), per loss."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(folder.glob("*-seed*.json")):
        run = json.loads(path.read_text())
        if run["loss"] != "auto" and "+" not in run["loss"].replace("nce+rce", "") and run.get("curve"):
            runs[run["loss"]].append(run)
    return runs


def check(seeds: list[int] | None = None) -> dict[str, Any]:
    """Per cell, schedule and loss: seeds, mean final accuracy and mean late gain."""
    result: dict[str, Any] = {"command": COMMAND, "climbing_pt": CLIMBING_PT, "cells": {}}
    for cell, (short, longer) in CELLS.items():
        folders = {20: RUNS / short, **{n: RUNS / longer.format(n=n) for n in SCHEDULES[1:]}}
        table: dict[str, dict[str, Any]] = {}
        for n, folder in folders.items():
            for loss, runs in load(folder).items():
                runs = [r for r in runs if seeds is None or r["seed"] in seeds]
                if runs:
                    table.setdefault(loss, {})[str(n)] = {
                        "seeds": sorted(r["seed"] for r in runs),
                        "accuracy": round(100 * float(np.mean([r["test_accuracy"] for r in runs])), 2),
                        "late_gain": round(float(np.mean([late_gain(r["curve"]) for r in runs])), 2)}
        result["cells"][cell] = table
    return result


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown: one table per cell."""
    lines = ["# Probe schedule: 20, 40 and 60 epochs where losses still gained at epoch 20", "",
             f"Command: `{result['command']}`, then `python recipes/schedule_check.py`. Frozen all-MiniLM-L6-v2, "
             "linear head, AdamW lr 1e-2 (6% warm-up, linear decay to 0), the finetune preset; 2 shared CPU cores. "
             "Each cell: clean test accuracy at the end (%), and in brackets the late gain, accuracy at the end "
             f"minus at 75% of the schedule (pt); **bold**: still climbing (late gain above {result['climbing_pt']} "
             "pt). Means over the seeds named."]
    for cell, table in result["cells"].items():
        lines += ["", f"## {cell}", "", "| loss | " + " | ".join(f"{n} epochs" for n in SCHEDULES) + " |",
                  "|---|" + "---|" * len(SCHEDULES)]
        for loss, row in sorted(table.items()):
            cells = []
            for n in SCHEDULES:
                r = row.get(str(n))
                if r is None:
                    cells.append("n/a")
                    continue
                gain = f"{r['late_gain']:+.1f}"
                gain = f"**{gain}**" if r["late_gain"] > result["climbing_pt"] else gain
                cells.append(f"{r['accuracy']:.1f} ({gain}; seeds {','.join(map(str, r['seeds']))})")
            lines.append(f"| {loss.upper()} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(path: Path, seed: int = 0) -> None:
    """Test-accuracy curves of seed ``seed``: one panel per cell, a colour per loss, a line style per schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CELLS), figsize=(6.5 * len(CELLS), 4.2), squeeze=False)
    styles = dict(zip(SCHEDULES, (":", "--", "-")))
    for ax, (cell, (short, longer)) in zip(axes[0], CELLS.items()):
        folders = {20: RUNS / short, **{n: RUNS / longer.format(n=n) for n in SCHEDULES[1:]}}
        colours: dict[str, str] = {}
        for n, folder in folders.items():
            for loss, runs in sorted(load(folder).items()):
                run = next((r for r in runs if r["seed"] == seed), None)
                if run is None:
                    continue
                colour = colours.setdefault(loss, f"C{len(colours)}")
                e, a = zip(*run["curve"])
                ax.plot(e, 100 * np.asarray(a), styles[n], color=colour, lw=1.2,
                        label=loss.upper() if n == SCHEDULES[-1] else None)
        ax.set_title(f"probe, {cell}, seed {seed} (dotted 20, dashed 40, solid 60 epochs)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("clean test accuracy (%)")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=None, help="comma-separated seeds to average (default: all found)")
    parser.add_argument("--out", type=Path, default=OUT)
    ns = parser.parse_args(argv)
    result = check([int(s) for s in ns.seeds.split(",")] if ns.seeds else None)
    ns.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    ns.out.with_suffix(".md").write_text(markdown(result))
    plot(ns.out.with_suffix(".png"))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
