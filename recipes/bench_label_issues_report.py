"""Tables of `bench_label_issues.py`: aggregate the per-run JSONs into label_issues.{json,md}.

Rows carry ``dataset``, ``method``, ``f1``, ``auroc``, ``auprc``, ``seconds`` (wall) and
``cpu_seconds``, means over the seeds that finished, with standard deviations.

Example:
    $ python recipes/bench_label_issues.py --render
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from jal_trainer.report import markdown_table, memorisation_table, plot_memorisation

# The method chosen as "ours" on these held-in sets (see NOTES), and the ones it is held against.
CHOICE = "ce + jal-ce epoch-mean (half the epochs each) + class-balanced + auto"
SINGLE = "jal-ce epoch-mean + class-balanced"  # one JAL-CE training: what `jal train` scores with
CE_RULE = "ce epoch-mean + class-balanced"  # the rule on one CE training
CLEANLAB = "cleanlab (5-fold CE, same model)"
CLEANLAB_LR = "cleanlab (5-fold logistic regression)"
EVERYTHING = "flag every row"
KEYS = ("precision", "recall", "f1", "auroc", "auprc", "precision_at_wrong", "seconds", "cpu_seconds", "flagged",
        "test_accuracy")
TOLERANCE = 0.01  # "at least ... within 0.01"
# Hand-written reading of the committed results; rewrite it when the numbers change.
NOTES: list[str] = [
    "Ours is the mean of a CE and a JAL-CE training's epoch-mean probabilities, each at half the epochs (10 for "
    "text, 4 for vision: about the cost of one full training, 0.30-0.39 of cleanlab's CPU time), flagged by the "
    "class-balanced rule and ranked by `ranking='auto'` (`find_label_issues([ce_callback, jal_callback], data, "
    "ranking='auto')`): the noise margin when the pair's mean confidence above chance, (max p - 1/K) / (1 - "
    "1/K), is at least 0.5, else the shortfall. The ranking never changes the flags, so F1 is that of the same "
    "pair with any ranking. Its rows were added to the committed runs on 2026-12-03 by "
    "`python recipes/bench_label_issues_auto_rows.py --cache /tmp/rank_check`, which retrains the pair with the "
    "benchmark's code and seeds and first checks that it reproduces every stored pair row (F1 and AUPRC within "
    "0.002); the cost is the stored pair's.",
    "**It meets the bar on all six sets.** On the five text sets the pair is confident (0.57-0.74) and `auto` "
    "is the noise margin (the choice before it, identical rows); on cifar10n-worst it is not (0.32-0.34) and "
    "`auto` is the shortfall: AUPRC 0.671 against 0.675 for the rule on one CE training (within 0.01; the noise "
    "margin gave 0.653 there and missed). On chemprot it passes by 0.001 (AUPRC 0.748, cleanlab 0.757). Its F1 "
    "is above cleanlab's on every set (+0.02 to +0.28).",
    "How `auto` came about, plainly: it was added after the noise margin missed cifar10n-worst, and its "
    "threshold separates one held-in set from five. Why it is more than a patch: the noise margin trusts "
    "confident learning's per-class noise counts, and on cifar10n-worst the weak from-scratch CNN's counts "
    "are its own confusions (estimated class noise rates correlate 0.11 with the true ones, against 0.70-0.99 "
    "on the text sets: `label_issue_rank_check.md`). Checked on eight sets that chose nothing "
    "(`label_issue_gate_check.py`, 3 seeds, in `label_issue_rank_check.md`): on seven `auto` took the better "
    "ranking (the noise margin +0.04 to +0.16 on three multi-class text sets, the shortfall +0.02 to +0.10 on "
    "four CNN sets), on the eighth (youtube, symmetric 0.3) the two are 0.006 apart; confidence was 0.56-0.60 "
    "on the text sets and 0.27-0.39 on the CNN sets. The same check shows the pair itself is weak for a "
    "from-scratch CNN at low noise (CIFAR-10N aggregate and random1 labels): one full CE training ranks better "
    "there (AUPRC 0.351 against 0.318, 0.465 against 0.442).",
    "What the noise margin changes: the shortfall `1 - p[given] / t_given` interleaves the classes by the model's "
    "confidence, which misleads on weak-supervision noise in both directions (trec: the model is sure of a class "
    "whose labels are 67% wrong; chemprot: it is timid on classes whose labels are 80-96% wrong). Ranking each "
    "class's rows by the shortfall but interleaving the classes by confident learning's estimate of their noise "
    "rate lifts AUPRC on trec (0.618 -> 0.683), chemprot (0.706 -> 0.748) and trec-sym0.4 (0.915 -> 0.942), and "
    "costs it on sms (0.829 -> 0.763, still above cleanlab's 0.678) and CIFAR-10N (0.671 -> 0.653).",
    "The noise margin's power (how much of the class's noise rate divides the margin) is a choice made on these "
    "sets: 0 ranks chemprot best (0.755) and CIFAR-10N worst (0.624), 1 the reverse (0.740, 0.664); no power "
    "passes all six (0, 0.5 and 0.75 fail CIFAR-10N; 1 fails chemprot and, by 0.001, CIFAR-10N). "
    "The flag margin (the flagged fraction "
    "instead of confident learning's estimate) ranks sms best (0.904) but trec below the CE rule (0.586).",
    "Tried on the first seed only, not in the tables (exploration, same models): 2-fold cross-fitted CE and JAL-CE "
    "probabilities (each half trained once, about one training) rank trec no better than one CE training "
    "(AUPRC 0.58-0.65) and lose "
    "F1 on trec-sym0.4; dropping the epochs whose predictions put 95% of rows in one class (JAL-CE's first "
    "epochs on trec) lifts trec a little (flag margin 0.594 -> 0.621); the raw self-confidence `1 - p[given]` "
    "ranks chemprot well (0.758) and trec below chance (0.46).",
    "At about 50% noise (trec 0.48, chemprot 0.52) flagging every row has the highest F1 of every method (0.649, "
    "0.686): F1 rewards flagging many rows there. Read AUPRC and precision at #wrong on those sets.",
    "cleanlab with scikit-learn's logistic regression on the same frozen embeddings costs 1-5% of ours and ranks "
    "better than every trained head on chemprot (AUPRC 0.771) and about as well as the best on trec-sym0.4 "
    "(0.938); its flags are worse than ours on every set. On a frozen-encoder text task it is the cheap baseline "
    "to beat.",
]


ORDER = ("youtube", "sms", "trec", "chemprot", "cifar10n-worst", "trec-sym0.4")
HALF = "ce + jal-ce epoch-mean (half the epochs each) + class-balanced"
PROBABILITIES = ("jal-ce epoch-mean + class-balanced", "ce epoch-mean + class-balanced",
                 "ce + jal-ce epoch-mean + class-balanced", HALF)
# each with the default ranking (shortfall), flag-margin and noise-margin; the noise-margin's power grid and
# "auto" (noise-margin or shortfall by the pair's confidence) on HALF
CANDIDATES = (*PROBABILITIES, *(f"{name} + {ranking}" for ranking in ("flag-margin", "noise-margin")
                                for name in PROBABILITIES),
              *(f"{HALF} + noise-margin (power {power})" for power in (0.0, 0.5, 1.0)), f"{HALF} + auto",
              "jal-ce AUM < 0", "ce AUM < 0", "ce + jal-ce AUM < 0")


def read_runs(folder: Path) -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*-seed*.json"))]
    runs.sort(key=lambda run: ORDER.index(run["rows"][0]["dataset"]) if run["rows"][0]["dataset"] in ORDER else 99)
    for run in runs:  # "(10 epochs each)" on text, "(4 epochs each)" on vision: one name
        for r in run["rows"]:
            r["method"] = re.sub(r"\(\d+ epochs each\)", "(half the epochs each)", r["method"])
    return runs


def selection_table(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """How ours was chosen: per candidate, mean F1 and AUPRC over the sets, sets meeting the bar, CPU ratios.

    The rule: among the candidates at no more than half of cleanlab's CPU time on every set, the
    most sets meeting the bar, then the highest mean of (F1 + AUPRC) / 2 over the held-in sets.
    Returns the table and the winner.
    """
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    lines, best = [], (-1, -1.0, "")
    for method in CANDIDATES:
        found = [(_find(rows, d, method), _find(rows, d, CLEANLAB), _find(rows, d, CE_RULE)) for d in datasets]
        found = [f for f in found if f[0] is not None and f[1] is not None]
        if not found:
            continue
        f1 = float(np.mean([o["f1"] for o, _, _ in found]))
        auprc_ = float(np.mean([o["auprc"] for o, _, _ in found]))
        ratios = [o["cpu_seconds"] / c["cpu_seconds"] for o, c, _ in found]
        met = sum(verdict(o, [c, ce], c) == "yes" for o, c, ce in found)
        cheap = max(ratios) <= 0.5
        if cheap and (met, (f1 + auprc_) / 2) > best[:2]:
            best = (met, (f1 + auprc_) / 2, method)
        lines.append([method, f"{f1:.3f}", f"{auprc_:.3f}", f"{(f1 + auprc_) / 2:.3f}",
                      f"{min(ratios):.2f}-{max(ratios):.2f}", f"{met} of {len(found)}"])
    table = markdown_table(["candidate", "mean F1", "mean AUPRC", "mean of both", "CPU / cleanlab",
                            "sets meeting the bar"], lines)
    return table, best[2]


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, method): means over seeds, standard deviations of the quality figures."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        for r in run["rows"]:
            groups.setdefault((r["dataset"], r["method"]), []).append(r)
    rows = []
    for (dataset, method), group in groups.items():
        row: dict[str, Any] = {"dataset": dataset, "method": method}
        for key in KEYS:
            values = [r[key] for r in group if r.get(key) is not None]
            row[key] = round(float(np.mean(values)), 4) if values else None
            if key in ("f1", "auroc", "auprc") and values:
                row[f"{key}_std"] = round(float(np.std(values)), 4)
        row.update(wrong=group[0].get("wrong"), trainings=group[0].get("trainings"),
                   seeds=sorted(r["seed"] for r in group))
        rows.append(row)
    return rows


def _pm(row: dict[str, Any] | None, key: str) -> str:
    if row is None or row.get(key) is None:
        return "-"
    std = row.get(f"{key}_std")
    return f"{row[key]:.3f}" + (f" +- {std:.3f}" if std else "")


def _find(rows: list[dict[str, Any]], dataset: str, method: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["dataset"] == dataset and r["method"] == method), None)


def verdict(ours: dict[str, Any], others: list[dict[str, Any] | None], cleanlab: dict[str, Any] | None) -> str:
    """The issue's bar: F1 and AUPRC at least each baseline's (within TOLERANCE), CPU <= half of cleanlab's."""
    misses = []
    for other in filter(None, others):
        for key in ("f1", "auprc"):
            if ours[key] < other[key] - TOLERANCE:
                misses.append(f"{key} < {other['method'].split(' (')[0].split(' epoch')[0]}")
    if cleanlab and ours["cpu_seconds"] > cleanlab["cpu_seconds"] / 2:
        misses.append("CPU > half of cleanlab's")
    return "yes" if not misses else "no: " + ", ".join(dict.fromkeys(misses))


