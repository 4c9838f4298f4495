"""Find the wrong labels of a data set from one model trained with a robust loss.

A model trained with JAL (or another robust loss) on noisy labels does not memorise the wrong
labels (see `jal_trainer.callbacks.MemorisationCallback`), so its predicted probabilities on its
*own training set* still disagree with a wrong label. Confident learning (Northcutt et al., JAIR
2021) needs out-of-fold probabilities because a cross-entropy model memorises; here a single
training is enough, and the scoring below is confident learning's, applied in-sample.

The score of an example is its **self-confidence complement** ``1 - p[given label]``: 0 when the
model fully agrees with the label, 1 when it gives the label no probability. Which examples are
flagged is a separate, documented rule (`RULES`):

- ``"argmax"`` (default): an issue when the most probable class is not the given label. It
  needs no calibration, which suits robust losses: a JAL model is under-confident (NCE and AMSE
  do not push ``p`` to 1), so thresholds on probability levels misjudge it.
- ``"per-class-threshold"``: the off-diagonal of confident learning's *confident joint*. Each
  class j gets the threshold ``t_j = mean of p_j over the examples labelled j``; an example
  labelled i is counted as ``j* = argmax {p_k : p_k >= t_k}`` (the most probable class that
  clears its own threshold) and is an issue when such a class exists and ``j* != i``.
- ``"noise-rate"``: confident learning's "prune by class": in each given class i, flag the ``n_i``
  examples with the highest score, where ``n_i`` is the count of row i off the diagonal of the
  confident joint (an estimate of how many labels of class i are wrong), or
  ``noise_rate * (count of class i)`` when a noise rate is passed.

Why argmax by default: measured, not assumed. On the committed benchmark
(``recipes/results/label_issues.md``: WRENCH youtube and trec, CIFAR-10N worst) with the
in-sample probabilities of one JAL-CE training, argmax had the best mean F1; the per-class
thresholds (confident learning's own choice, made for calibrated out-of-fold CE probabilities)
were stricter and lost recall, most on CIFAR-10N (F1 0.52 against 0.63), while winning on trec
(0.34 against 0.31).

Example:
    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.95, 0.05], [0.3, 0.7], [0.6, 0.4]])
    >>> scores, issues = score_label_issues(probs, np.array([0, 1, 1, 1]))
    >>> scores.round(2).tolist(), issues.tolist()
    ([0.1, 0.95, 0.3, 0.6], [False, True, False, True])
    >>> score_label_issues(probs, np.array([0, 1, 1, 1]), rule="per-class-threshold")[1].tolist()
    [False, True, False, False]
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

SCORE_COLUMN = "label_issue_score"
ISSUE_COLUMN = "is_label_issue"
RULES = ("argmax", "per-class-threshold", "noise-rate")
DEFAULT_RULE = "argmax"


# ---- the numpy core -------------------------------------------------------------------------------


def _check_inputs(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2:
        raise ValueError(
            f"probs must have shape (N, K), got {probs.shape}. Pass one row of class probabilities per example."
        )
    if labels.shape != (probs.shape[0],):
        raise ValueError(
            f"labels must have shape (N,) = ({probs.shape[0]},) to match probs, got {labels.shape}. "
            "Pass one given label per row of probs."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}. Pass class indices 0..K-1.")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {probs.shape[1] - 1}], got values in [{labels.min()}, {labels.max()}]. "
            "Drop unlabelled rows (-1) or widen probs to every class."
        )
    if not np.all(np.isfinite(probs)) or probs.min() < 0:
        raise ValueError("probs must be finite and non-negative. Pass softmax probabilities, not logits.")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("Each row of probs must sum to 1. Apply softmax to the logits first.")
    return probs, labels.astype(np.int64)


def per_class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Confident learning's thresholds: ``t_j`` = mean of ``p_j`` over the examples labelled ``j``.

    Args:
        probs: (N, K) predicted probabilities, rows sum to 1.
        labels: (N,) given labels in 0..K-1.

    Returns:
        (K,) thresholds. A class that labels no example gets threshold 1 + eps (never cleared), so
        nothing is reassigned to a class the data never uses.

    Example:
        >>> per_class_thresholds(np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6]]), np.array([0, 0, 1])).tolist()
        [0.8, 0.6]
    """
    probs, labels = _check_inputs(probs, labels)
    num_classes = probs.shape[1]
    counts = np.bincount(labels, minlength=num_classes)
    sums = np.zeros(num_classes)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0 + 1e-9)


