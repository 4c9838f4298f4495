"""Add the ``ranking="auto"`` row of the scorer's pair to the committed runs of `bench_label_issues.py`.

The runs under ``results/label_issues_runs/`` predate the "auto" ranking (`jal_trainer.issue_scores.
resolve_ranking`); rerunning the whole benchmark (cleanlab's folds included) only for it would
repeat every training. The row needs only the pair (CE and JAL-CE, half the epochs each):
`label_issue_rank_check.pair_probabilities` retrains it with the benchmark's code and seeds (or
reads its cache). Before adding anything, the retrained pair must reproduce the run's stored
shortfall and noise-margin rows (F1 and AUPRC within 0.002): otherwise the script stops and
changes nothing. The new row takes the stored pair rows' cost (the same two trainings; scoring
is milliseconds) and says which ranking "auto" chose and at what confidence. A run that has the
row already is left as it is. New runs of the benchmark write the row themselves.

Example:
    $ OMP_NUM_THREADS=1 python recipes/bench_label_issues_auto_rows.py --cache /tmp/rank_check
    $ python recipes/bench_label_issues.py --render
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_label_issues import RESULTS, RULE, RUNS  # noqa: E402
from label_issue_rank_check import pair_probabilities  # noqa: E402

from jal_trainer.issue_scores import confidence_above_chance, resolve_ranking, score_label_issues  # noqa: E402
from jal_trainer.label_issues import issue_report  # noqa: E402

HALF = re.compile(r"^ce \+ jal-ce epoch-mean \((\d+) epochs each\) \+ " + re.escape(RULE) + "$")
TOLERANCE = 0.002


def auto_row(run: dict[str, Any], cache: Path) -> dict[str, Any] | None:
    """The run's new row, or None when it has one; raises when the retrained pair does not reproduce the run."""
    rows = run["rows"]
    base = next(r for r in rows if HALF.match(r["method"]))
    method = f"{base['method']} + auto"
    if any(r["method"] == method for r in rows):
        return None
    arrays = pair_probabilities(base["dataset"], base["seed"], cache)
    probs, labels = (arrays["jal"] + arrays["ce"]) / 2, arrays["labels"]
    wrong = labels != arrays["clean"]
    for suffix, ranking in (("", "shortfall"), (" + noise-margin", "noise-margin")):
        stored = next(r for r in rows if r["method"] == base["method"] + suffix)
        scores, flags = score_label_issues(probs, labels, rule=RULE, ranking=ranking)
        again = issue_report(flags, wrong, scores)
        for key in ("f1", "auprc"):
            if abs(again[key] - stored[key]) > TOLERANCE:
                raise RuntimeError(f"{base['dataset']} seed {base['seed']}: the retrained pair gives {key} "
                                   f"{again[key]:.4f} with {ranking}, the run stored {stored[key]:.4f}. Not adding.")
    scores, flags = score_label_issues(probs, labels, rule=RULE, ranking="auto")
    report = issue_report(flags, wrong, scores)
    return {**{k: base[k] for k in ("dataset", "seed", "trainings", "seconds", "cpu_seconds")},
            "method": method, **{k: round(float(v), 4) for k, v in report.items() if v is not None},
            "ranking_chosen": resolve_ranking(probs, "auto"),
            "confidence_above_chance": round(confidence_above_chance(probs), 4),
            "added": "by bench_label_issues_auto_rows.py: the pair retrained, reproducing the stored rows"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="the pairs' probabilities (label_issue_rank_check)")
    parser.add_argument("--runs", type=Path, default=RESULTS / RUNS)
    args = parser.parse_args(argv)
    for path in sorted(args.runs.glob("*-seed*.json")):
        run = json.loads(path.read_text())
        row = auto_row(run, args.cache)
        if row is None:
            print(f"{path.name}: has the row already")
            continue
        run["rows"].append(row)
        path.with_suffix(".tmp").write_text(json.dumps(run, indent=1))
        os.replace(path.with_suffix(".tmp"), path)  # a killed run leaves no half file
        print(f"{path.name}: + auto ({row['ranking_chosen']}, confidence {row['confidence_above_chance']:.2f}): "
              f"F1 {row['f1']:.3f} AUPRC {row['auprc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
