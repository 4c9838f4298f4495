"""Label issues in the columns cleanlab users know: ``is_label_issue``, ``label_score``, ``given_label``,
``predicted_label``.

cleanlab's ``Datalab.get_issues("label")`` and ``CleanLearning.find_label_issues`` return one row
per example with these four columns; `cleanlab_columns` builds the same from our scoring, so a
cleanlab workflow (sorting by ``label_score``, filtering ``is_label_issue``) takes our results
unchanged. The mapping:

- ``is_label_issue``: our flags (the rule's choice, `jal_trainer.label_issues.RULES`).
- ``label_score`` in [0, 1], **low = likely wrong** (cleanlab's convention, the opposite of
  ``label_issue_score``): with ``r = p[given] / t_given = 1 - label_issue_score`` (the model's
  probability of the given label against its typical confidence in that class),
  ``label_score = r / (1 + r)``. It is 0 when the model gives the label no probability, 0.5 at the
  class's typical confidence, and tends to 1 above it. A strictly decreasing function of
  ``label_issue_score``, so both rank the rows identically (same AUROC / AUPRC). With
  ``ranking="flag-margin"`` or ``"noise-margin"`` (or ``"auto"`` when it chose the noise
  margin) the same formula applies to that score:
  ``label_score < 0.5`` exactly where it is > 0 (a flagged row, or one confident learning counts
  as wrong).
- ``given_label``: the label in the data.
- ``predicted_label``: ``argmax_k p[k] / t_k``, the class-balanced prediction (each class's
  probability against the model's typical confidence in it; the class our rule counts the row
  as). cleanlab uses the plain ``argmax_k p[k]``; the two differ where the model is unevenly
  confident across classes.

Example:
    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.65, 0.35], [0.95, 0.05]])
    >>> table = cleanlab_columns(probs, np.array([0, 0, 1, 1, 1]))
    >>> table["is_label_issue"].tolist(), table["predicted_label"].tolist()
    ([False, False, False, False, True], [0, 0, 1, 1, 0])
    >>> table["label_score"].round(2).tolist()
    [0.51, 0.48, 0.6, 0.57, 0.16]
"""

from __future__ import annotations

from typing import Any

import numpy as np

CLEANLAB_COLUMNS = ("is_label_issue", "label_score", "given_label", "predicted_label")


def label_score_from_issue_score(issue_scores: np.ndarray) -> np.ndarray:
    """(N,) cleanlab-style ``label_score`` in [0, 1] (low = likely wrong) from our ``label_issue_score``.

    ``r = 1 - s`` (>= 0), ``label_score = r / (1 + r)``.

    Example:
        >>> label_score_from_issue_score(np.array([1.0, 0.0, -1.0])).round(3).tolist()
        [0.0, 0.5, 0.667]
    """
    ratio = np.clip(1.0 - np.asarray(issue_scores, dtype=np.float64), 0.0, None)
    return ratio / (1.0 + ratio)


def cleanlab_columns(probs: np.ndarray, labels: np.ndarray, *, rule: str | None = None,
                     scores: np.ndarray | None = None, issues: np.ndarray | None = None) -> Any:
    """A ``pandas.DataFrame`` with cleanlab's four label-issue columns, one row per example.

    Args:
        probs: (N, K) predicted probabilities, rows sum to 1.
        labels: (N,) given labels in 0..K-1.
        rule: flagging rule when ``issues`` is not given (default: our default rule).
        scores, issues: (N,) ``label_issue_score`` and flags already computed from ``probs``
            (`jal_trainer.label_issues.score_label_issues`); computed here when left out.

    Returns:
        DataFrame with ``is_label_issue`` (bool), ``label_score`` (float in [0, 1], low = likely
        wrong), ``given_label`` and ``predicted_label`` (int), in row order.
    """
    import pandas as pd

    from jal_trainer.label_issues import DEFAULT_RULE, class_balanced_probs, score_label_issues

    if scores is None or issues is None:
        scores, issues = score_label_issues(probs, labels, rule=rule or DEFAULT_RULE)
    labels = np.asarray(labels, dtype=np.int64)
    predicted = class_balanced_probs(probs, labels).argmax(axis=1)
    return pd.DataFrame({
        "is_label_issue": np.asarray(issues, dtype=bool),
        "label_score": label_score_from_issue_score(scores),
        "given_label": labels,
        "predicted_label": predicted.astype(np.int64),
    })


__all__ = ["CLEANLAB_COLUMNS", "cleanlab_columns", "label_score_from_issue_score"]
