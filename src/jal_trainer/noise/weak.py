"""Weak supervision: the majority vote of labelling functions (WRENCH), with seeded tie-breaks and abstains.

Example:
    >>> from jal_trainer.noise import majority_vote
    >>> labels, covered = majority_vote([[1, 1, -1], [0, -1, -1]], num_classes=2, seed=0)
    >>> labels.tolist(), covered.tolist()
    ([1, 0], [True, True])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from jal_trainer.noise._checks import Seed, _check_num_classes, _rng

#: How `majority_vote` settles a tie between the most-voted classes.
TIE_BREAKS = ("random", "lowest", "drop")


def majority_vote(
    votes: ArrayLike,
    num_classes: int,
    *,
    seed: Seed,
    tie_break: str = "random",
    abstain_value: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of weak labels (e.g. WRENCH labelling functions), with fixed rules.

    Rules, applied row by row:

    * a row's label is the class with the most votes; ``abstain_value`` entries are not votes;
    * **ties**: ``tie_break="random"`` (default) draws uniformly among the tied classes with the
      seed, so no class is favoured; ``"lowest"`` takes the smallest tied index, numpy's
      ``argmax`` convention, which WRENCH's ``MajorityVoting`` predictions use (and which gives
      the ~21% noise usually quoted for youtube); ``"drop"`` labels them as ``"random"`` does,
      for callers that remove them (`tied_rows` finds them; with two classes a tie is a coin flip);
    * **all-abstain rows** (not covered) get a class drawn uniformly at random with the seed,
      and are marked in the returned ``covered`` mask so that callers can keep or drop them.

    The seed is consumed in a fixed order (ties, then uncovered rows), so the output is a
    deterministic function of ``(votes, num_classes, seed, tie_break)``.

    Args:
        votes: ``(n, m)`` integer votes of ``m`` labelling functions, values in
            ``{abstain_value} U [0, K)``.
        num_classes: ``K``.
        seed: int or ``numpy.random.Generator``.
        tie_break: ``"random"``, ``"lowest"`` or ``"drop"`` (labelled as ``"random"``).
        abstain_value: the abstention marker (-1 in WRENCH).

    Returns:
        ``(labels, covered)``: ``(n,)`` int64 labels and ``(n,)`` bool, True where at least one
        labelling function voted.

    Example:
        >>> labels, covered = majority_vote([[0, 0, 1], [1, -1, -1], [-1, -1, -1]], 2, seed=0)
        >>> labels[:2].tolist(), covered.tolist()
        ([0, 1], [True, True, False])
    """
    K = _check_num_classes(num_classes, "majority-vote")
    V = np.asarray(votes)
    if V.ndim != 2:
        raise ValueError(f"votes must be a 2-D (n, m) array of weak labels, got shape {V.shape}.")
    if V.size and V.dtype.kind not in "iu":
        raise ValueError(f"votes must be integers (class index or {abstain_value} to abstain), got {V.dtype}.")
    V = V.astype(np.int64, copy=False)
    valid = V != abstain_value
    if np.any(valid & ((V < 0) | (V >= K))):
        bad = V[valid & ((V < 0) | (V >= K))][0]
        raise ValueError(
            f"vote {bad} is neither a class in [0, {K}) nor the abstention {abstain_value}; pass "
            "the right num_classes or abstain_value."
        )
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie_break {tie_break!r}; use one of {', '.join(map(repr, TIE_BREAKS))}.")
    rng = _rng(seed)
    counts = vote_counts(V, K, abstain_value)
    covered = counts.sum(axis=1) > 0
    labels = counts.argmax(axis=1)  # smallest index among ties
    if tie_break != "lowest":
        top = counts == counts.max(axis=1, keepdims=True)
        tied = np.flatnonzero(covered & (top.sum(axis=1) > 1))
        keys = np.where(top[tied], rng.random((tied.size, K)), -1.0)
        labels[tied] = keys.argmax(axis=1)
    uncovered = np.flatnonzero(~covered)
    labels[uncovered] = rng.integers(0, K, uncovered.size)
    return labels.astype(np.int64), covered


def vote_counts(votes: np.ndarray, num_classes: int, abstain_value: int = -1) -> np.ndarray:
    """``(n, K)`` number of votes per class of ``(n, m)`` integer ``votes`` (abstentions not counted)."""
    n = votes.shape[0]
    valid = votes != abstain_value
    rows = np.broadcast_to(np.arange(n)[:, None], votes.shape)
    return np.bincount(rows[valid] * num_classes + votes[valid], minlength=n * num_classes).reshape(n, num_classes)


def tied_rows(votes: ArrayLike, num_classes: int, *, abstain_value: int = -1) -> np.ndarray:
    """``(n,)`` bool: True where at least one labelling function voted and two or more classes share
    the most votes, the rows whose majority-vote label is a draw among the tied classes
    (``tie_break="drop"`` removes them).

    Example:
        >>> tied_rows([[0, 1, -1], [0, 0, 1], [-1, -1, -1]], 2).tolist()
        [True, False, False]
    """
    counts = vote_counts(np.asarray(votes, dtype=np.int64), num_classes, abstain_value)
    top = counts == counts.max(axis=1, keepdims=True)
    return (counts.sum(axis=1) > 0) & (top.sum(axis=1) > 1)
