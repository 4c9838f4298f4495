"""How good a label-issue detector is, against the known wrong rows: flags and ranking.

Two different questions, both reported:

- **the flags** (`flag_report`): precision, recall and F1 of the flagged rows. F1 depends on how
  many rows a rule flags, so it mixes the score with the rule's count.
- **the ranking** (`rank_report`): how well ``label_issue_score`` orders the truly wrong rows above
  the others, whatever the count. ``auroc`` (the chance that a random wrong row outranks a random
  right one; 0.5 = random), ``auprc`` (average precision, as
  ``sklearn.metrics.average_precision_score``; random = the noise rate) and
  ``precision_at_wrong`` (precision of the ``m`` highest scores, ``m`` = the true number of wrong
  rows; it equals recall there). Label-error benchmarks (Northcutt et al., NeurIPS 2021 datasets
  track; cleanlab's own) report these.

`flag_everything_report` is the floor every detector should clear: flagging every row has
precision ``r`` (the noise rate), recall 1, so F1 = ``2r / (1 + r)``; its ranking is random
(AUROC 0.5, AUPRC ``r``). At 48% noise (WRENCH trec) that F1 is already 0.65.

Written in numpy so the core package needs no scikit-learn; the tests check it against sklearn.

Example:
    >>> import numpy as np
    >>> wrong = np.array([True, False, True, False])
    >>> scores = np.array([0.9, 0.1, 0.4, 0.5])
    >>> r = quality_report(scores > 0.45, wrong, scores)
    >>> round(r["f1"], 3), r["auroc"], round(r["auprc"], 3), r["precision_at_wrong"]
    (0.5, 0.75, 0.833, 0.5)
"""

from __future__ import annotations

import numpy as np


def _as_bool(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {values.shape}. Pass one entry per row.")
    return values.astype(bool, copy=False)


def flag_report(issues: np.ndarray, truly_wrong: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of the flagged examples against the known wrong labels.

    Args:
        issues: (N,) bool, flagged examples.
        truly_wrong: (N,) bool, examples whose given label differs from the clean one.

    Returns:
        ``precision``, ``recall``, ``f1`` (0 when undefined), ``flagged`` and ``wrong`` counts,
        ``estimated_noise_rate`` (flagged / N) and ``noise_rate`` (wrong / N).

    Example:
        >>> flag_report(np.array([True, True, False]), np.array([True, False, True]))["f1"]
        0.5
    """
    issues, truly_wrong = _as_bool(issues, "issues"), _as_bool(truly_wrong, "truly_wrong")
    if issues.shape != truly_wrong.shape:
        raise ValueError(f"issues {issues.shape} and truly_wrong {truly_wrong.shape} must have the same shape (N,).")
    hits = int((issues & truly_wrong).sum())
    flagged, wrong, total = int(issues.sum()), int(truly_wrong.sum()), max(len(issues), 1)
    precision = hits / flagged if flagged else 0.0
    recall = hits / wrong if wrong else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "flagged": flagged,
        "wrong": wrong,
        "estimated_noise_rate": flagged / total,
        "noise_rate": wrong / total,
    }


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """(N,) 1-based ranks of ``values``, ties sharing their mean rank (as scipy's rankdata 'average')."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # first index of each run of equal values, and the run lengths
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    lengths = np.diff(np.r_[starts, len(values)])
    mean_rank = starts + (lengths + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, lengths)
    return ranks


def auroc(scores: np.ndarray, truly_wrong: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` (higher = more likely wrong); ``None`` with one class only.

    The Mann-Whitney statistic: P(score of a wrong row > score of a right row), ties counted 1/2.

    Example:
        >>> auroc(np.array([0.9, 0.1, 0.4, 0.5]), np.array([True, False, True, False]))
        0.75
    """
    scores, truly_wrong = np.asarray(scores, dtype=np.float64), _as_bool(truly_wrong, "truly_wrong")
    positives, negatives = int(truly_wrong.sum()), int((~truly_wrong).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = _average_ranks(scores)
    return float((ranks[truly_wrong].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def auprc(scores: np.ndarray, truly_wrong: np.ndarray) -> float | None:
    """Average precision of ``scores`` (higher = more likely wrong); ``None`` when no row is wrong.

    ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, highest first, as
    ``sklearn.metrics.average_precision_score`` (tied scores enter together).

    Example:
        >>> round(auprc(np.array([0.9, 0.1, 0.4, 0.5]), np.array([True, False, True, False])), 4)
        0.8333
    """
    scores, truly_wrong = np.asarray(scores, dtype=np.float64), _as_bool(truly_wrong, "truly_wrong")
    positives = int(truly_wrong.sum())
    if positives == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], truly_wrong[order].astype(np.float64)
    # the last index of each run of tied scores: a threshold takes the whole run
    last = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    true_pos = np.cumsum(hits)[last]
    precision = true_pos / (last + 1)
    recall_step = np.diff(np.r_[0.0, true_pos]) / positives
    return float((recall_step * precision).sum())


def precision_at_wrong(scores: np.ndarray, truly_wrong: np.ndarray) -> float | None:
    """Precision of the ``m`` highest scores, ``m`` = number of truly wrong rows (ties broken by order).

    Example:
        >>> precision_at_wrong(np.array([0.9, 0.1, 0.4, 0.5]), np.array([True, False, True, False]))
        0.5
    """
    scores, truly_wrong = np.asarray(scores, dtype=np.float64), _as_bool(truly_wrong, "truly_wrong")
    wrong = int(truly_wrong.sum())
    if wrong == 0:
        return None
    top = np.argsort(-scores, kind="stable")[:wrong]
    return float(truly_wrong[top].mean())


def rank_report(scores: np.ndarray, truly_wrong: np.ndarray) -> dict[str, float | None]:
    """``auroc``, ``auprc`` and ``precision_at_wrong`` of ``scores`` (higher = more likely wrong).

    Args:
        scores: (N,) float, e.g. ``label_issue_score``; must be finite.
        truly_wrong: (N,) bool, the rows whose given label is wrong.
    """
    scores = np.asarray(scores, dtype=np.float64)
    truly_wrong = _as_bool(truly_wrong, "truly_wrong")
    if scores.shape != truly_wrong.shape:
        raise ValueError(f"scores {scores.shape} and truly_wrong {truly_wrong.shape} must have the same shape (N,).")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite to be ranked. Replace NaN/inf scores before scoring.")
    return {"auroc": auroc(scores, truly_wrong), "auprc": auprc(scores, truly_wrong),
            "precision_at_wrong": precision_at_wrong(scores, truly_wrong)}


def quality_report(issues: np.ndarray, truly_wrong: np.ndarray, scores: np.ndarray | None = None) -> dict:
    """`flag_report` of the flags, plus `rank_report` of the scores when given."""
    report: dict = flag_report(issues, truly_wrong)
    if scores is not None:
        report.update(rank_report(scores, truly_wrong))
    return report


def flag_everything_report(noise_rate: float) -> dict[str, float]:
    """The report of flagging every row at noise rate ``r``: F1 = 2r/(1+r), random ranking.

    Example:
        >>> round(flag_everything_report(0.4)["f1"], 4)
        0.5714
    """
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}. Pass a fraction, not a percentage.")
    return {"precision": noise_rate, "recall": 1.0 if noise_rate else 0.0,
            "f1": 2 * noise_rate / (1 + noise_rate), "auroc": 0.5, "auprc": noise_rate,
            "precision_at_wrong": noise_rate}


__all__ = ["auprc", "auroc", "flag_everything_report", "flag_report", "precision_at_wrong", "quality_report",
           "rank_report"]
