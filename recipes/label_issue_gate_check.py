"""Does the model's confidence tell when the noise margin's class counts can be trusted? Sets the choice never saw.

The noise-margin ranking interleaves the classes by confident learning's estimate of each class's
noise rate. On the six held-in sets of `bench_label_issues.py` it helps on the five text sets (a
head on frozen MiniLM embeddings) and hurts on cifar10n-worst, where the from-scratch CNN's
estimates are wrong (`label_issue_rank_check.py`). There the scorer's pair is also far less sure
of itself: its mean top probability is 0.39-0.41, against 0.64-0.87 on the text sets. This script
checks that reading on new sets, none of them used to choose anything: for each, the scorer's pair
(JAL-CE and CE, half the epochs each, the benchmark's models and settings) and one full CE training
(the bar's "rule on one CE training"), with the pair's mean top probability, and the AUPRCs of
the shortfall and the noise margin against the known wrong rows. One JSON per (set, seed) under
``--out`` (default ``results/label_issue_gate_check_runs/``, committed), skipped when there.

Reads the clean training labels to score (a check, not a scorer); no test split.

Example:
    $ OMP_NUM_THREADS=1 python recipes/label_issue_gate_check.py --seeds 0
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_label_issues import JAL, RESULTS, RULE, fit  # noqa: E402
from bench_label_issues_tasks import SETTINGS, TEXT, load_task  # noqa: E402

from jal_trainer.issue_scores import AUTO_MIN_CONFIDENCE, confidence_above_chance, score_label_issues  # noqa: E402
from jal_trainer.label_issues import column_array, issue_report  # noqa: E402

VISION = SETTINGS["cifar10n-worst"]
CHECK_SETS: dict[str, dict[str, Any]] = {
    "trec-pairflip0.4": {**TEXT, "wrench": "trec", "noise": ("pairflip", 0.4)},
    "chemprot-sym0.4": {**TEXT, "wrench": "chemprot", "noise": ("symmetric", 0.4)},
    "chemprot-pairflip0.3": {**TEXT, "wrench": "chemprot", "noise": ("pairflip", 0.3)},
    "youtube-sym0.3": {**TEXT, "wrench": "youtube", "noise": ("symmetric", 0.3)},
    "cifar10n-aggre": {**VISION, "column": "aggre_label"},
    "cifar10n-random1": {**VISION, "column": "random_label1"},
    "cifar10-sym0.4": {**VISION, "noise": ("symmetric", 0.4)},
    "cifar10-pairflip0.3": {**VISION, "noise": ("pairflip", 0.3)},
}


def check(name: str, seed: int) -> dict[str, Any]:
    """The pair's and one CE training's rankings of one set's noisy training rows."""
    SETTINGS.setdefault(name, CHECK_SETS[name])
    task = load_task(name)
    labels = column_array(task.train, "label")
    wrong = labels != column_array(task.train, "clean_label")
    half = max(task.settings["epochs"] // 2, 1)
    with tempfile.TemporaryDirectory() as work:
        probs = {key: fit(task, spec, task.train, f"{work}/{key}", seed=seed, passes=True, epochs=epochs)[2]
                 .mean_probabilities
                 for key, spec, epochs in (("jal-half", JAL, half), ("ce-half", {"loss_type": "ce"}, half),
                                           ("ce", {"loss_type": "ce"}, None))}
    pair = (probs["jal-half"] + probs["ce-half"]) / 2

    def auprc(p: np.ndarray, ranking: str) -> float:
        scores, flags = score_label_issues(p, labels, rule=RULE, ranking=ranking)
        return round(float(issue_report(flags, wrong, scores)["auprc"]), 4)

    return {"dataset": name, "seed": seed, "noise_rate": round(float(wrong.mean()), 4), "classes": pair.shape[1],
            "pair_mean_top_probability": round(float(pair.max(axis=1).mean()), 4),
            "confidence_above_chance": round(confidence_above_chance(pair), 4),
            "auprc_pair_shortfall": auprc(pair, "shortfall"), "auprc_pair_noise_margin": auprc(pair, "noise-margin"),
            "auprc_ce_rule": auprc(probs["ce"], "shortfall")}


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """A markdown table: per set, the pair's confidence above chance, what "auto" takes, and the AUPRCs (means)."""
    lines = ["| set | seeds | confidence above chance | auto takes | AUPRC shortfall | AUPRC noise margin | "
             "noise margin - shortfall | AUPRC one CE training |", "|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        group = [r for r in rows if r["dataset"] == name]
        mean = {key: float(np.mean([r[key] for r in group])) for key in group[0] if key not in ("dataset", "seed")}
        confidence = mean["confidence_above_chance"]
        takes = "noise margin" if confidence >= AUTO_MIN_CONFIDENCE else "shortfall"
        gap = mean["auprc_pair_noise_margin"] - mean["auprc_pair_shortfall"]
        lines.append(f"| {name} | {len(group)} | {confidence:.2f} | {takes} | {mean['auprc_pair_shortfall']:.3f} | "
                     f"{mean['auprc_pair_noise_margin']:.3f} | {gap:+.3f} | {mean['auprc_ce_rule']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "label_issue_gate_check_runs",
                        help="folder of the per-(set, seed) JSONs")
    parser.add_argument("--sets", nargs="+", default=list(CHECK_SETS), choices=list(CHECK_SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for name in args.sets:
        for seed in args.seeds:
            path = args.out / f"{name}-seed{seed}.json"
            if not path.is_file():
                path.write_text(json.dumps(check(name, seed)))
            rows.append(json.loads(path.read_text()))
            print(json.dumps(rows[-1]), flush=True)
    print("\n".join(summary(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
