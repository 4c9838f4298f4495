"""The numpy core of label-issue finding: class-normalised scores and the flagging rules.

Pure functions over ``(N, K)`` probabilities and ``(N,)`` given labels, with no dependency on
transformers or datasets; :mod:`jal_trainer.label_issues` documents the score and the rules
(`RULES`) and applies them to a data set with `find_label_issues`.

Example:
    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.65, 0.35], [0.95, 0.05]])
    >>> score_label_issues(probs, np.array([0, 0, 1, 1, 1]))[1].tolist()
    [False, False, False, False, True]
"""

from __future__ import annotations

from typing import Any

import numpy as np


RULES = ("class-balanced", "argmax", "per-class-threshold", "noise-rate")
DEFAULT_RULE = "class-balanced"
RANKINGS = ("shortfall", "flag-margin", "noise-margin", "auto")
DEFAULT_RANKING = "shortfall"
# "noise-margin": the power of the estimated noise rate that divides the margin (`class_margin_scores`);
# chosen on the held-in sets of recipes/results/label_issues.md (0 and 1 are measured there too)
NOISE_MARGIN_POWER = 0.75
# "auto": the noise margin when the model's mean confidence above chance reaches this, else the
# shortfall (`resolve_ranking`). Held-in sets: 0.57-0.74 on the five text sets, 0.32-0.34 on the
# CIFAR-10N subset; checked on eight sets the choice never saw (recipes/results/label_issue_rank_check.md)
AUTO_MIN_CONFIDENCE = 0.5


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
    balanced[:, thresholds > 1.0] = 0.0  # t > 1: no example has this label (in place: N x K is large)
    return balanced


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
    ranking: str = DEFAULT_RANKING,
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
        ranking: the returned score, one of `RANKINGS`: ``"shortfall"`` (default),
            ``1 - p[given] / t_given``; ``"flag-margin"`` (`flag_margin_scores`) or
            ``"noise-margin"`` (`noise_margin_scores`): the same order inside each class, with the
            classes interleaved by their flagged fraction or by confident learning's estimate of
            their noise rate; ``"auto"``: the noise margin or the shortfall, by the model's
            confidence (`resolve_ranking`).

    Returns:
        scores: (N,) float64 ``1 - p[given] / t_given`` (`label_scores`), or the flag margin;
            higher means more likely mislabelled.
        issues: (N,) bool, True for the flagged examples.

    Example:
        >>> probs = np.array([[0.6, 0.4], [0.1, 0.9], [0.45, 0.55]])
        >>> score_label_issues(probs, np.array([0, 0, 1]), rule="argmax")[1].tolist()
        [False, True, False]
    """
    probs, labels = _check_inputs(probs, labels)
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is unknown. Choose one of {', '.join(RULES)}.")
    if ranking not in RANKINGS:
        raise ValueError(f"ranking={ranking!r} is unknown. Choose one of {', '.join(RANKINGS)}.")
    if noise_rate is not None and rule != "noise-rate":
        raise ValueError(
            f"noise_rate is only used by rule='noise-rate', not rule={rule!r}. Drop it or change the rule."
        )
    ranking = resolve_ranking(probs, ranking)
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
    if ranking == "flag-margin":
        scores = flag_margin_scores(scores, labels, issues)
    elif ranking == "noise-margin":
        scores = class_margin_scores(scores, labels, _noise_rate_counts(probs, labels, None), power=NOISE_MARGIN_POWER)
    return scores, issues


def confidence_above_chance(probs: np.ndarray) -> float:
    """Mean over rows of ``(max_k p[k] - 1/K) / (1 - 1/K)``: 0 for uniform predictions, 1 for one-hot ones.

    Example:
        >>> confidence_above_chance(np.array([[1.0, 0.0], [0.5, 0.5]]))
        0.5
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2 or len(probs) == 0:
        raise ValueError(f"probs must have shape (N, K) with N >= 1 and K >= 2, got {probs.shape}. "
                         "Pass one row of class probabilities per example, over at least two classes.")
    chance = 1.0 / probs.shape[1]
    return float(np.mean((probs.max(axis=1) - chance) / (1.0 - chance)))