def summary_table(rows: list[dict[str, Any]], choice: str) -> str:
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        ours = _find(rows, dataset, choice)
        if ours is None:
            continue
        cleanlab = _find(rows, dataset, CLEANLAB)
        baselines = [cleanlab, _find(rows, dataset, CE_RULE)]
        # HALF with the noise margin (the choice before "auto") and the shortfall (before the margins)
        for name in dict.fromkeys((choice, f"{HALF} + noise-margin", HALF, SINGLE, CE_RULE, CLEANLAB, CLEANLAB_LR,
                                   EVERYTHING)):
            r = _find(rows, dataset, name)
            if r is None:
                continue
            ratio = f"{r['cpu_seconds'] / cleanlab['cpu_seconds']:.2f}" if cleanlab and r["cpu_seconds"] else "-"
            lines.append([dataset, name + (" (ours)" if name == choice else ""), _pm(r, "f1"), _pm(r, "auroc"),
                          _pm(r, "auprc"), _pm(r, "precision_at_wrong"), f"{r['seconds']:.1f}",
                          f"{r['cpu_seconds']:.1f}", ratio,
                          verdict(ours, baselines, cleanlab) if name == choice else ""])
    return markdown_table(["dataset", "method", "F1", "AUROC", "AUPRC", "precision at #wrong", "seconds",
                           "CPU seconds", "CPU / cleanlab", "meets the bar"], lines)


