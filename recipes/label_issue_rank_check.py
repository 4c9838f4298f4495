"""Check rankings of label issues on the held-in sets of `bench_label_issues.py`, without retraining each time.

Issue 15's bar asks the default scorer (`ce + jal-ce epoch-mean (half the epochs each) + class-balanced +
noise-margin`) for an AUPRC at least that of the rule on one CE training, within 0.01, on every set;
it misses on cifar10n-worst (0.653 against 0.675). This script retrains only the scorer's pair
(CE and JAL-CE at half the epochs, the benchmark's seeds, so the probabilities are the benchmark's),
caches their epoch-mean probabilities under ``--cache`` (one ``<set>-seed<k>.npz`` per pair, skipped
when there), and ranks every training row by each candidate ranking below. Each candidate keeps
the scorer's flags (so its F1 is the scorer's); only the order changes. The reference AUPRCs of
the bar (one CE training; cleanlab's same-model 5-fold pipeline) are read from the committed
``recipes/results/label_issues.json``: they are not retrained.

Held-in sets only (noisy training rows and their known wrong labels); no test split is read.

Example:
    $ OMP_NUM_THREADS=1 python recipes/label_issue_rank_check.py --cache /tmp/rank_check
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_label_issues import JAL, RESULTS, RULE, SEEDS, fit  # noqa: E402
from bench_label_issues_tasks import SETTINGS, load_task  # noqa: E402

from jal_trainer.issue_scores import (  # noqa: E402
    NOISE_MARGIN_POWER, class_balanced_probs, class_margin_scores, confident_joint, label_scores,
    noise_margin_scores, per_class_thresholds, score_label_issues)
from jal_trainer.label_issues import column_array, issue_report  # noqa: E402

SCORER = f"ce + jal-ce epoch-mean (half the epochs each) + {RULE} + noise-margin"
ORACLE = "diagnostic, reads the clean labels: noise-margin with the true wrong-label count per class"
SHIFTED_ORACLE = "diagnostic, reads the clean labels: shifted shortfall (power 0.5) with the true counts"


def pair_probabilities(name: str, seed: int, cache: Path) -> dict[str, np.ndarray]:
    """The scorer's two trainings (JAL-CE, then CE, half the epochs each) on one set and seed, cached."""
    path = cache / f"{name}-seed{seed}.npz"
    if path.is_file():
        return dict(np.load(path))
    task = load_task(name)
    half = max(task.settings["epochs"] // 2, 1)
    with tempfile.TemporaryDirectory() as work:
        runs = {loss: fit(task, spec, task.train, f"{work}/{loss}", seed=seed, passes=True, epochs=half)[2]
                for loss, spec in (("jal-ce", JAL), ("ce", {"loss_type": "ce"}))}
    arrays = {"jal": runs["jal-ce"].mean_probabilities, "ce": runs["ce"].mean_probabilities,
              "labels": column_array(task.train, "label"), "clean": column_array(task.train, "clean_label")}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def _ranks(scores: np.ndarray) -> np.ndarray:
    """(N,) ranks in [0, 1], higher score = higher rank (ties share their mean rank)."""
    from scipy.stats import rankdata

    return (rankdata(scores) - 1) / max(len(scores) - 1, 1)


def candidates() -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Rankings of the pair's mean probabilities ``(N, K)`` and the given labels: higher = more likely wrong."""
    return {
        "shortfall": lambda p, y: label_scores(p, y),
        "noise-margin (shipped, power 0.75)": lambda p, y: noise_margin_scores(p, y),
        "mean rank of shortfall and noise-margin": lambda p, y: _ranks(label_scores(p, y)) + _ranks(
            noise_margin_scores(p, y)),
        **{f"weighted rank: {w} noise-margin + {1 - w:.1f} shortfall": _weighted_rank(w) for w in (0.6, 0.7, 0.8, 0.9)},
        "balanced margin (best other class - given, of p / t)": _balanced_margin,
        "renormalised shortfall (1 - b[given] / sum b)": _renormalised_shortfall,
        **{f"Bayes posterior of a wrong label, q = p / t^{g}": _posterior(g) for g in (0.0, 0.5, 1.0)},
        **{f"noise-margin, calibrated counts, power {g}": _calibrated_noise_margin(g) for g in (0.5, 0.75, 1.0)},
        **{f"shifted shortfall, {name} counts, power {g}{' / (1 - cut)' if scaled else ''}": _shifted(counts, g, scaled)
           for name, counts, g, scaled in (("as counted", _counted, 0.0, False), ("as counted", _counted, 0.5, False),
                                           ("calibrated", _calibrated_counts, 0.5, False),
                                           ("calibrated", _calibrated_counts, 0.0, True))},
    }


def _weighted_rank(weight: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Rank aggregation: ``weight`` x the noise-margin's rank + (1 - ``weight``) x the shortfall's rank."""
    return lambda p, y: weight * _ranks(noise_margin_scores(p, y)) + (1 - weight) * _ranks(label_scores(p, y))


def _balanced_margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cleanlab's normalized margin on the class-balanced probabilities: the best other class minus the given one."""
    balanced = class_balanced_probs(probs, labels)
    rows = np.arange(len(labels))
    given = balanced[rows, labels].copy()
    balanced[rows, labels] = -np.inf
    return balanced.max(axis=1) - given


def _renormalised_shortfall(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 - the given class's share of the class-balanced probabilities (a probability again, in [0, 1])."""
    balanced = class_balanced_probs(probs, labels)
    return 1.0 - balanced[np.arange(len(labels)), labels] / np.maximum(balanced.sum(axis=1), 1e-12)


def _posterior(balance: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``1 - P(true = given | x, given)`` by Bayes, with ``P(given | true)`` from the confident joint.

    ``q = p / t**balance`` (renormalised; ``t`` the per-class thresholds) stands for the model's
    estimate of the true class; ``T[i, j] = P(given = i | true = j)`` comes from the confident joint,
    its rows scaled to the given-label counts (as cleanlab calibrates it) and one pseudo-count on the
    diagonal. Then ``P(true = i | x, given = i) = q_i T[i, i] / sum_j q_j T[i, j]``: the class's noise
    rate and the model's confidence in one number, comparable across classes.
    """
    def score(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        joint = _calibrated_joint(probs, labels) + np.eye(probs.shape[1])
        given_if_true = joint / joint.sum(axis=0, keepdims=True)
        q = probs / np.maximum(per_class_thresholds(probs, labels), 1e-12)[None, :] ** balance
        q = q / q.sum(axis=1, keepdims=True)
        rows = np.arange(len(labels))
        agree = q[rows, labels] * given_if_true[labels, labels]
        return 1.0 - agree / np.maximum((q * given_if_true[labels, :]).sum(axis=1), 1e-12)

    return score


def _calibrated_joint(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(K, K)`` confident joint [given, confident class], each given label's row rescaled to that label's count
    (cleanlab's calibration: rows no class claims confidently are spread like the counted ones)."""
    joint = confident_joint(probs, labels).astype(np.float64)
    counts = np.bincount(labels, minlength=probs.shape[1]).astype(np.float64)
    return joint / np.maximum(joint.sum(axis=1, keepdims=True), 1.0) * counts[:, None]


def _calibrated_noise_margin(power: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The noise-margin order with each class's wrong-label count from the *calibrated* confident joint.

    The shipped counts are the confident joint's off-diagonal as counted; a row no class claims
    confidently is not counted at all, so a weak model under-counts, and unevenly across classes.
    cleanlab's calibration rescales each given label's row of the joint to that label's count first.
    """
    return lambda p, y: class_margin_scores(label_scores(p, y), y, _calibrated_counts(p, y), power=power)


def _counted(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K,) wrong labels per given class: the confident joint's off-diagonal, as the shipped order counts them."""
    joint = confident_joint(probs, labels)
    return joint.sum(axis=1) - np.diag(joint)


def _calibrated_counts(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K,) the same off the calibrated joint (`_calibrated_joint`), rounded."""
    joint = _calibrated_joint(probs, labels)
    return np.rint(joint.sum(axis=1) - np.diag(joint)).astype(np.int64)


def shifted_shortfall(scores: np.ndarray, labels: np.ndarray, counts: np.ndarray, *, power: float = 0.0,
                      scaled: bool = False) -> np.ndarray:
    """(N,) each class's shortfall minus its cut: the value midway between its ``counts[i]``-th and next score.

    Unlike the noise margin, which keeps only each row's place in its class, this keeps the
    shortfall's values (how far past its class's cut a row is) and moves every class's cut to 0,
    so the estimated wrong-label counts still set where each class's suspects start. ``power``
    divides by the class's estimated noise rate to that power, as the noise margin does;
    ``scaled`` divides by ``1 - cut`` (the room above the cut).
    """
    out = np.zeros(len(labels))
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        ordered, count = np.sort(scores[members])[::-1], int(np.clip(counts[cls], 0, len(members)))
        if 0 < count < len(members):
            cut = (ordered[count - 1] + ordered[count]) / 2
        else:  # none (or all) estimated wrong: the cut sits just above (below) every row
            cut = ordered[0] + 1e-9 if count == 0 else ordered[-1] - 1e-9
        shift = (scores[members] - cut) / (max(1.0 - cut, 1e-9) if scaled else 1.0)
        out[members] = shift / (max(count, 0.5) / len(members)) ** power
    return out


def _shifted(counts: Callable[[np.ndarray, np.ndarray], np.ndarray], power: float,
             scaled: bool) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda p, y: shifted_shortfall(label_scores(p, y), y, counts(p, y), power=power, scaled=scaled)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="folder of the pairs' probabilities (npz)")
    parser.add_argument("--datasets", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    args = parser.parse_args(argv)
    committed = json.loads((RESULTS / "label_issues.json").read_text())["rows"]

    def reference(name: str, method: str) -> float:
        values = [r["auprc"] for r in committed if r["dataset"] == name and r["method"] == method]
        return float(np.mean(values)) if values else float("nan")

    table: dict[str, dict[str, list[float]]] = {}
    rate_corr: dict[str, list[float]] = {}
    rates: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in args.datasets:
        for seed in args.seeds:
            arrays = pair_probabilities(name, seed, args.cache)
            probs, labels = (arrays["jal"] + arrays["ce"]) / 2, arrays["labels"]
            wrong = labels != arrays["clean"]
            flags = score_label_issues(probs, labels, rule=RULE)[1]
            for label, rank in candidates().items():
                auprc = issue_report(flags, wrong, rank(probs, labels))["auprc"]
                table.setdefault(label, {}).setdefault(name, []).append(auprc)
            # diagnostic, not a candidate (it reads the clean labels): the noise-margin order with each
            # class's true number of wrong labels, and how well the estimated class noise rates track the true ones
            true_counts = np.bincount(labels[wrong], minlength=probs.shape[1])
            oracle = class_margin_scores(label_scores(probs, labels), labels, true_counts, power=NOISE_MARGIN_POWER)
            table.setdefault(ORACLE, {}).setdefault(name, []).append(issue_report(flags, wrong, oracle)["auprc"])
            shifted_oracle = shifted_shortfall(label_scores(probs, labels), labels, true_counts, power=0.5)
            table.setdefault(SHIFTED_ORACLE, {}).setdefault(name, []).append(
                issue_report(flags, wrong, shifted_oracle)["auprc"])
            sizes = np.maximum(np.bincount(labels, minlength=probs.shape[1]), 1)
            estimated = _counted(probs, labels) / sizes  # the shipped order's counts: uncalibrated
            rate_corr.setdefault(name, []).append(float(np.corrcoef(estimated, true_counts / sizes)[0, 1]))
            if seed == args.seeds[0]:
                rates[name] = (true_counts / sizes, estimated)
    bar = {name: max(reference(name, f"ce epoch-mean + {RULE}"), reference(name, "cleanlab (5-fold CE, same model)"))
           for name in args.datasets}
    print("| ranking | " + " | ".join(args.datasets) + " | sets within 0.01 of the bar |")
    print("|---|" + "---|" * (len(args.datasets) + 1))
    print("| bar (max of CE rule, cleanlab 5-fold), committed | " + " | ".join(f"{bar[n]:.3f}" for n in args.datasets)
          + " | |")
    print("| shipped scorer, committed | " + " | ".join(f"{reference(n, SCORER):.3f}" for n in args.datasets) + " | |")
    for label, by_set in table.items():
        means = {n: float(np.mean(v)) for n, v in by_set.items()}
        passing = sum(means[n] >= bar[n] - 0.01 for n in args.datasets)
        print(f"| {label} | " + " | ".join(f"{means[n]:.3f}" for n in args.datasets) + f" | {passing} of "
              f"{len(args.datasets)} |")
    print("\nCorrelation of the estimated class noise rates (confident joint of the pair) with the true ones: "
          + ", ".join(f"{n} {np.mean(v):.2f}" for n, v in rate_corr.items()))
    print(f"\nClass noise rates at seed {args.seeds[0]}, true -> estimated (the shipped order's counts):")
    for name, (true, estimated) in rates.items():
        print(f"- {name}: " + ", ".join(f"{t:.2f} -> {e:.2f}" for t, e in zip(true, estimated)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
