"""Entity-level precision, recall and F1 with ``seqeval`` (the ``token`` extra), offline.

``evaluate.load("seqeval")`` fetches a script from the Hub; this calls the ``seqeval`` package
directly (its default, conlleval-compatible span decoding), so it works with ``HF_HUB_OFFLINE=1``.

Example:
    >>> fn = compute_metrics_fn(["O", "B-PER", "I-PER"])
    >>> import numpy as np
    >>> logits = np.eye(3)[[[0, 1, 2]]] * 5.0               # (1, 3, 3): O B-PER I-PER
    >>> labels = np.array([[0, 1, -100]])                    # last sub-token ignored
    >>> round(fn((logits, labels))["f1"], 3)
    1.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

IGNORE_INDEX = -100


def _seqeval() -> Any:
    try:
        from seqeval import metrics
    except ImportError as err:  # pragma: no cover - the token extra is installed in CI
        raise ImportError(
            "Entity-level metrics need seqeval: pip install 'jal-trainer[token]' (or pip install seqeval)."
        ) from err
    return metrics


def tag_lists(predictions: np.ndarray, labels: np.ndarray,
              names: Sequence[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Predicted and reference tag strings per sentence, keeping only positions with a label.

    Args:
        predictions: ``(N, L)`` class indices or ``(N, L, K)`` logits.
        labels: ``(N, L)`` with ``-100`` at ignored positions.
    """
    predictions = np.asarray(predictions)
    if predictions.ndim == 3:
        predictions = predictions.argmax(-1)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"token labels must be (N, L), got shape {labels.shape}; is this a token-classification run?")
    predicted, reference = [], []
    for pred_row, label_row in zip(predictions, labels):
        keep = label_row != IGNORE_INDEX
        predicted.append([names[i] for i in pred_row[keep]])
        reference.append([names[i] for i in label_row[keep]])
    return predicted, reference


def entity_scores(predicted: list[list[str]], reference: list[list[str]]) -> dict[str, float]:
    """``{"precision", "recall", "f1", "accuracy"}``: seqeval entity scores and token accuracy."""
    metrics = _seqeval()
    return {
        "precision": float(metrics.precision_score(reference, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(reference, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(reference, predicted, zero_division=0)),
        "accuracy": float(metrics.accuracy_score(reference, predicted)),
    }


def compute_metrics_fn(names: Sequence[str]) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics(EvalPrediction)`` giving entity ``precision``, ``recall``, ``f1`` and token ``accuracy``."""
    _seqeval()  # fail before training, not after it, when seqeval is missing
    names = list(names)

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions, labels = eval_pred[0], eval_pred[1]
        if isinstance(predictions, (tuple, list)):
            predictions = predictions[0]
        return entity_scores(*tag_lists(predictions, labels, names))

    return compute_metrics


__all__ = ["compute_metrics_fn", "entity_scores", "tag_lists"]