def write_outputs(out: Path, runs_folder: str, versions: dict[str, str]) -> None:
    """Write label_issues.json (rows + per-seed rows + meta) and label_issues.md, and the memorisation plots."""
    runs = read_runs(out / runs_folder)
    if not runs:
        print(f"no finished runs under {out / runs_folder}")
        return
    rows = aggregate(runs)
    meta: dict[str, Any] = {"versions": versions, "choice": CHOICE, "datasets": {}}
    curves = {}
    for run in runs:
        name = run["rows"][0]["dataset"]
        meta["datasets"].setdefault(name, {"settings": run["settings"], "noise_rate": run["noise_rate"],
                                           "train_size": run["train_size"], "machine": run["machine"],
                                           "date": run["date"], "prepare_seconds": run["prepare_seconds"]})
        if run.get("memorisation"):
            curves[name] = run["memorisation"]
    payload = {"rows": rows, "runs": [r for run in runs for r in run["rows"]], "meta": meta}
    (out / "label_issues.json").write_text(json.dumps(payload, indent=1))
    for name, curve in curves.items():
        plot_memorisation({k.upper(): v for k, v in curve.items()}, out / f"memorisation_{name}.png",
                          title=f"{name}: memorisation of the wrong labels, CE vs JAL-CE (first seed)")
    (out / "label_issues.md").write_text(markdown(rows, meta, curves))
    print(f"wrote {out / 'label_issues.json'} and label_issues.md ({len(runs)} runs)")


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], curves: dict[str, Any]) -> str:
    first = next(iter(meta["datasets"].values()))
    selection = selection_table(rows)
    lines = [
        "# Label issues on real noise: flags and ranking, against cleanlab",
        "",
        f"Produced by `OMP_NUM_THREADS=1 python recipes/bench_label_issues.py` on {first['machine']} "
        f"({first['date']}); versions {json.dumps(meta['versions'])}. One JSON per finished (data set, seed) "
        "under `label_issues_runs/`; a rerun skips them.",
        "",
        "- **F1** (precision / recall in the JSON) is of the flagged rows; **AUROC**, **AUPRC** and "
        "**precision at #wrong** (precision of the m highest scores, m = the true number of wrong rows) are "
        "of the ranking by `label_issue_score` (cleanlab rows: by `-get_label_quality_scores`), against the truly "
        "wrong rows (`label != clean_label`). Mean +- std over the training seeds; the noisy labels are fixed.",
        "- **seconds** (wall) and **CPU seconds** (this process): the trainings, their per-epoch prediction passes "
        "over the training rows (epoch-mean probabilities and AUM), held-out predictions, and scoring. Left out: "
        "loading data, the frozen MiniLM embeddings (computed once, cached), the test evaluations of the first "
        "seed (memorisation curves only). The machine was shared with other jobs: wall seconds vary; CPU seconds "
        "are steadier.",
        f"- **ours** = `{CHOICE}` (chosen on these held-in sets: How ours was chosen). `{SINGLE}` is what `jal "
        f"train` scores with by itself (one training); `{CE_RULE}` is the rule on one CE training.",
        "- **meets the bar**: F1 and AUPRC at least those of cleanlab's same-model 5-fold pipeline and of the rule on "
        f"one CE training (within {TOLERANCE}), at no more than half of cleanlab's CPU time.",
        "",
        "## How ours was chosen",
        "",
        "On these held-in sets (the noisy training rows and their known wrong labels; never a test split), among "
        "the candidates at no more than half of cleanlab's CPU time on every set, the most sets meeting the bar, "
        "then the highest mean of (F1 + AUPRC) / 2:",
        "",
        selection[0],
        "",
        f"Chosen by that rule: `{selection[1]}`." + ("" if selection[1] == CHOICE else
                                                   f" (CHOICE in the script is still `{CHOICE}`: update it.)"),
        "",
        "## Ours against the baselines",
        "",
        summary_table(rows, CHOICE),
        "",
        "## Every method",
        "",
        markdown_table(["dataset", "method", "F1", "AUROC", "AUPRC", "precision at #wrong", "precision", "recall",
                        "flagged", "wrong", "seconds", "CPU seconds", "trainings", "test acc. (seed 0)"],
                       [[r["dataset"], r["method"], _pm(r, "f1"), _pm(r, "auroc"), _pm(r, "auprc"),
                         _pm(r, "precision_at_wrong"), _pm(r, "precision"), _pm(r, "recall"),
                         f"{r['flagged']:.0f}" if r.get("flagged") is not None else "-", r.get("wrong"),
                         f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}", r.get("trainings"),
                         r.get("test_accuracy")] for r in rows]),
        "",
        "## Settings",
        "",
    ]
    for name, info in meta["datasets"].items():
        lines.append(f"- **{name}**: {json.dumps(info['settings'])}; noise rate {info['noise_rate']:.4f}, "
                     f"{info['train_size']} training rows; data preparation (not counted) {info['prepare_seconds']} s.")
    lines += ["", "JAL-CE: loss_preset cifar10 (alpha 1, beta 1, a 30). AdamW, cosine schedule, gradient clipping 5, "
              "no weight decay; cleanlab's folds: the same model, epochs and optimiser with CE.", ""]
    if NOTES:
        lines += ["## Reading the table", "", *[f"- {note}" for note in NOTES], ""]
    for name, runs in curves.items():
        lines += [f"## Memorisation: {name}", "", f"![memorisation {name}](memorisation_{name}.png)", ""]
        for run, memo in runs.items():
            lines += [f"**{run.upper()}**", "", memorisation_table(memo), ""]
    return "\n".join(lines)


__all__ = ["CHOICE", "aggregate", "summary_table", "write_outputs"]
