"""Find the wrong labels of a data set from one model trained with a robust loss.

A model trained with JAL (or another robust loss) on noisy labels does not memorise the wrong
labels (see `jal_trainer.callbacks.MemorisationCallback`), so its predicted probabilities on its
*own training set* still disagree with a wrong label. Confident learning (Northcutt et al., JAIR
2021) needs out-of-fold probabilities because a cross-entropy model memorises; here a single
training is enough.

**Which probabilities.** Best: the mean over epochs of the in-sample probabilities, recorded by
`jal_trainer.callbacks.EpochProbabilitiesCallback` (or `MemorisationCallback`, which extends it)
during that one training: pass the callback to `find_label_issues`. Wrong labels that the model
fits late weigh little in that mean. The final model's probabilities (pass the trainer or the
model) work too, a little less well. Several trainings on the same rows (a list of sources, e.g.
the callbacks of a CE and a JAL-CE training, or the run ``loss_type: auto`` chose): the mean of
their probabilities; where CE is the better model (WRENCH trec, chemprot) it keeps the robust
loss from being the worst choice. Measured, with the cost, in ``recipes/results/label_issues.md``.

**The score** of an example labelled ``i`` is its *class-normalised self-confidence shortfall*
``1 - p[i] / t_i``, where ``t_i`` is the mean of ``p[i]`` over the examples labelled ``i`` (the
model's typical confidence in class ``i``, confident learning's per-class threshold). It is 1 when
the model gives the label no probability, 0 at the class's typical confidence and negative above
it; higher means more likely wrong. Dividing by ``t_i`` matters because robust losses are
unevenly confident across classes: a rare or hard class gets low ``p[i]`` on *every* example,
and ``1 - p[i]`` would rank all of its examples as suspicious.

**Which examples are flagged** is a separate, documented rule (`RULES`):

- ``"class-balanced"`` (default): how many, then which. *How many*: in each given class ``i``,
  ``n_i`` = the examples whose class-balanced prediction ``argmax_k p[k] / t_k`` is another
  class (the model's probabilities, each measured against that class's typical confidence).
  *Which*: the ``n_i`` examples of class ``i`` with the highest score.
- ``"argmax"``: an issue when the most probable class is not the given label.
- ``"per-class-threshold"``: the off-diagonal of confident learning's *confident joint*: an
  example labelled ``i`` is counted as ``j* = argmax {p[k] : p[k] >= t_k}`` (the most probable
  class that clears its own threshold) and is an issue when such a class exists and ``j* != i``.
- ``"noise-rate"``: confident learning's "prune by class": in each given class ``i``, flag the
  ``n_i`` examples with the highest score, where ``n_i`` is the count of row ``i`` off the diagonal
  of the confident joint, or ``noise_rate * (count of class i)`` when a noise rate is passed.

Why ``class-balanced`` by default: measured, not assumed. On the committed benchmark
(``recipes/results/label_issues.md``), with the epoch-mean probabilities of one JAL-CE training it
had the best F1 of the four rules on the three sets it was chosen on (WRENCH youtube and trec, a
CIFAR-10N-worst subset) and was within 0.004 of the best on the held-out WRENCH sms. The
thresholds of confident learning were made for calibrated out-of-fold CE probabilities; a JAL
model is under-confident (NCE and AMSE do not push ``p`` to 1) and they are too strict for it
(recall 0.25 to 0.73). Plain argmax ignores how unevenly confident the model is across classes
(F1 on WRENCH trec 0.30 against 0.47 for class-balanced).

Example:
    >>> import numpy as np
    >>> # the model is timid on class 1 (p[1] <= 0.4 even where the label is right)
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.65, 0.35], [0.95, 0.05]])
    >>> labels = np.array([0, 0, 1, 1, 1])
    >>> scores, issues = score_label_issues(probs, labels)
    >>> scores.round(2).tolist(), issues.tolist()
    ([-0.06, 0.06, -0.5, -0.31, 0.81], [False, False, False, False, True])
    >>> score_label_issues(probs, labels, rule="argmax")[1].tolist()  # flags all of class 1
    [False, False, True, True, True]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from jal_trainer.label_quality import quality_report
from jal_trainer.predictions import model_logits, softmax, trainer_logits

SCORE_COLUMN = "label_issue_score"
ISSUE_COLUMN = "is_label_issue"
RULES = ("class-balanced", "argmax", "per-class-threshold", "noise-rate")
DEFAULT_RULE = "class-balanced"


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


def class_balanced_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N, K) ``p[k] / t_k``: each class's probability measured against the model's typical confidence in it.

    ``t_k`` is `per_class_thresholds`. A class that labels no example gets 0 (never predicted), as
    in the confident joint.

    Example:
        >>> class_balanced_probs(np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]), np.array([0, 0, 1])).round(2).tolist()
        [[1.2, 0.14], [0.8, 0.57], [0.4, 1.0]]
    """
    probs, labels = _check_inputs(probs, labels)
    return _balanced(probs, per_class_thresholds(probs, labels))


