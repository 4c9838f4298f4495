"""The short table `jal train` prints when a run ends: results, label issues, where the files are.

Example:
    >>> print(summary_table("runs/quickstart", {"test_accuracy": 0.91, "train_runtime": 53.2}, None))
    jal train: finished
      clean test accuracy  0.9100
      training time        53.2 s
      run folder           runs/quickstart
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def summary_table(out: str | os.PathLike[str], metrics: Mapping[str, Any],
                  issues: Mapping[str, Any] | None) -> str:
    """Rows of (what, value) aligned in two columns, one fact per line."""
    rows = [("clean test accuracy", f"{metrics['test_accuracy']:.4f}")]
    if metrics.get("train_runtime") is not None:
        rows.append(("training time", f"{metrics['train_runtime']:.1f} s"))
    if issues:
        flagged = f"{issues['num_flagged']} of {issues['num_rows']} training labels ({issues['rule']})"
        rows.append(("label issues", flagged))
        report = issues.get("report")
        if report and not report.get("wrong"):  # clean labels: nothing to find, so no precision either
            n = issues["num_flagged"]
            rows.append(("  vs clean labels", "no training label is wrong" + (f"; the {n} flagged are false alarms"
                                                                             if n else "")))
        elif report:
            rows.append(("  vs clean labels", f"precision {report['precision']:.3f}, recall {report['recall']:.3f}, "
                                              f"F1 {report['f1']:.3f}"))
            if report.get("auroc") is not None:  # the ranking, whatever the count flagged
                rows.append(("  ranking", f"AUROC {report['auroc']:.3f}, AUPRC {report['auprc']:.3f}"))
        rows.append(("  per row", os.path.join(os.fspath(out), "label_issues.csv")))
    rows.append(("run folder", os.fspath(out)))
    width = max(len(name) for name, _ in rows)
    return "\n".join(["jal train: finished", *(f"  {name:<{width}}  {value}" for name, value in rows)])


__all__ = ["summary_table"]
