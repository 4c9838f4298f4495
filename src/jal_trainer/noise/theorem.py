"""Theorem 4.1: the smallest AMSE parameter ``a`` that is noise tolerant for a transition matrix.

Example:
    >>> from jal_trainer.noise import min_admissible_a, transition_matrix
    >>> round(min_admissible_a(transition_matrix("symmetric", 0.8, 10)), 6)
    9.0
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from jal_trainer.noise._checks import _check_matrix


def _row_bounds(T: np.ndarray) -> np.ndarray:
    """Per row ``y``: ``sum_i T[y, i] / (T[y, y] - max_{i != y} T[y, i])``, inf if not dominant."""
    K = T.shape[0]
    off = np.where(np.eye(K, dtype=bool), -np.inf, T).max(axis=1)
    gap = np.diagonal(T) - off
    with np.errstate(divide="ignore"):
        return np.where(gap > 0, T.sum(axis=1) / np.where(gap > 0, gap, 1.0), np.inf)


def min_admissible_a(T: ArrayLike) -> float:
    """Smallest AMSE parameter ``a`` that is asymmetric (noise tolerant) for ``T``: Theorem 4.1.

    ``max over rows y of (sum_i T[y, i]) / (T[y, y] - max_{i != y} T[y, i])``, with
    ``T[i, j] = P(noisy j | true i)`` (rows sum to one).

    Args:
        T: ``(K, K)`` transition matrix.

    Returns:
        The bound as a float; any ``a >= bound`` is admissible.

    Raises:
        ValueError: when some row is not clean-label dominant (``T[y, y] <= max_{i != y}
            T[y, i]``): then no ``a`` exists; the message names the row and its values.

    Example:
        >>> from jal_trainer.noise import transition_matrix
        >>> round(min_admissible_a(transition_matrix("symmetric", 0.4, 10)), 6)
        1.8
        >>> round(min_admissible_a(transition_matrix("pairflip", 0.4, 10)), 6)
        5.0
    """
    T = _check_matrix(T)
    bounds = _row_bounds(T)
    if np.any(np.isinf(bounds)):
        y = int(np.flatnonzero(np.isinf(bounds))[0])
        others = np.delete(T[y], y)
        raise ValueError(
            f"no admissible a exists: row {y} is not clean-label dominant (T[{y}, {y}] = "
            f"{T[y, y]:.4g} <= max off-diagonal {others.max():.4g}; row {np.round(T[y], 4).tolist()}); "
            "lower the noise rate of that class so that its true label stays the most likely."
        )
    return float(bounds.max())


def check_a(a: float, T: ArrayLike) -> tuple[bool, float]:
    """Whether ``a`` satisfies Theorem 4.1 for ``T``, and the bound it was compared with.

    Unlike :func:`min_admissible_a` this never raises for a noise matrix without an admissible
    ``a``: it returns ``(False, inf)``, so a trainer can warn instead of failing.

    Args:
        a: the AMSE parameter.
        T: ``(K, K)`` transition matrix (rows sum to one).

    Returns:
        ``(ok, bound)`` with ``ok = a >= bound``.

    Example:
        >>> from jal_trainer.noise import transition_matrix
        >>> ok, bound = check_a(30.0, transition_matrix("symmetric", 0.8, 10))
        >>> ok, round(bound, 6)
        (True, 9.0)
        >>> check_a(5.0, transition_matrix("symmetric", 0.8, 10))[0]
        False
    """
    bound = float(_row_bounds(_check_matrix(T)).max())
    return bool(a >= bound), bound