def _balanced(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    # a class whose labelled examples all got p = 0 (float underflow) has t = 0: keep it finite
    balanced = probs / np.maximum(thresholds, np.finfo(np.float64).tiny)[None, :]
    return np.where((thresholds <= 1.0)[None, :], balanced, 0.0)  # t > 1: no example has this label


def label_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) class-normalised self-confidence shortfall ``1 - p[given] / t_given`` (module docstring).

    1 when the model gives the label no probability, 0 at the class's typical confidence,
    negative above it. Higher means more likely mislabelled.

    Example:
        >>> label_scores(np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]), np.array([0, 0, 1])).round(2).tolist()
        [-0.2, 0.2, 0.0]
    """
    probs, labels = _check_inputs(probs, labels)
    return 1.0 - class_balanced_probs(probs, labels)[np.arange(len(labels)), labels]


def score_label_issues(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    rule: str = DEFAULT_RULE,
    noise_rate: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Score every example by how strongly the model disagrees with its label, and flag the issues.

    Args:
        probs: (N, K) predicted probabilities (softmax of the logits, or their mean over epochs),
            rows sum to 1.
        labels: (N,) given (possibly wrong) labels in 0..K-1.
        rule: which examples to flag, one of `RULES`: ``"class-balanced"`` (default),
            ``"argmax"``, ``"per-class-threshold"`` or ``"noise-rate"`` (module docstring).
        noise_rate: only for ``rule="noise-rate"``: the known fraction of wrong labels in [0, 1];
            ``None`` estimates it per class from the confident joint.

    Returns:
        scores: (N,) float64 ``1 - p[given] / t_given`` (`label_scores`); higher means more
            likely mislabelled.
        issues: (N,) bool, True for the flagged examples.

    Example:
        >>> probs = np.array([[0.6, 0.4], [0.1, 0.9], [0.45, 0.55]])
        >>> score_label_issues(probs, np.array([0, 0, 1]), rule="argmax")[1].tolist()
        [False, True, False]
    """
    probs, labels = _check_inputs(probs, labels)
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is unknown. Choose one of {', '.join(RULES)}.")
    if noise_rate is not None and rule != "noise-rate":
        raise ValueError(
            f"noise_rate is only used by rule='noise-rate', not rule={rule!r}. Drop it or change the rule."
        )
    thresholds = per_class_thresholds(probs, labels)
    balanced = _balanced(probs, thresholds)
    scores = 1.0 - balanced[np.arange(len(labels)), labels]
    if rule == "class-balanced":
        disagree = balanced.argmax(axis=1) != labels
        counts = np.bincount(labels[disagree], minlength=probs.shape[1])
        issues = _prune_by_class(labels, scores, counts)
    elif rule == "argmax":
        issues = probs.argmax(axis=1) != labels
    elif rule == "per-class-threshold":
        assigned = confident_assignment(probs, thresholds)
        issues = (assigned >= 0) & (assigned != labels)
    else:
        issues = _prune_by_class(labels, scores, _noise_rate_counts(probs, labels, noise_rate))
    return scores, issues


