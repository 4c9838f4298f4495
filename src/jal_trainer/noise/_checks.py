"""Input checks and the shared types of the noise modules: seeds, rates, labels, matrices.

Every public noise function validates its inputs here, so that a bad rate, label or matrix fails
with one line naming the fix before any work is done.

Example:
    >>> from jal_trainer.noise._checks import _check_rate
    >>> _check_rate(0.4, "symmetric")
    0.4
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


Seed = int | np.random.Generator

Kind = str | Mapping[int, Any] | np.ndarray | Sequence[Sequence[float]]

# Values of T * n_i within this relative distance of an integer count as that integer, so that
# float rounding (0.29 * 100 = 28.999999999999996) does not lose a sample in the exact sampler.
_COUNT_RTOL = 1e-9

_ROW_SUM_ATOL = 1e-6


def _rng(seed: Seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(
            f"seed must be an int or a numpy.random.Generator, got {seed!r}; pass e.g. seed=0 "
            "(an explicit seed keeps the noise reproducible)."
        )
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}; pass e.g. seed=0.")
    return np.random.default_rng(int(seed))


def _check_rate(rate: Any, kind: str) -> float:
    if rate is None:
        raise ValueError(f"kind {kind!r} needs a noise rate: pass rate=<float in [0, 1]>, e.g. 0.4.")
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"rate must be a number in [0, 1], got {rate!r}.") from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(
            f"rate must be in [0, 1] (a probability of flipping a label), got {rate!r}; "
            "pass e.g. rate=0.4 for 40% noise."
        )
    return value


def _check_num_classes(num_classes: Any, kind: str) -> int:
    if num_classes is None:
        raise ValueError(f"kind {kind!r} needs num_classes: pass num_classes=K (K >= 2).")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}.")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 for label noise, got {num_classes}.")
    return int(num_classes)


def _check_labels(labels: ArrayLike, num_classes: int, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as an int64 array of shape ``(n,)`` with values in ``[0, num_classes)``."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of class indices, got shape {arr.shape}; "
            "flatten it or pass one integer label per sample."
        )
    if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)  # integral floats (e.g. from JSON) are harmless
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must hold integer class indices, got dtype {arr.dtype}; encode class names "
            "as integers first (e.g. datasets' class_encode_column)."
        )
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        bad = arr[(arr < 0) | (arr >= num_classes)]
        hint = " (datasets marks unlabelled rows with -1: filter them out first)" if bad.min() < 0 else ""
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), found {int(bad[0])} ({bad.size} values out of "
            f"range){hint}; pass the right num_classes or remap the labels to 0..K-1."
        )
    return arr


def _check_matrix(T: ArrayLike) -> np.ndarray:
    """Return ``T`` as a float64 ``(K, K)`` row-stochastic matrix, or raise a ValueError."""
    arr = np.asarray(T, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        raise ValueError(
            f"a transition matrix must be square (K, K) with K >= 2, got shape {arr.shape}; "
            "T[i, j] = P(noisy j | true i)."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("the transition matrix holds NaN or inf values; pass finite probabilities.")
    if np.any(arr < 0):
        i, j = np.argwhere(arr < 0)[0]
        raise ValueError(
            f"transition matrix entry T[{i}, {j}] = {arr[i, j]:.6g} is negative (row {i}: "
            f"{np.round(arr[i], 6).tolist()}); probabilities must be >= 0: lower the flip rates "
            "of that row so that they sum to at most 1."
        )
    sums = arr.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_ATOL)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"row {i} of the transition matrix sums to {sums[i]:.6g}, not 1 (rows are "
            "P(noisy j | true i)); normalise it, e.g. T / T.sum(axis=1, keepdims=True)."
        )
    return arr
