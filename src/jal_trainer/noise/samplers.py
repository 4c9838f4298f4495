"""Noisy labels drawn from clean ones with a transition matrix: the paper's exact sampler, or i.i.d. rows.

Example:
    >>> import numpy as np
    >>> from jal_trainer.noise import corrupt_labels, transition_matrix
    >>> clean = np.repeat(np.arange(10), 90)  # floor(0.4 / 9 * 90) = 4 flips per class pair: 40% exactly
    >>> float((corrupt_labels(clean, transition_matrix("symmetric", 0.4, 10), seed=0) != clean).mean())
    0.4
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from jal_trainer.noise._checks import _COUNT_RTOL, Seed, _check_labels, _check_matrix, _rng


SAMPLERS: tuple[str, ...] = ("exact", "iid")


def _exact_counts(T: np.ndarray, class_sizes: np.ndarray) -> np.ndarray:
    """``C[i, j] = floor(T[i, j] * n_i)`` off the diagonal; the diagonal keeps the rest of class i."""
    x = T * class_sizes[:, None]
    nearest = np.rint(x)
    counts = np.where(np.abs(x - nearest) <= _COUNT_RTOL * np.maximum(x, 1.0), nearest, np.floor(x))
    counts = counts.astype(np.int64)
    np.fill_diagonal(counts, 0)
    counts[np.diag_indices_from(counts)] = class_sizes - counts.sum(axis=1)
    return counts


def _small_int(labels: np.ndarray, num_classes: int) -> np.ndarray:
    # numpy's stable sort is a radix sort for integers of 16 bits or less: much faster on 1e6 labels.
    if num_classes <= np.iinfo(np.uint8).max:
        return labels.astype(np.uint8)
    if num_classes <= np.iinfo(np.uint16).max:
        return labels.astype(np.uint16)
    return labels


def _exact_sampler(labels: np.ndarray, T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    K = T.shape[0]
    sizes = np.bincount(labels, minlength=K)
    counts = _exact_counts(T, sizes)
    # Group the samples by class, then shuffle each class block: contiguous chunks of a shuffled
    # block are samples drawn without replacement. One shuffle per class (K calls, each on a
    # block that fits in cache) is about twice as fast as one global permutation of n samples.
    order = np.argsort(_small_int(labels, K), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for i in np.flatnonzero(np.diagonal(counts) < sizes):  # classes that lose samples
        rng.shuffle(order[bounds[i] : bounds[i + 1]])
    # Class i's block is split into chunks of sizes counts[i, 0], counts[i, 1], ... with targets 0, 1, ...
    targets = np.repeat(np.tile(np.arange(K, dtype=np.int64), K), counts.ravel())
    noisy = np.empty(labels.size, dtype=np.int64)
    noisy[order] = targets
    return noisy


def _cdf(P: np.ndarray) -> np.ndarray:
    """Cumulative sums of probability rows ``P`` (..., K), made safe for inverse-CDF sampling.

    Entries from the last positive probability onwards become +inf, so that rounding
    (a cumulative sum of 1 - 1e-16) can never pick a trailing zero-probability class.
    """
    cum = np.cumsum(P, axis=-1)
    K = P.shape[-1]
    last = K - 1 - np.argmax(P[..., ::-1] > 0, axis=-1)
    cum[np.arange(K) >= last[..., None]] = np.inf
    return cum


def _iid_sampler(labels: np.ndarray, T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    K = T.shape[0]
    u = rng.random(labels.size)
    noisy = np.empty(labels.size, dtype=np.int64)
    order = np.argsort(_small_int(labels, K), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=K))])
    cum = _cdf(T)
    for i in range(K):  # K vectorised steps: the noisy class is #{j : cum[i, j] <= u}
        members = order[bounds[i] : bounds[i + 1]]
        noisy[members] = np.searchsorted(cum[i], u[members], side="right")
    return noisy


def corrupt_labels(labels: ArrayLike, T: ArrayLike, *, seed: Seed, sampler: str = "exact") -> np.ndarray:
    """Draw noisy labels from clean ``labels`` with the transition matrix ``T``.

    Samplers:

    * ``"exact"`` (default, the paper's protocol): for every pair ``i != j`` exactly
      ``floor(T[i, j] * n_i)`` samples of class ``i``, chosen uniformly without replacement,
      become ``j``; the others keep their label (``n_i`` = size of class ``i``). Products within
      1e-9 (relative) of an integer count as that integer, so float rounding loses no sample.
    * ``"iid"``: every sample draws its noisy label independently from row ``T[y, :]``.

    Args:
        labels: ``(n,)`` integer class indices in ``[0, K)``.
        T: ``(K, K)`` row-stochastic matrix, ``T[i, j] = P(noisy j | true i)`` (rows sum to 1).
        seed: int or ``numpy.random.Generator`` (a Generator is advanced).
        sampler: ``"exact"`` or ``"iid"``.

    Returns:
        ``(n,)`` int64 noisy labels.

    Example:
        >>> from jal_trainer.noise import transition_matrix
        >>> T = transition_matrix("symmetric", 0.8, 10)
        >>> clean = np.repeat(np.arange(10), 5000)
        >>> noisy = corrupt_labels(clean, T, seed=0)
        >>> int(((clean == 0) & (noisy == 1)).sum())  # floor(0.8 / 9 * 5000)
        444
    """
    T = _check_matrix(T)
    labels = _check_labels(labels, T.shape[0])
    rng = _rng(seed)
    if sampler == "exact":
        return _exact_sampler(labels, T, rng)
    if sampler == "iid":
        return _iid_sampler(labels, T, rng)
    raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}.")
