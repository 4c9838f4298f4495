"""Check: does TREC's test set weigh the classes differently enough to reverse `auto`'s choice?

`auto` picks the loss whose model it estimates to be most accurate on the *training* distribution
(its held-out slice is stratified by the noisy label). On the frozen-encoder probe at TREC pair-flip
0.4 it picks GCE in every seed, and GCE is also the better loss on the slices' clean labels
(`auto_slice_check.md`), yet SCE is 2.3 pt ahead on the test split. TREC-6's test questions are not
drawn like its training questions (HUM is 22% of train, 13% of test; DESC 21% and 28%). This script
retrains the probe candidates with the benchmark's exact arguments, keeps their per-class test
accuracy, and reports each loss's accuracy twice: as measured (the test split's class mix) and
reweighted to the training split's class mix (of its clean labels: the rows' true classes, whose
accuracy `auto`'s corrected slice estimate targets). It reads the test labels only to *explain* a committed
miss, never to choose anything. Result (2026-12-02, seeds 0-2): no; at the training mix SCE leads GCE
by 3.4 pt (2.3 pt as measured), so the miss comes from the candidates' short schedule
(`recipes/results/auto_schedule_check.md`).

Usage:
    OMP_NUM_THREADS=1 python recipes/prior_shift_check.py  # writes recipes/results/prior_shift_check.{json,md}

Example:
    >>> reweighted(np.array([1.0, 0.5]), np.array([0.25, 0.75]))
    0.625
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "recipes/results/runs/finetune/probe/trec/pairflip0.4"
OUT = ROOT / "recipes/results/prior_shift_check"
LOSSES = ("ce", "gce", "sce", "nce_rce", "jal-ce")


def reweighted(per_class_accuracy: np.ndarray, prior: np.ndarray) -> float:
    """Accuracy of a model with these (K,) per-class accuracies on data whose (K,) class shares are ``prior``."""
    return float(np.dot(per_class_accuracy, prior / prior.sum()))


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K,) share of each class's rows predicted right (NaN for a class with no rows)."""
    right = np.bincount(labels[labels == predictions], minlength=num_classes)
    total = np.bincount(labels, minlength=num_classes)
    return np.where(total > 0, right / np.maximum(total, 1), np.nan)


def test_predictions(argv: list[str]) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Run ``jal train argv`` in-process; return its test accuracy, test labels and predictions, clean train labels."""
    import jal_trainer.train as train

    captured: dict[str, Any] = {}

    class Capturing(train.JALTrainer):  # keeps the final test pass's predictions (`train.run` evaluates once)
        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            if metric_key_prefix == "test":
                output = self.predict(eval_dataset, metric_key_prefix="test")
                captured["labels"] = np.asarray(output.label_ids)
                captured["predictions"] = np.asarray(output.predictions).argmax(axis=1)
                # the clean labels: auto estimates clean accuracy on the training rows' true classes
                captured["train_labels"] = np.asarray(self.train_dataset["clean_label"])
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    original = train.JALTrainer
    train.JALTrainer = Capturing
    try:
        with tempfile.TemporaryDirectory() as scratch:
            metrics = train.main([*argv, "--output_dir", scratch])
    finally:
        train.JALTrainer = original
    return metrics["test_accuracy"], captured["labels"], captured["predictions"], captured["train_labels"]


def check(seeds: list[int]) -> dict[str, Any]:
    """Per loss and seed: test accuracy as measured and at the training split's class mix."""
    rows = []
    for loss in LOSSES:
        for seed in seeds:
            committed = json.loads((RUNS / f"{loss}-seed{seed}.json").read_text())
            argv = [Path(a).stem if a.startswith("recipes/") else a for a in committed["argv"][2:]]  # packaged now
            accuracy, labels, predictions, train_labels = test_predictions(argv)
            k = int(max(labels.max(), train_labels.max())) + 1
            by_class = per_class_accuracy(labels, predictions, k)
            rows.append({
                "loss": committed["loss"], "seed": seed, "test_accuracy": accuracy,
                "committed_test_accuracy": committed["test_accuracy"],
                "per_class_accuracy": by_class.round(4).tolist(),
                "at_train_mix": reweighted(by_class, np.bincount(train_labels, minlength=k).astype(float)),
                "test_mix": (np.bincount(labels, minlength=k) / len(labels)).round(4).tolist(),
                "train_mix": (np.bincount(train_labels, minlength=k) / len(train_labels)).round(4).tolist(),
            })
            print(f"{loss} seed {seed}: test {accuracy:.4f} (committed {committed['test_accuracy']:.4f}), "
                  f"at the training mix {rows[-1]['at_train_mix']:.4f}", flush=True)
    return {"rows": rows, "seeds": seeds, "python": platform.python_version(),
            "command": "OMP_NUM_THREADS=1 python recipes/prior_shift_check.py"}


def _mean(rows: list[dict[str, Any]], loss: str, key: str) -> float:
    """Mean of ``key`` over the seeds of ``loss`` (a fraction)."""
    return float(np.mean([r[key] for r in rows if r["loss"] == loss]))


def markdown(result: dict[str, Any]) -> str:
    """The per-loss means as a table, with the class mixes of both splits."""
    rows = result["rows"]
    lines = [
        "# TREC pair-flip 0.4, frozen-encoder probe: test accuracy at the test and at the training class mix",
        "",
        f"Command: `{result['command']}` (2 shared CPU cores, Python {result['python']}, seeds "
        f"{', '.join(map(str, result['seeds']))}; the probe runs of `recipes/grids/finetune.yaml` retrained with "
        "their committed arguments). Test labels are read only to explain the committed miss of `auto` here; "
        "nothing is chosen with them.",
        "",
        f"Class mix (share of rows per class 0-5, by clean label): training split {rows[0]['train_mix']}, test split "
        f"{rows[0]['test_mix']}.",
        "",
        "| loss | test accuracy (as measured) | committed | at the training split's class mix |",
        "|---|---|---|---|",
    ]
    for loss in dict.fromkeys(r["loss"] for r in rows):
        cells = [f"{100 * _mean(rows, loss, key):.2f}" for key in ("test_accuracy", "committed_test_accuracy",
                                                                    "at_train_mix")]
        lines.append(f"| {loss.upper()} | {' | '.join(cells)} |")
    lead = lambda key: 100 * (_mean(rows, "sce", key) - _mean(rows, "gce", key))  # noqa: E731
    lines += ["", f"Reading: at the training split's class mix SCE leads GCE by {lead('at_train_mix'):.1f} pt "
              f"(as measured on test: {lead('test_accuracy'):.1f} pt), so the test split's different class mix "
              "does not explain `auto`'s choice of GCE. The cause is the one in `auto_schedule_check.md`: the "
              "candidates' half training ranks GCE first (by the slices' clean labels too), and SCE overtakes "
              "it only with the full schedule."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=OUT)
    ns = parser.parse_args(argv)
    result = check([int(s) for s in ns.seeds.split(",")])
    ns.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    ns.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
