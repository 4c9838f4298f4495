"""Check: is `auto`'s one probe miss of issue 11's bar systematic, or the spread of three seeds?

The committed table (``recipes/results/finetune_table.md``) runs every cell with seeds 0-2. In the
frozen-encoder probe, TREC with pair-flip noise 0.4 misses the synthetic-noise bar (`auto` >= best
single loss - 1.5 pt): `auto` 69.4 against SCE 71.7, with stds of about 2 pt on a 500-row test set.
``recipes/grids/probe_seeds.yaml`` reruns the probe's TREC cells (symmetric 0.4 as the control)
with seeds 0-9; this script reads those runs and reports:

- whether seeds 0-2 reproduce the committed runs (same argv, so they must, to the digit);
- every loss's mean +- std over seeds 0-2 and over all seeds, and the bar on both;
- `auto`'s per-seed gap to the loss that is best over all seeds, with a paired 95% interval;
- what `auto` chose at each seed.

The committed 3-seed table and its bar are not changed by this: the extra seeds only say how far
three seeds can be trusted. Nothing here is chosen with the test labels.

Usage:
    python recipes/seed_check.py   # writes recipes/results/probe_seeds.{json,md,png}

Example:
    >>> paired_interval([1.0, 2.0, 3.0])
    (2.0, -0.48, 4.48)
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "recipes/results/runs"
OUT = ROOT / "recipes/results/probe_seeds"
COMMAND = "OMP_NUM_THREADS=1 python recipes/benchmark.py run recipes/grids/probe_seeds.yaml --workers 1 --threads 1"
FIRST_SEEDS = (0, 1, 2)
SYNTHETIC_TOLERANCE = 1.5  # issue 11: on synthetic noise auto >= best single loss's mean - 1.5 pt
# two-sided 95% Student t quantiles by degrees of freedom (scipy is not a dependency of the recipes)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def load_runs(grid: str, dataset: str = "trec", regime: str = "probe") -> dict[tuple[str, str, int], dict[str, Any]]:
    """The run JSONs of ``grid``'s ``regime/dataset`` cells, keyed by (noise folder, loss, seed)."""
    runs = {}
    for path in sorted((RUNS / grid / regime / dataset).glob("*/*-seed*.json")):
        run = json.loads(path.read_text())
        runs[(path.parent.name, str(run["loss"]), int(run["seed"]))] = run
    return runs