def resolve_ranking(probs: np.ndarray, ranking: str) -> str:
    """The ranking ``ranking="auto"`` stands for: ``"noise-margin"`` or ``"shortfall"``; any other is itself.

    The noise margin interleaves the classes by confident learning's per-class noise counts, which
    hold only when the model is sure enough of its own predictions: a weak from-scratch model
    (the CIFAR-10N subset's CNN) counts its own confusions between hard classes as label noise,
    and there the shortfall ranks better. So: the noise margin when `confidence_above_chance` is
    at least `AUTO_MIN_CONFIDENCE`, else the shortfall.

    Example:
        >>> resolve_ranking(np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]]), "auto")
        'noise-margin'
        >>> resolve_ranking(np.array([[0.4, 0.3, 0.3], [0.3, 0.4, 0.3]]), "auto")
        'shortfall'
    """
    if ranking != "auto":
        return ranking
    return "noise-margin" if confidence_above_chance(probs) >= AUTO_MIN_CONFIDENCE else "shortfall"


def class_margin_scores(scores: np.ndarray, labels: np.ndarray, counts: np.ndarray, *,
                        power: float = 0.0) -> np.ndarray:
    """(N,) each example's place among its class's estimated wrong labels, classes weighed by their noise rate.

    In each given class ``i`` (``N_i`` examples, ``c_i = counts[i]`` of them estimated wrong,
    rate ``r_i = max(c_i, 0.5) / N_i``), order the examples by ``scores`` (highest first, ties in
    data order); the one at place ``r`` (0-based) gets ``((c_i - r - 0.5) / N_i) / r_i ** power``.
    It is > 0 for the ``c_i`` highest scores of each class. ``power`` 0 interleaves the classes
    by how many of their rows are still estimated wrong below this one, as a fraction of the class;
    ``power`` 1 by the fraction of the class's estimated wrong rows still below it (each class's
    top suspect gets about 1).

    Args:
        scores: (N,) scores, higher = more likely wrong (e.g. `label_scores`).
        labels: (N,) given labels in 0..K-1.
        counts: (K,) estimated wrong labels per given class (e.g. the flags per class, or the
            off-diagonal of `confident_joint` per row).
        power: how much a class's noise rate is divided out, in [0, 1].

    Example:
        >>> class_margin_scores(np.array([0.9, 0.1, 0.5, 0.3]), np.array([0, 0, 1, 1]), np.array([1, 2])).tolist()
        [0.25, -0.25, 0.75, 0.25]
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if not 0.0 <= power <= 1.0:
        raise ValueError(
            f"power must be in [0, 1], got {power}. Use 0 (margin as a fraction of the class) to 1 (of its suspects)."
        )
    margins = np.zeros(len(labels))
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        ranked = members[np.argsort(-scores[members], kind="stable")]  # the order _prune_by_class flags in
        count, size = float(counts[cls]), len(members)
        margins[ranked] = (count - np.arange(size) - 0.5) / size / (max(count, 0.5) / size) ** power
    return margins


def noise_margin_scores(probs: np.ndarray, labels: np.ndarray, *, power: float = NOISE_MARGIN_POWER) -> np.ndarray:
    """(N,) `class_margin_scores` of the shortfall, with confident learning's per-class noise estimate.

    ``counts[i]`` = examples labelled ``i`` that the confident joint counts as another class
    (`confident_joint`). The ranking chosen on the held-in sets of
    ``recipes/results/label_issues.md`` (``ranking="noise-margin"``): the shortfall orders the
    examples inside a class; the estimated noise rate, not the model's confidence, interleaves
    the classes.

    Example:
        >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
        >>> (noise_margin_scores(probs, np.array([0, 0, 0, 1, 1])) > 0).tolist()
        [False, False, True, False, False]
    """
    probs, labels = _check_inputs(probs, labels)
    return class_margin_scores(label_scores(probs, labels), labels, _noise_rate_counts(probs, labels, None),
                               power=power)


def flag_margin_scores(scores: np.ndarray, labels: np.ndarray, issues: np.ndarray) -> np.ndarray:
    """(N,) how far inside its class's flagged set each example sits, in units of the class's size.

    In each given class ``i`` (``N_i`` examples, ``n_i`` of them flagged), order the examples by
    ``scores`` (highest first, ties in data order); the one at position ``r`` (0-based) gets
    ``(n_i - r - 0.5) / N_i``. Inside a class the order is that of ``scores``; across classes a
    class with a larger flagged fraction ranks its suspects higher. Under the ``class-balanced``
    and ``noise-rate`` rules (which flag each class's ``n_i`` highest scores) the score is > 0
    exactly for the flagged examples, so ranking and flags agree.

    Why: the shortfall ``1 - p[i] / t_i`` interleaves the classes by the model's confidence,
    which on weak-supervision noise can be high for a mostly wrong class (WRENCH trec) or low for
    one (chemprot); the flagged fraction, an estimate of each class's noise rate, is the better
    guide (chosen on the held-in sets of ``recipes/results/label_issues.md``).

    Args:
        scores: (N,) scores, higher = more likely wrong (e.g. `label_scores`).
        labels: (N,) given labels in 0..K-1.
        issues: (N,) bool flags.

    Example:
        >>> flag_margin_scores(np.array([0.9, 0.1, 0.5, 0.3]), np.array([0, 0, 1, 1]),
        ...                    np.array([True, False, True, False])).tolist()
        [0.25, -0.25, 0.25, -0.25]
    """
    labels, issues = np.asarray(labels), np.asarray(issues, dtype=bool)
    counts = np.bincount(labels[issues], minlength=int(labels.max()) + 1 if labels.size else 0)
    return class_margin_scores(scores, labels, counts, power=0.0)


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


def label_margins(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) the given label's logit minus the largest other logit: one epoch's margin (Pleiss et al. 2020).

    Args:
        logits: (N, K) logits (or any per-class scores) of one prediction pass.
        labels: (N,) given labels in 0..K-1.

    Example:
        >>> label_margins(np.array([[2.0, 0.5, 1.0], [0.0, 3.0, 1.0]]), np.array([0, 2])).tolist()
        [1.0, -2.0]
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"logits must be (N, K) and labels (N,), got {logits.shape} and {labels.shape}.")
    rows = np.arange(len(labels))
    others = logits.copy()
    others[rows, labels] = -np.inf
    return logits[rows, labels] - others.max(axis=1)


def area_under_margin(epoch_logits: Any, labels: np.ndarray) -> np.ndarray:
    """(N,) AUM: the mean over epochs of `label_margins`; negative = the model leans to another class.

    Area under the margin (Pleiss et al., NeurIPS 2020) ranks likely wrong labels by ``-AUM``
    and flags ``AUM < 0``. Measured beside our scores in ``recipes/results/label_issues.md``: it
    ranks well where the wrong labels are hard to fit (WRENCH sms, chemprot, symmetric noise) and
    below chance where they are systematic (WRENCH trec), so it is not the default.

    Args:
        epoch_logits: (E, N, K) logits of E prediction passes over the same rows (one per epoch),
            or a sequence of E (N, K) arrays.
        labels: (N,) given labels in 0..K-1.

    Example:
        >>> passes = np.array([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
        >>> area_under_margin(passes, np.array([0, 1])).tolist()
        [1.5, 0.0]
    """
    passes = list(epoch_logits)
    if not passes:
        raise ValueError("epoch_logits is empty. Pass the logits of at least one prediction pass.")
    return np.mean([label_margins(logits, labels) for logits in passes], axis=0)


def issue_report(issues: np.ndarray, truly_wrong: np.ndarray, scores: np.ndarray | None = None) -> dict[str, Any]:
    """Precision, recall and F1 of the flags; with ``scores`` also AUROC, AUPRC and precision at the true count.

    See `jal_trainer.label_quality.quality_report`.

    Example:
        >>> issue_report(np.array([True, True, False]), np.array([True, False, True]))["f1"]
        0.5
    """
    from jal_trainer.label_quality import quality_report

    return quality_report(issues, truly_wrong, scores)
