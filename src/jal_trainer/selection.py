"""Label-free scoring of trained candidates: clean accuracy estimated from a noisy held-out slice.

A candidate trained without the held-out rows predicts ``yhat`` on them; only their noisy labels
``ytilde`` are known. Under class-conditional noise, ``T[i, j] = P(ytilde = j | y = i)``, and
with the prediction independent of the noise given the clean class (true on held-out rows), the
joint of (prediction, noisy label) is ``M = C^T T`` where ``C[i, j] = P(y = i, yhat = j)``. So

    clean accuracy = trace(C) = trace(M T^-1).

``T`` is estimated from out-of-sample probabilities on the slice: the confident joint of confident
learning (Northcutt et al., JAIR 2021) of the mean of the candidates' predicted distributions
(`confident_transition`). The mean of CE and the robust candidates is less fitted to the noise
than CE alone, whose anchor rows (Patrini et al., CVPR 2017; `anchor_transition`) under-estimate
pair-flip noise (TREC pair-flip 0.4: diagonal 0.75-0.8 for a true 0.6). The correction is used only
when the estimate is clean-label dominant (``T[i, i] > T[i, j]`` for every ``j``, which also makes
it invertible). A row that is not (a rare class has few confident rows) is replaced by a
symmetric row with the mean diagonal of the others (`repair_transition`); with no dominant row at
all the score is the plain noisy-slice accuracy.

Rows whose noisy label carries no information are scored apart. A majority vote of weak labels
(WRENCH) with a tie or no vote at all gives such a row a random class: agreement with it is 1/K
for every candidate, whatever the clean class. `informative_rows` finds them from the weak-label
matrix; on them a candidate is scored by its agreement with the candidates' consensus (the arg max
of their mean distribution), the best label-free guess of the clean class there
(`slice_scores`, ``consensus``). Without a weak-label matrix every row is informative.

Example:
    >>> import numpy as np
    >>> T = np.array([[0.6, 0.4], [0.4, 0.6]])
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.integers(0, 2, 20000)
    >>> noisy = np.where(rng.random(20000) < 0.4, 1 - clean, clean)
    >>> round(estimated_clean_accuracy(clean, noisy, T), 2)   # a perfect model: noisy accuracy is only 0.6
    1.0
"""

from __future__ import annotations

import numpy as np

from jal_trainer.issue_scores import confident_joint

#: Share of a class's most confident slice rows averaged into its row of the transition estimate.
ANCHOR_SHARE = 0.1
#: How far each diagonal entry of the estimate must beat its row's other entries before it is used.
DOMINANCE_MARGIN = 0.05


