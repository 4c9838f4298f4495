"""Metrics for training on noisy labels, as an offline `evaluate` metric.

`load_metric` loads the ``noisy_label_accuracy`` metric shipped in this package with
``evaluate.load(<local folder>)``: nothing is fetched, so it works with ``HF_HUB_OFFLINE=1``.
`compute_metrics_fn` wraps it as the ``compute_metrics`` of a `transformers.Trainer`.

Example:
    >>> from jal_trainer.metrics import load_metric
    >>> load_metric().compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"]  # doctest: +ELLIPSIS
    0.666...
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Folder of the metric script; ``evaluate.load(str(METRIC_PATH))`` loads it.
METRIC_PATH = Path(__file__).resolve().parent / "noisy_label_accuracy"
#: Configuration whose features include ``noisy_references`` (for ``add_batch``).
NOISY_CONFIG = "noisy"


def load_metric(config_name: str | None = None, **kwargs: Any) -> Any:
    """Load the ``noisy_label_accuracy`` metric from the package, offline.

    Args:
        config_name: ``None`` (predictions, references; ``noisy_references`` as a keyword of
            ``compute``) or ``"noisy"`` (``noisy_references`` is a feature, for ``add_batch``).
        **kwargs: passed to ``evaluate.load`` (default ``keep_in_memory=True``: no cache files).

    Returns:
        An ``evaluate.Metric``.
    """
    import evaluate

    if config_name not in (None, "default", NOISY_CONFIG):
        raise ValueError(f"config_name={config_name!r} is unknown: use None or {NOISY_CONFIG!r}.")
    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(METRIC_PATH), config_name, **kwargs)


def predicted_classes(predictions: Any) -> np.ndarray:
    """(N,) argmax classes from logits (N, K), a tuple whose first item is the logits, or classes (N,)."""
    if isinstance(predictions, (tuple, list)) and predictions and np.ndim(predictions[0]) >= 1:
        predictions = predictions[0]
    array = np.asarray(predictions)
    return array.argmax(axis=-1) if array.ndim == 2 else array.reshape(-1)


def compute_metrics_fn(metric: Any | None = None) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics(EvalPrediction) -> dict`` for `transformers.Trainer`, using the metric.

    The labels of the `EvalPrediction` are either one array ``(N,)``, the labels of the
    evaluation split (clean on a test split), giving ``{"accuracy"}``; or a pair
    ``(labels, clean_label)`` (set ``label_names=["labels", "clean_label"]`` in the training
    arguments to evaluate on a noisy training split), giving ``accuracy`` against the clean
    labels, ``noisy_label_accuracy`` and ``memorisation``.

    Args:
        metric: a loaded metric; default `load_metric()`.

    Example:
        >>> from transformers import EvalPrediction
        >>> fn = compute_metrics_fn()
        >>> fn(EvalPrediction(predictions=np.eye(3), label_ids=np.array([0, 1, 1])))["accuracy"]  # doctest: +ELLIPSIS
        0.666...
    """
    metric = load_metric() if metric is None else metric

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions = predicted_classes(eval_pred.predictions)
        labels = eval_pred.label_ids
        if isinstance(labels, (tuple, list)) and labels and np.ndim(labels[0]) >= 1:
            if len(labels) != 2:
                raise ValueError(
                    f"Expected label_ids to be one array or a pair (labels, clean_label), got {len(labels)} arrays; "
                    "set label_names to ['labels'] or ['labels', 'clean_label']."
                )
            noisy, clean = (np.asarray(x).reshape(-1) for x in labels)
            return metric.compute(predictions=predictions, references=clean, noisy_references=noisy)
        return metric.compute(predictions=predictions, references=np.asarray(labels).reshape(-1))

    return compute_metrics


__all__ = ["METRIC_PATH", "NOISY_CONFIG", "compute_metrics_fn", "load_metric", "predicted_classes"]
