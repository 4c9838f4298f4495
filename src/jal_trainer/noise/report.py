"""The noise report of a set of labels: realised rate, realised transition matrix and Theorem 4.1 bound.

Example:
    >>> import numpy as np
    >>> from jal_trainer.noise import noise_report_from_labels
    >>> noise_report_from_labels(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), num_classes=2).noise_rate
    0.25
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from jal_trainer.noise._checks import _check_labels, _check_matrix, _check_num_classes
from jal_trainer.noise.theorem import _row_bounds


def realised_transition_matrix(clean: ArrayLike, noisy: ArrayLike, num_classes: int) -> np.ndarray:
    """Empirical ``T[i, j]`` = fraction of class-``i`` samples whose noisy label is ``j``.

    Args:
        clean: ``(n,)`` true labels; noisy: ``(n,)`` noisy labels; num_classes: ``K``.

    Returns:
        ``(K, K)`` float64, rows summing to one; rows of classes absent from ``clean`` are NaN.

    Example:
        >>> realised_transition_matrix([0, 0, 1, 1], [0, 1, 1, 1], 2).tolist()
        [[0.5, 0.5], [0.0, 1.0]]
    """
    K = _check_num_classes(num_classes, "report")
    c = _check_labels(clean, K, "clean labels")
    z = _check_labels(noisy, K, "noisy labels")
    if c.shape != z.shape:
        raise ValueError(f"clean and noisy labels differ in length ({c.size} vs {z.size}); align them.")
    counts = np.bincount(c * K + z, minlength=K * K).reshape(K, K).astype(np.float64)
    sizes = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / sizes


@dataclass


class NoiseReport:
    """Realised label noise of a data set and the Theorem 4.1 bound on ``a``.

    Attributes:
        num_samples: ``n``.
        num_classes: ``K``.
        noise_rate: fraction of samples whose noisy label differs from the clean one.
        class_sizes: ``(K,)`` samples per clean class.
        per_class_rate: ``(K,)`` noise rate per clean class (NaN for absent classes).
        realised_T: ``(K, K)`` empirical ``P(noisy j | clean i)``, rows sum to one (NaN rows
            for absent classes).
        requested_T: the requested ``(K, K)`` matrix, if one was given.
        min_a: smallest admissible ``a`` (Theorem 4.1) for ``requested_T`` if given, else for
            ``realised_T`` over the classes present; ``None`` when no ``a`` exists.
        min_a_source: ``"requested"`` or ``"realised"``.
        binding_class: the row that sets ``min_a`` (or that is not clean-dominant).
    """

    num_samples: int
    num_classes: int
    noise_rate: float
    class_sizes: np.ndarray
    per_class_rate: np.ndarray
    realised_T: np.ndarray
    requested_T: np.ndarray | None
    min_a: float | None
    min_a_source: str
    binding_class: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (arrays as lists, NaN as None)."""

        def clean(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return [clean(v) for v in value.tolist()]
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, float) and not math.isfinite(value):
                return None
            return value

        return {
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "noise_rate": self.noise_rate,
            "class_sizes": clean(self.class_sizes),
            "per_class_rate": clean(self.per_class_rate),
            "realised_T": clean(self.realised_T),
            "requested_T": None if self.requested_T is None else clean(self.requested_T),
            "min_a": self.min_a,
            "min_a_source": self.min_a_source,
            "binding_class": self.binding_class,
        }

    def __str__(self) -> str:
        noisy = int(round(self.noise_rate * self.num_samples))
        lines = [
            f"NoiseReport: {self.num_samples:,} samples, {self.num_classes} classes",
            f"  overall noise rate: {100 * self.noise_rate:.2f}% ({noisy:,} labels differ from the clean label)",
        ]
        rates = ", ".join(
            f"{k}: {'-' if np.isnan(r) else f'{100 * r:.1f}%'}" for k, r in enumerate(self.per_class_rate)
        )
        lines.append(f"  per-class noise rate: {rates}")
        if self.min_a is None:
            lines.append(
                f"  Theorem 4.1 ({self.min_a_source} matrix): no admissible a, class "
                f"{self.binding_class} is not clean-label dominant"
            )
        else:
            lines.append(
                f"  smallest admissible a (Theorem 4.1, {self.min_a_source} matrix): "
                f"{self.min_a:.4g} (set by class {self.binding_class})"
            )
        if self.num_classes <= 12:
            lines.append("  realised T[i, j] = P(noisy j | clean i), rows sum to 1:")
            lines += ["    " + " ".join(f"{v:6.3f}" for v in row) for row in self.realised_T]
        return "\n".join(lines)


def noise_report_from_labels(
    clean: ArrayLike,
    noisy: ArrayLike,
    *,
    num_classes: int | None = None,
    T: ArrayLike | None = None,
) -> NoiseReport:
    """Build a :class:`NoiseReport` from clean and noisy label arrays.

    Args:
        clean: ``(n,)`` true labels. noisy: ``(n,)`` noisy labels.
        num_classes: ``K``; defaults to ``T``'s size, else ``max(clean, noisy) + 1``.
        T: the requested ``(K, K)`` matrix; the bound on ``a`` then uses it instead of the
            realised one.

    Example:
        >>> r = noise_report_from_labels([0, 0, 1, 1], [0, 1, 1, 1])
        >>> r.noise_rate, r.per_class_rate.tolist()
        (0.25, [0.5, 0.0])
    """
    requested = None if T is None else _check_matrix(T)
    if num_classes is None:
        if requested is not None:
            num_classes = requested.shape[0]
        else:
            both = np.concatenate([np.asarray(clean).ravel(), np.asarray(noisy).ravel()])
            num_classes = max(int(both.max()) + 1 if both.size else 2, 2)
    K = _check_num_classes(num_classes, "report")
    if requested is not None and requested.shape[0] != K:
        raise ValueError(f"T is {requested.shape[0]}x{requested.shape[0]} but num_classes={K}; pass a matching T.")
    realised = realised_transition_matrix(clean, noisy, K)
    c = _check_labels(clean, K, "clean labels")
    if c.size == 0:
        raise ValueError("no labels to report on: pass non-empty clean and noisy label arrays.")
    sizes = np.bincount(c, minlength=K)
    n = int(c.size)
    noise_rate = float((c != _check_labels(noisy, K, "noisy labels")).mean())
    per_class = 1.0 - np.diagonal(realised)
    source = "requested" if requested is not None else "realised"
    bounds = _row_bounds(requested) if requested is not None else _row_bounds(np.nan_to_num(realised))
    if requested is None:
        bounds = np.where(sizes > 0, bounds, -np.inf)  # absent classes constrain nothing
    binding = int(np.argmax(bounds)) if bounds.size else None
    min_a = float(bounds[binding]) if binding is not None and np.isfinite(bounds[binding]) else None
    return NoiseReport(
        num_samples=n,
        num_classes=K,
        noise_rate=noise_rate,
        class_sizes=sizes,
        per_class_rate=per_class,
        realised_T=realised,
        requested_T=requested,
        min_a=min_a,
        min_a_source=source,
        binding_class=binding,
    )