def paired_interval(gaps: list[float]) -> tuple[float, float, float]:
    """Mean of per-seed gaps and its two-sided 95% Student t interval, rounded to 2 decimals.

    A paired interval because every loss at one seed sees the same noise draw and test set.
    """
    x = np.asarray(gaps, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return round(mean, 2), float("nan"), float("nan")
    half = T95.get(x.size - 1, 1.96) * float(x.std(ddof=1)) / float(np.sqrt(x.size))
    return round(mean, 2), round(mean - half, 2), round(mean + half, 2)


def _stats(values: list[float]) -> dict[str, float]:
    x = 100 * np.asarray(values, dtype=float)
    return {"n": int(x.size), "mean": round(float(x.mean()), 2), "std": round(float(x.std(ddof=1)), 2)}


def summarise(runs: dict[tuple[str, str, int], dict[str, Any]], noise: str,
              seeds: list[int]) -> dict[str, Any]:
    """Per-loss statistics over ``seeds`` for one noise folder, and the bar for `auto` on them."""
    losses = sorted({loss for (n, loss, _) in runs if n == noise})
    stats = {loss: _stats([runs[(noise, loss, s)]["test_accuracy"] for s in seeds]) for loss in losses}
    singles = {loss: st for loss, st in stats.items() if loss != "auto"}
    best = max(singles, key=lambda loss: singles[loss]["mean"])
    bar = round(singles[best]["mean"] - SYNTHETIC_TOLERANCE, 2)
    return {"seeds": seeds, "stats": stats, "best_single": best, "bar": bar,
            "auto_passes": stats["auto"]["mean"] >= bar}


def complete_seeds(runs: dict[tuple[str, str, int], dict[str, Any]], noise: str) -> list[int]:
    """Seeds at which every loss of ``noise`` has finished (a seed still running is left out)."""
    losses = {loss for (n, loss, _) in runs if n == noise}
    seeds = {s for (n, _, s) in runs if n == noise}
    return sorted(s for s in seeds if all((noise, loss, s) in runs for loss in losses))


def slice_oracle(grid: str, noise: str, seed: int, dataset: str = "trec", regime: str = "probe") -> str | None:
    """The candidate that `auto`'s held-out slice ranks first by its rows' clean labels (None: no slice file).

    Those are noisy *training* rows whose clean labels the benchmark kept; they tell whether auto's
    label-free estimate picked the best of its candidates, never what auto chooses.
    """
    path = RUNS / grid / regime / dataset / noise / f"auto-seed{seed}.slice.npz"
    if not path.exists():
        return None
    with np.load(path) as z:
        clean = {k[2:]: float(np.mean(z[k].argmax(1) == z["clean"])) for k in z.files if k.startswith("p_")}
    return max(clean, key=lambda c: clean[c])


def reproduction(runs: dict, committed: dict) -> dict[str, int]:
    """How many of the committed seed-0-2 runs the new grid repeated, and how many to the digit."""
    shared = [k for k in runs if k in committed and k[2] in FIRST_SEEDS]
    same = [k for k in shared if runs[k]["test_accuracy"] == committed[k]["test_accuracy"]]
    return {"compared": len(shared), "identical": len(same)}


def check(grid: str = "probe-seeds") -> dict[str, Any]:
    """Everything the report shows, as one JSON-able dict."""
    runs, committed = load_runs(grid), load_runs("finetune")
    result: dict[str, Any] = {"command": COMMAND, "reproduction": reproduction(runs, committed), "noise": {}}
    for noise in sorted({n for (n, _, _) in runs}):
        seeds = complete_seeds(runs, noise)
        if not seeds:
            continue
        every = summarise(runs, noise, seeds)
        has_first = set(FIRST_SEEDS) <= set(seeds)
        first = summarise(runs, noise, list(FIRST_SEEDS)) if has_first else None
        best = every["best_single"]
        gaps = [100 * (runs[(noise, "auto", s)]["test_accuracy"] - runs[(noise, best, s)]["test_accuracy"])
                for s in seeds]
        chosen = {s: runs[(noise, "auto", s)].get("auto", {}).get("chosen") for s in seeds}
        oracle = {s: slice_oracle("probe-seeds", noise, s) for s in seeds}
        result["noise"][noise] = {"all_seeds": every, "first_seeds": first, "auto_minus_best": paired_interval(gaps),
                                  "gaps": [round(g, 2) for g in gaps], "chosen": chosen,
                                  "chosen_counts": dict(Counter(chosen.values())), "slice_oracle": oracle}
    return result


def markdown(result: dict[str, Any]) -> str:
    """The report as Markdown."""
    rep = result["reproduction"]
    lines = ["# Probe TREC with ten seeds: is `auto`'s miss of the bar systematic?", "",
             f"Command: `{result['command']}`, then `python recipes/seed_check.py`. "
             "Hardware: 2 shared CPU cores, one torch thread per run. Seeds 0-2 repeat the committed runs "
             f"of `recipes/results/finetune_table.md`: {rep['identical']} of {rep['compared']} give the same "
             "test accuracy to the digit. The committed 3-seed table and its bar are unchanged; this only says "
             "how far three seeds can be trusted. Bar (synthetic noise): auto >= best single loss's mean - 1.5 pt."]
    for noise, cell in result["noise"].items():
        every, first = cell["all_seeds"], cell["first_seeds"]
        lines += ["", f"## {noise}", "", "| loss | seeds 0-2 | all seeds (n) |", "|---|---|---|"]
        for loss, st in every["stats"].items():
            f = f"{first['stats'][loss]['mean']:.2f} ± {first['stats'][loss]['std']:.2f}" if first else "n/a"
            lines.append(f"| {loss.upper()} | {f} | {st['mean']:.2f} ± {st['std']:.2f} ({st['n']}) |")
        mean, lo, hi = cell["auto_minus_best"]
        verdict = lambda s: "passes" if s["auto_passes"] else "misses"  # noqa: E731
        lines += ["", f"- All {len(every['seeds'])} seeds: best single loss {every['best_single'].upper()}, bar "
                  f"{every['bar']:.2f}, auto {every['stats']['auto']['mean']:.2f}: {verdict(every)}."]
        if first:
            lines.append(f"- Seeds 0-2: best single loss {first['best_single'].upper()}, bar {first['bar']:.2f}, "
                         f"auto {first['stats']['auto']['mean']:.2f}: {verdict(first)}.")
        lines += [f"- auto minus {every['best_single'].upper()}, per seed (pt): "
                  f"{', '.join(f'{g:+.1f}' for g in cell['gaps'])}; mean {mean:+.2f}, paired 95% interval "
                  f"[{lo:+.2f}, {hi:+.2f}].",
                  "- auto chose: " + ", ".join(f"seed {s} {c}" for s, c in cell["chosen"].items()) + "."]
        known = {s: o for s, o in cell["slice_oracle"].items() if o}
        if known:
            agree = sum(cell["chosen"][s] == o for s, o in known.items())
            lines.append("- Best candidate by the held-out slice's clean training labels: "
                         + ", ".join(f"seed {s} {o}" for s, o in known.items())
                         + f" (the same as auto's choice on {agree} of {len(known)}).")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """One panel per noise: every seed's test accuracy per loss (dots) and the mean (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load_runs("probe-seeds")
    cells = result["noise"]
    fig, axes = plt.subplots(1, len(cells), figsize=(6 * len(cells), 4), squeeze=False)
    for ax, (noise, cell) in zip(axes[0], cells.items()):
        losses = list(cell["all_seeds"]["stats"])
        for i, loss in enumerate(losses):
            acc = [100 * runs[(noise, loss, s)]["test_accuracy"] for s in cell["all_seeds"]["seeds"]]
            ax.scatter(np.full(len(acc), i) + np.linspace(-0.15, 0.15, len(acc)), acc, s=12,
                       color="C3" if loss == "auto" else "C0")
            ax.hlines(np.mean(acc), i - 0.3, i + 0.3, color="k")
        ax.axhline(cell["all_seeds"]["bar"], ls="--", color="C3", lw=1, label="bar (all seeds)")
        ax.set_xticks(range(len(losses)), [loss.upper() for loss in losses], rotation=30)
        ax.set_title(f"probe, TREC {noise}")
        ax.set_ylabel("clean test accuracy (%)")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    ns = parser.parse_args(argv)
    result = check()
    if not result["noise"]:
        raise SystemExit(f"no finished seed under {RUNS / 'probe-seeds'}: run `{COMMAND}` first")
    ns.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    ns.out.with_suffix(".md").write_text(markdown(result))
    plot(result, ns.out.with_suffix(".png"))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