def confident_assignment(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(N,) class each example is confidently counted as in the confident joint, -1 if none.

    The class is ``argmax {p_k : p_k >= t_k}``: the most probable class that clears its own threshold.
    """
    above = probs >= thresholds[None, :]
    masked = np.where(above, probs, -np.inf)
    return np.where(above.any(axis=1), masked.argmax(axis=1), -1)


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K, K) counts: entry [i, j] = examples labelled i confidently counted as class j.

    Rows index the given label, columns the confidently predicted one; the off-diagonal total is
    the estimated number of wrong labels (examples clearing no threshold are not counted).

    Example:
        >>> confident_joint(np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]), np.array([0, 0, 1])).tolist()
        [[1, 1], [0, 1]]
    """
    probs, labels = _check_inputs(probs, labels)
    assigned = confident_assignment(probs, per_class_thresholds(probs, labels))
    num_classes = probs.shape[1]
    joint = np.zeros((num_classes, num_classes), dtype=np.int64)
    keep = assigned >= 0
    np.add.at(joint, (labels[keep], assigned[keep]), 1)
    return joint


def score_label_issues(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    rule: str = DEFAULT_RULE,
    noise_rate: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Score every example by how strongly the model disagrees with its label, and flag the issues.

    Args:
        probs: (N, K) predicted probabilities (softmax of the logits), rows sum to 1.
        labels: (N,) given (possibly wrong) labels in 0..K-1.
        rule: which examples to flag: ``"argmax"`` (default), ``"per-class-threshold"`` or
            ``"noise-rate"`` (see the module docstring).
        noise_rate: only for ``rule="noise-rate"``: the known fraction of wrong labels in [0, 1];
            ``None`` estimates it per class from the confident joint.

    Returns:
        scores: (N,) float64 ``1 - p[given]`` in [0, 1]; higher means more likely mislabelled.
        issues: (N,) bool, True for the flagged examples.

    Example:
        >>> probs = np.array([[0.6, 0.4], [0.1, 0.9], [0.45, 0.55]])
        >>> score_label_issues(probs, np.array([0, 0, 1]), rule="argmax")[1].tolist()
        [False, True, False]
    """
    probs, labels = _check_inputs(probs, labels)
    if noise_rate is not None and rule != "noise-rate":
        raise ValueError(
            f"noise_rate is only used by rule='noise-rate', not rule={rule!r}. Drop it or change the rule."
        )
    scores = 1.0 - probs[np.arange(len(labels)), labels]
    if rule == "argmax":
        issues = probs.argmax(axis=1) != labels
    elif rule == "per-class-threshold":
        assigned = confident_assignment(probs, per_class_thresholds(probs, labels))
        issues = (assigned >= 0) & (assigned != labels)
    elif rule == "noise-rate":
        issues = _prune_by_class(probs, labels, scores, noise_rate)
    else:
        raise ValueError(f"rule={rule!r} is unknown. Choose one of {', '.join(RULES)}.")
    return scores, issues


def _prune_by_class(probs: np.ndarray, labels: np.ndarray, scores: np.ndarray, noise_rate: float | None) -> np.ndarray:
    """In each given class, flag its estimated number of wrong labels, highest scores first."""
    num_classes = probs.shape[1]
    counts = np.bincount(labels, minlength=num_classes)
    if noise_rate is None:
        joint = confident_joint(probs, labels)
        wrong = joint.sum(axis=1) - np.diag(joint)
    else:
        if not 0.0 <= noise_rate <= 1.0:
            raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}. Pass a fraction, not a percentage.")
        wrong = np.rint(noise_rate * counts).astype(np.int64)
    issues = np.zeros(len(labels), dtype=bool)
    for cls in range(num_classes):
        members = np.flatnonzero(labels == cls)
        # stable sort: ties keep data order, so the result is deterministic
        ranked = members[np.argsort(-scores[members], kind="stable")]
        issues[ranked[: int(wrong[cls])]] = True
    return issues


def issue_report(issues: np.ndarray, truly_wrong: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of the flagged examples against the known wrong labels.

    Args:
        issues: (N,) bool, flagged examples.
        truly_wrong: (N,) bool, examples whose given label differs from the clean one.

    Returns:
        ``precision``, ``recall``, ``f1`` (0 when undefined), ``flagged`` and ``wrong`` counts,
        ``estimated_noise_rate`` (flagged / N) and ``noise_rate`` (wrong / N).

    Example:
        >>> issue_report(np.array([True, True, False]), np.array([True, False, True]))["f1"]
        0.5
    """
    issues, truly_wrong = np.asarray(issues, dtype=bool), np.asarray(truly_wrong, dtype=bool)
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


# ---- predictions of a trainer or a model ----------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, computed stably in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def trainer_logits(trainer: Any, dataset: Any) -> np.ndarray:
    """(N, K) logits of ``trainer.model`` on ``dataset``, in dataset order, gathered over processes.

    Uses ``trainer.predict``: sequential sampler, padding of the last batch dropped, so every
    process gets all N rows. Pass the rows without augmentation (e.g.
    ``DeviceImageDataset.without_augmentation()``). (`JALTrainer` starts every evaluation loop
    from zero, so this pass does not leak into the loss parts of the next logged evaluation.)
    """
    output = trainer.predict(dataset, metric_key_prefix="label_issues")
    if output.predictions is None:
        raise ValueError("trainer.predict returned no logits: set prediction_loss_only=False in the arguments.")
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    logits = np.asarray(logits)
    if logits.ndim != 2 or len(logits) != len(dataset):
        raise ValueError(
            f"trainer.predict returned logits of shape {logits.shape} for {len(dataset)} rows; expected (N, K). "
            "Use a classification model whose output is (batch, num_classes) logits."
        )
    return logits


def model_logits(model: Any, dataset: Any, *, batch_size: int = 256, collate_fn: Any = None,
                 exclude: tuple[str, ...] = ()) -> np.ndarray:
    """(N, K) logits of a plain ``nn.Module`` (or transformers model) on ``dataset``, one process.

    The columns passed to ``forward`` are those it names (all numeric columns if it takes
    ``**kwargs``), minus labels, the analysis columns of `JALConfig` (``clean_label``,
    ``is_noisy``, ``index``) and ``exclude``.
    """
    import torch
    from torch.utils.data import DataLoader

    from jal_trainer.trainer import logits_of

    params = inspect.signature(model.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    from jal_trainer.config import DEFAULT_ANALYSIS_COLUMNS

    skip = {"label", "labels", *DEFAULT_ANALYSIS_COLUMNS, *exclude}
    features = dataset.features
    columns = [c for c in dataset.column_names
               if c not in skip and (c in params or (takes_any and _is_numeric(features[c])))]
    if not columns:
        raise ValueError(
            f"None of the dataset columns {dataset.column_names} is an argument of {type(model).__name__}.forward. "
            "Name the forward arguments after the input columns (e.g. input_ids, pixel_values, embeddings)."
        )
    data = dataset.select_columns(columns)
    if collate_fn is None:
        data = data.with_format("torch")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32

    def to_model(value: Any) -> Any:
        # Arrow stores python floats as float64: feed floating inputs in the model's own dtype
        if isinstance(value, torch.Tensor):
            return value.to(device, dtype=dtype if value.is_floating_point() else value.dtype)
        return value

    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.no_grad():
            for batch in DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_fn):
                batch = {k: to_model(v) for k, v in batch.items()}
                chunks.append(logits_of(model(**batch)).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(chunks, axis=0)


def _is_numeric(feature: Any) -> bool:
    """True for a numeric (or bool, or class-label) feature, or nested lists / arrays of one."""
    while hasattr(feature, "feature"):  # List / Sequence / LargeList
        feature = feature.feature
    dtype = getattr(feature, "dtype", None)
    return dtype is not None and dtype not in ("string", "large_string", "binary", "large_binary")


# ---- the data-set level API ------------------------------------------------------------------------


@dataclass
class LabelIssues:
    """Result of `find_label_issues`.

    Attributes:
        dataset: the input data set plus ``label_issue_score`` (float) and ``is_label_issue`` (bool).
        scores: (N,) ``1 - p[given]``.
        issues: (N,) bool flags.
        probs: (N, K) predicted probabilities used for scoring.
        rule: the flagging rule.
        report: precision / recall / F1 against the clean labels, or ``None`` when they are unknown.
        seconds: wall time of prediction and scoring.
    """

    dataset: Any
    scores: np.ndarray
    issues: np.ndarray
    probs: np.ndarray
    rule: str
    report: dict[str, float] | None = None
    seconds: float = 0.0


def find_label_issues(
    source: Any,
    dataset: Any,
    *,
    label_column: str = "label",
    clean_label_column: str = "clean_label",
    noisy_column: str = "is_noisy",
    rule: str = DEFAULT_RULE,
    noise_rate: float | None = None,
    batch_size: int = 256,
    collate_fn: Any = None,
    predict_dataset: Any = None,
) -> LabelIssues:
    """Score a data set's labels with a trained model and flag the likely wrong ones.

    Args:
        source: a `transformers.Trainer` (predicts with ``trainer.predict``: its collator, every
            process), a ``torch.nn.Module`` (one process, columns named by ``forward``), or an
            (N, K) array of predicted probabilities already computed.
        dataset: a `datasets.Dataset` with the given labels in ``label_column`` and the model inputs.
        label_column: column of the given (possibly noisy) labels.
        clean_label_column: column of the true labels, if known, for the report.
        noisy_column: boolean column of known wrong labels, used when ``clean_label_column`` is absent.
        rule: flagging rule, one of `RULES` (module docstring).
        noise_rate: known noise rate for ``rule="noise-rate"``.
        batch_size, collate_fn: batching of a plain ``nn.Module``.
        predict_dataset: what the trainer or model predicts on, when not ``dataset`` itself: the
            same rows in the same order in another container, e.g. a
            `jal_trainer.data.DeviceImageDataset` (``augment=False``) for fast image batches.

    With a Trainer in a distributed run, call it on every process (``trainer.predict`` is a
    collective); every process gets the same result.

    Returns:
        `LabelIssues`: ``.dataset`` gains ``label_issue_score`` and ``is_label_issue``; ``.report``
        holds precision, recall and F1 when the clean labels are known.

    Example:
        >>> result = find_label_issues(trainer, noisy_train)  # doctest: +SKIP
        >>> result.report["f1"], result.dataset.filter(lambda r: r["is_label_issue"])  # doctest: +SKIP
    """
    if label_column not in dataset.column_names:
        raise ValueError(
            f"The dataset has no label column {label_column!r} (columns: {dataset.column_names}). "
            "Pass label_column= naming the given labels."
        )
    start = time.perf_counter()
    inputs = dataset if predict_dataset is None else predict_dataset
    probs = _probabilities(source, inputs, batch_size=batch_size, collate_fn=collate_fn,
                           exclude=(label_column, clean_label_column, noisy_column))
    labels = np.asarray(dataset[label_column], dtype=np.int64)
    if len(probs) != len(labels):
        raise ValueError(
            f"Got {len(probs)} predictions for {len(labels)} rows: predict_dataset must hold the same rows, in order."
        )
    scores, issues = score_label_issues(probs, labels, rule=rule, noise_rate=noise_rate)
    seconds = time.perf_counter() - start
    truly_wrong = _known_wrong(dataset, labels, clean_label_column, noisy_column)
    report = issue_report(issues, truly_wrong) if truly_wrong is not None else None
    out = dataset.remove_columns([c for c in (SCORE_COLUMN, ISSUE_COLUMN) if c in dataset.column_names])
    out = out.add_column(SCORE_COLUMN, scores.tolist()).add_column(ISSUE_COLUMN, issues.tolist())
    return LabelIssues(dataset=out, scores=scores, issues=issues, probs=probs, rule=rule, report=report,
                       seconds=seconds)


def _probabilities(source: Any, dataset: Any, **kwargs: Any) -> np.ndarray:
    if isinstance(source, np.ndarray):
        if len(source) != len(dataset):
            raise ValueError(f"probs has {len(source)} rows but the dataset {len(dataset)}. Pass one row per example.")
        return source
    if hasattr(source, "predict") and hasattr(source, "model"):
        return softmax(trainer_logits(source, dataset))
    if hasattr(source, "forward"):
        return softmax(model_logits(source, dataset, **kwargs))
    raise ValueError(
        f"Cannot predict with a {type(source).__name__}. Pass a transformers Trainer, a torch nn.Module or an "
        "(N, K) numpy array of probabilities."
    )


def _known_wrong(dataset: Any, labels: np.ndarray, clean_column: str, noisy_column: str) -> np.ndarray | None:
    if clean_column in dataset.column_names:
        return labels != np.asarray(dataset[clean_column], dtype=np.int64)
    if noisy_column in dataset.column_names:
        return np.asarray(dataset[noisy_column], dtype=bool)
    return None


__all__ = [
    "DEFAULT_RULE",
    "ISSUE_COLUMN",
    "RULES",
    "SCORE_COLUMN",
    "LabelIssues",
    "confident_joint",
    "find_label_issues",
    "issue_report",
    "model_logits",
    "per_class_thresholds",
    "score_label_issues",
    "softmax",
    "trainer_logits",
]