def stratified_holdout(labels: np.ndarray, fraction: float, *, seed: int = 0,
                       min_per_class: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(kept, held_out)`` row indices; each class gives ``round(fraction * n_c)`` rows to the slice,
    raised to ``min_per_class`` for a class with at least twice that many rows (so a rare class is
    scored and still trained on).

    Example:
        >>> kept, held = stratified_holdout(np.array([0] * 10 + [1] * 20), 0.1, seed=0)
        >>> len(kept), len(held)
        (27, 3)
        >>> len(stratified_holdout(np.array([0] * 10 + [1] * 20), 0.1, min_per_class=2)[1])
        4
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        take = int(round(fraction * rows.size))
        if take < min_per_class <= rows.size // 2:
            take = min_per_class
        held.append(rng.permutation(rows)[:take])
    held_out = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    kept = np.setdiff1d(np.arange(labels.size), held_out)
    return kept, held_out


def anchor_transition(probs: np.ndarray, *, share: float = ANCHOR_SHARE) -> np.ndarray:
    """Estimate ``T`` ``(K, K)`` (rows sum to 1) from predicted noisy-label probabilities ``(N, K)``.

    Row ``i`` is the mean of ``probs`` over the ``ceil(share * N / K)`` rows with the highest
    ``probs[:, i]`` (at least one).
    """
    probs = np.asarray(probs, dtype=np.float64)
    num, num_classes = probs.shape
    top = max(1, int(np.ceil(share * num / num_classes)))
    rows = [probs[np.argsort(-probs[:, i], kind="stable")[:top]].mean(axis=0) for i in range(num_classes)]
    matrix = np.asarray(rows)
    return matrix / matrix.sum(axis=1, keepdims=True)


def calibrate(probs: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """``probs`` ``(N, K)`` re-tempered, ``softmax(log p / t)``, with the ``t`` that best fits the noisy labels.

    A model trained on noisy labels is over-confident (it memorised part of them), so its raw
    probabilities make the anchor rows look noise-free. Held-out noisy labels set the temperature
    (the grid of 41 values from 0.25 to 20 minimising the negative log-likelihood) first.
    """
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    noisy = np.asarray(noisy)

    def tempered(t: float) -> np.ndarray:
        z = logp / t
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    temps = np.geomspace(0.25, 20.0, 41)
    nll = [-np.mean(np.log(np.clip(tempered(t)[np.arange(len(noisy)), noisy], 1e-12, 1.0))) for t in temps]
    return tempered(float(temps[int(np.argmin(nll))]))


def confident_transition(probs: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """``T`` ``(K, K)`` (rows: clean class, sum to 1) from the confident joint of ``probs`` ``(N, K)`` and ``noisy``.

    The confident joint counts rows labelled ``i`` whose probability of class ``j`` clears ``j``'s
    mean self-confidence; each noisy-label row of it is rescaled to that label's count (cleanlab's
    calibration), then transposed and normalised per clean class. A class no row is counted as gets a
    flat row (not dominant: `repair_transition` replaces it).

    Example:
        >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.9, 0.1]])  # the last is labelled 1
        >>> confident_transition(probs, np.array([0, 0, 1, 1, 1])).round(2).tolist()
        [[0.67, 0.33], [0.0, 1.0]]
    """
    noisy = np.asarray(noisy, dtype=np.int64)
    num_classes = np.asarray(probs).shape[1]
    joint = confident_joint(probs, noisy).astype(np.float64)  # [noisy label, confident class]
    counts = np.bincount(noisy, minlength=num_classes)
    joint = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1.0) * counts[:, None]
    matrix = joint.T
    totals = matrix.sum(axis=1, keepdims=True)
    return np.where(totals > 0, matrix / np.maximum(totals, 1e-12), 1.0 / num_classes)


def informative_rows(weak_labels: np.ndarray | None, num_classes: int, size: int) -> np.ndarray:
    """``(N,)`` bool: rows whose majority vote of ``weak_labels`` ``(N, L)`` (-1 = abstain) has one winner.

    A tie or an all-abstain row gets a random class from the majority vote: its label says nothing
    about the clean class. Without weak labels (None) every one of the ``size`` rows is informative.

    Example:
        >>> informative_rows(np.array([[0, 0, 1], [0, 1, -1], [-1, -1, -1]]), 2, 3).tolist()
        [True, False, False]
    """
    if weak_labels is None:
        return np.ones(size, dtype=bool)
    votes = np.asarray(weak_labels)
    counts = np.stack([(votes == k).sum(axis=1) for k in range(num_classes)], axis=1)
    top = np.sort(counts, axis=1)
    return top[:, -1] > (top[:, -2] if num_classes > 1 else 0)


def is_clean_label_dominant(matrix: np.ndarray, margin: float = 0.0) -> bool:
    """True when every row's diagonal entry beats every other entry of that row by more than ``margin``.

    `loss_type: auto` asks for a margin of :data:`DOMINANCE_MARGIN`: a nearly flat estimate (a model
    that learnt little) is close to singular, and inverting it would blow the correction up.
    """
    matrix = np.asarray(matrix)
    off = matrix - np.diag(np.full(len(matrix), np.inf))
    return bool(np.all(np.diag(matrix) > off.max(axis=1) + margin))


def repair_transition(matrix: np.ndarray, margin: float = DOMINANCE_MARGIN) -> tuple[np.ndarray | None, list[int]]:
    """Replace the rows of ``matrix`` that are not clean-label dominant by ``margin``; ``(T, replaced rows)``.

    A rare class has few confident slice rows, so its anchor row is the least reliable. Such a row is
    replaced by a symmetric one whose diagonal is the mean diagonal of the dominant rows (the rest
    spread evenly). None when no row is dominant: then no correction is possible.

    Example:
        >>> T, rows = repair_transition(np.array([[0.7, 0.2, 0.1], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8]]))
        >>> rows, T[1].round(2).tolist()
        ([1], [0.12, 0.75, 0.12])
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    num_classes = len(matrix)
    off = matrix - np.diag(np.full(num_classes, np.inf))
    good = np.diag(matrix) > off.max(axis=1) + margin
    if not good.any():
        return None, list(range(num_classes))
    diagonal = float(np.diag(matrix)[good].mean())
    repaired = matrix.copy()
    bad = [int(i) for i in np.flatnonzero(~good)]
    for i in bad:
        repaired[i] = (1.0 - diagonal) / (num_classes - 1)
        repaired[i, i] = diagonal
    return repaired, bad


def estimated_clean_accuracy(predicted: np.ndarray, noisy: np.ndarray, transition: np.ndarray, *,
                             clip: bool = True) -> float:
    """``trace(M T^-1)`` (clipped to [0, 1] unless ``clip=False``); ``M[j, l]`` = share of rows predicted ``j`` and
    labelled ``l``. A mis-estimated ``T`` can push several candidates past 1: rank by the unclipped value."""
    num_classes = len(transition)
    joint = np.zeros((num_classes, num_classes))
    np.add.at(joint, (np.asarray(predicted), np.asarray(noisy)), 1.0)
    joint /= max(len(predicted), 1)
    value = float(np.trace(joint @ np.linalg.inv(transition)))
    return float(np.clip(value, 0.0, 1.0)) if clip else value


def slice_scores(predicted: np.ndarray, noisy: np.ndarray, transition: np.ndarray | None,
                 informative: np.ndarray | None = None, consensus: np.ndarray | None = None) -> dict[str, float]:
    """``noisy_slice_accuracy``, ``estimated_clean_accuracy`` and ``ranking_score`` of predictions ``(N,)``.

    The score is the share of ``informative`` rows times the corrected accuracy on them (the noisy
    one when ``transition`` is None) plus the share of the other rows times the agreement with
    ``consensus`` on them (``informative`` None: every row). ``ranking_score`` is it unclipped,
    ``estimated_clean_accuracy`` clipped to [0, 1].
    """
    predicted, noisy = np.asarray(predicted), np.asarray(noisy)
    noisy_accuracy = float(np.mean(predicted == noisy)) if len(noisy) else 0.0
    rows = np.ones(len(noisy), dtype=bool) if informative is None else np.asarray(informative, dtype=bool)
    if not rows.any():
        return {"noisy_slice_accuracy": noisy_accuracy, "estimated_clean_accuracy": noisy_accuracy,
                "ranking_score": noisy_accuracy}
    part = float(np.mean(predicted[rows] == noisy[rows])) if transition is None else \
        estimated_clean_accuracy(predicted[rows], noisy[rows], transition, clip=False)
    share = float(rows.mean())
    if share < 1.0 and consensus is not None:
        part = share * part + (1.0 - share) * float(np.mean(predicted[~rows] == np.asarray(consensus)[~rows]))
    return {"noisy_slice_accuracy": noisy_accuracy, "estimated_clean_accuracy": float(np.clip(part, 0.0, 1.0)),
            "ranking_score": part}


def bootstrap_gap_std(pred_a: np.ndarray, pred_b: np.ndarray, noisy: np.ndarray, transition: np.ndarray | None,
                      *, informative: np.ndarray | None = None, consensus: np.ndarray | None = None,
                      rounds: int = 200, seed: int = 0) -> float:
    """Std over bootstrap resamples of the slice of ``score(a) - score(b)`` (same rows for both)."""
    rng = np.random.default_rng(seed)
    informative = np.ones(len(noisy), dtype=bool) if informative is None else np.asarray(informative, dtype=bool)
    consensus = np.asarray(noisy) if consensus is None else np.asarray(consensus)
    gaps = []
    for _ in range(rounds):
        rows = rng.integers(0, len(noisy), len(noisy))
        a = slice_scores(pred_a[rows], noisy[rows], transition, informative[rows], consensus[rows])
        b = slice_scores(pred_b[rows], noisy[rows], transition, informative[rows], consensus[rows])
        gaps.append(a["ranking_score"] - b["ranking_score"])
    return float(np.std(gaps))


__all__ = ["anchor_transition", "bootstrap_gap_std", "calibrate", "confident_transition", "estimated_clean_accuracy",
           "informative_rows", "is_clean_label_dominant", "repair_transition", "slice_scores", "stratified_holdout"]