def _noise_rate_counts(probs: np.ndarray, labels: np.ndarray, noise_rate: float | None) -> np.ndarray:
    """(K,) estimated wrong labels per given class: off-diagonal of the confident joint, or the known rate."""
    if noise_rate is None:
        joint = confident_joint(probs, labels)
        return joint.sum(axis=1) - np.diag(joint)
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}. Pass a fraction, not a percentage.")
    return np.rint(noise_rate * np.bincount(labels, minlength=probs.shape[1])).astype(np.int64)


def _prune_by_class(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """In each given class ``i``, flag ``counts[i]`` examples, highest scores first."""
    issues = np.zeros(len(labels), dtype=bool)
    for cls, count in enumerate(counts):
        members = np.flatnonzero(labels == cls)
        # stable sort: ties keep data order, so the result is deterministic
        ranked = members[np.argsort(-scores[members], kind="stable")]
        issues[ranked[: int(count)]] = True
    return issues


def issue_report(issues: np.ndarray, truly_wrong: np.ndarray, scores: np.ndarray | None = None) -> dict[str, Any]:
    """Precision, recall and F1 of the flags; with ``scores`` also AUROC, AUPRC and precision at the true count.

    See `jal_trainer.label_quality.quality_report`.

    Example:
        >>> issue_report(np.array([True, True, False]), np.array([True, False, True]))["f1"]
        0.5
    """
    return quality_report(issues, truly_wrong, scores)


# ---- the data-set level API ------------------------------------------------------------------------


@dataclass
class LabelIssues:
    """Result of `find_label_issues`.

    Attributes:
        dataset: the input data set plus ``label_issue_score`` (float) and ``is_label_issue`` (bool).
        scores: (N,) ``1 - p[given] / t_given`` (`label_scores`).
        issues: (N,) bool flags.
        probs: (N, K) predicted probabilities used for scoring.
        rule: the flagging rule.
        report: against the clean labels (``None`` when they are unknown): precision / recall / F1
            of the flags, and AUROC / AUPRC / precision at the true number of wrong rows of the
            scores (`jal_trainer.label_quality`).
        seconds: wall time of prediction and scoring.
    """

    dataset: Any
    scores: np.ndarray
    issues: np.ndarray
    probs: np.ndarray
    rule: str
    report: dict[str, float] | None = None
    seconds: float = 0.0
    labels: np.ndarray | None = None

    def to_cleanlab(self) -> Any:
        """A ``pandas.DataFrame`` with cleanlab's columns: ``is_label_issue``, ``label_score`` (in [0, 1],
        low = likely wrong), ``given_label``, ``predicted_label`` (`jal_trainer.cleanlab_format`)."""
        from jal_trainer.cleanlab_format import cleanlab_columns

        labels = self.labels if self.labels is not None else column_array(self.dataset, "label")
        return cleanlab_columns(self.probs, labels, scores=self.scores, issues=self.issues)


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
        source: best, the `jal_trainer.callbacks.EpochProbabilitiesCallback` (or
            `MemorisationCallback`) that watched the training: its mean over epochs of the
            in-sample probabilities; or a `transformers.Trainer` (the current model, predicting
            with ``trainer.predict``: its collator, every process); or a ``torch.nn.Module`` (one
            process, columns named by ``forward``); or an (N, K) array of probabilities; or a
            list of any of these (an ensemble: the mean of their probabilities, e.g. the
            callbacks of a CE and a robust training: the better scorer on real noise, measured in
            ``recipes/results/label_issues.md``).
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
        holds precision, recall, F1, AUROC and AUPRC when the clean labels are known;
        ``.to_cleanlab()`` gives cleanlab's columns.

    Example:
        >>> callback = EpochProbabilitiesCallback(noisy_train)  # doctest: +SKIP
        >>> trainer = JALTrainer(model, args, train_dataset=noisy_train, callbacks=[callback])  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
        >>> result = find_label_issues(callback, noisy_train)  # doctest: +SKIP
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
    labels = column_array(dataset, label_column).astype(np.int64, copy=False)
    if len(probs) != len(labels):
        raise ValueError(
            f"Got {len(probs)} predictions for {len(labels)} rows: predict_dataset must hold the same rows, in order."
        )
    scores, issues = score_label_issues(probs, labels, rule=rule, noise_rate=noise_rate)
    seconds = time.perf_counter() - start
    truly_wrong = _known_wrong(dataset, labels, clean_label_column, noisy_column)
    report = issue_report(issues, truly_wrong, scores) if truly_wrong is not None else None
    out = dataset.remove_columns([c for c in (SCORE_COLUMN, ISSUE_COLUMN) if c in dataset.column_names])
    out = out.add_column(SCORE_COLUMN, scores).add_column(ISSUE_COLUMN, issues)
    return LabelIssues(dataset=out, scores=scores, issues=issues, probs=probs, rule=rule, report=report,
                       seconds=seconds, labels=labels)


def _probabilities(source: Any, dataset: Any, **kwargs: Any) -> np.ndarray:
    if isinstance(source, (list, tuple)):  # an ensemble: the mean of each source's probabilities
        if not source:
            raise ValueError("source is an empty list. Pass at least one callback, trainer, model or array.")
        return np.mean([_probabilities(s, dataset, **kwargs) for s in source], axis=0)
    if hasattr(source, "mean_probabilities"):  # EpochProbabilitiesCallback / MemorisationCallback
        source = source.mean_probabilities
    if isinstance(source, np.ndarray):
        if len(source) != len(dataset):
            raise ValueError(f"probs has {len(source)} rows but the dataset {len(dataset)}. Pass one row per example.")
        return source
    if hasattr(source, "predict") and hasattr(source, "model"):
        return softmax(trainer_logits(source, dataset))
    if hasattr(source, "forward"):
        return softmax(model_logits(source, dataset, **kwargs))
    raise ValueError(
        f"Cannot predict with a {type(source).__name__}. Pass an EpochProbabilitiesCallback (or "
        "MemorisationCallback) that watched the training, a transformers Trainer, a torch nn.Module or an (N, K) "
        "numpy array of probabilities."
    )


def _known_wrong(dataset: Any, labels: np.ndarray, clean_column: str, noisy_column: str) -> np.ndarray | None:
    if clean_column in dataset.column_names:
        return labels != column_array(dataset, clean_column).astype(np.int64, copy=False)
    if noisy_column in dataset.column_names:
        return column_array(dataset, noisy_column).astype(bool, copy=False)
    return None


def column_array(dataset: Any, column: str) -> np.ndarray:
    """One column of a `datasets.Dataset` as a numpy array, read from Arrow in one call.

    ``np.asarray(dataset[column])`` iterates row by row (seconds for 200,000 rows); the numpy
    format reads the Arrow buffer at once and honours a ``select``/``shuffle`` indices mapping.

    Example:
        >>> from datasets import Dataset
        >>> column_array(Dataset.from_dict({"label": [2, 0, 1]}).select([2, 0]), "label").tolist()
        [1, 2]
    """
    if hasattr(dataset, "with_format"):
        return dataset.with_format("numpy", columns=[column])[:][column]
    return np.asarray(dataset[column])


__all__ = [
    "DEFAULT_RULE", "ISSUE_COLUMN", "RULES", "SCORE_COLUMN", "LabelIssues", "class_balanced_probs",
    "column_array", "confident_joint", "find_label_issues", "issue_report", "label_scores", "model_logits",
    "per_class_thresholds", "score_label_issues", "softmax", "trainer_logits",
]
