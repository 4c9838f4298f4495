"""The label-issue files of a `jal train` run: ``label_issues.csv`` (every row) and ``label_issues.json`` (summary).

Example:
    >>> write_label_issues(callbacks, dataset["train"], data_args, Path("runs/quickstart"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from transformers.utils import logging

from jal_trainer.config import CLEAN_LABEL_COLUMN

logger = logging.get_logger(__name__)
LABEL = "label"


def write_label_issues(callbacks: list[Any], train: Any, data: Any, out: Path) -> dict[str, Any] | None:
    """Flag the training labels the model disagrees with; write ``label_issues.json`` and ``label_issues.csv``.

    Uses the probabilities averaged over epochs by the run's `EpochProbabilitiesCallback`. The
    JSON holds the rule, counts, the precision / recall / F1 of the flags and the AUROC / AUPRC of
    the scores against the clean labels when they are known (beside flagging every row), and the 20
    highest-scoring rows; the CSV one row per training example: ``index``, ``label``,
    ``label_issue_score``, ``is_label_issue`` (and ``clean_label`` when known), and cleanlab's
    ``label_score``, ``given_label``, ``predicted_label`` (`jal_trainer.cleanlab_format`).
    """
    from jal_trainer.callbacks import EpochProbabilitiesCallback
    from jal_trainer.label_issues import ISSUE_COLUMN, SCORE_COLUMN, column_array, find_label_issues
    from jal_trainer.label_quality import flag_everything_report

    source = next((c for c in callbacks if isinstance(c, EpochProbabilitiesCallback) and c.epochs_seen), None)
    if source is None:
        logger.warning("No averaged training probabilities (no epoch ended): label issues not written.")
        return None
    found = find_label_issues(source, train, label_column=LABEL, rule=data.label_issue_rule)
    columns = [c for c in (LABEL, CLEAN_LABEL_COLUMN, SCORE_COLUMN, ISSUE_COLUMN) if c in found.dataset.column_names]
    table = found.dataset.select_columns(columns).add_column("index", np.arange(len(found.dataset)))
    table = table.select_columns(["index", *columns])
    cleanlab = found.to_cleanlab()  # cleanlab's columns too (jal_trainer.cleanlab_format)
    for name in ("label_score", "given_label", "predicted_label"):
        table = table.add_column(name, cleanlab[name].to_numpy())
    table.to_csv(str(out / "label_issues.csv"), index=False)
    top = np.argsort(-found.scores, kind="stable")[:20]
    given = column_array(train, LABEL)
    summary = {
        "rule": found.rule, "probabilities": f"mean over {source.epochs_seen} epochs of the in-sample softmax",
        "num_rows": len(found.scores), "num_flagged": int(found.issues.sum()),
        "flagged_fraction": float(found.issues.mean()) if len(found.issues) else 0.0,
        "report": found.report,
        # the floor every detector must clear: flag every row (F1 = 2r / (1 + r), random ranking)
        "flag_everything": flag_everything_report(found.report["noise_rate"]) if found.report else None,
        "top": [{"index": int(i), "label": int(given[i]), "score": float(found.scores[i])} for i in top],
    }
    (out / "label_issues.json").write_text(json.dumps(summary, indent=2))
    return summary


__all__ = ["write_label_issues"]
