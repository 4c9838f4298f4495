"""One entry point for noisy array labels: any named kind, class map, matrix or instance-dependent noise.

Example:
    >>> import numpy as np
    >>> from jal_trainer.noise import make_noisy_labels
    >>> noisy, T = make_noisy_labels(np.array([0, 0, 1, 1]), "pairflip", 0.5, seed=0)
    >>> noisy.shape, T.shape
    ((4,), (2, 2))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from jal_trainer.noise._checks import Kind, Seed
from jal_trainer.noise.instance import instance_dependent_labels
from jal_trainer.noise.matrices import _normalise_kind, transition_matrix
from jal_trainer.noise.samplers import SAMPLERS, corrupt_labels


def make_noisy_labels(
    labels: ArrayLike,
    kind: Kind,
    rate: float | None = None,
    *,
    seed: Seed,
    num_classes: int | None = None,
    sampler: str = "exact",
    features: ArrayLike | None = None,
    std: float = 0.1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Noisy labels for any synthetic kind: the array counterpart of ``add_label_noise``.

    Args:
        labels: ``(n,)`` integer class indices in ``[0, K)``.
        kind: a name from :data:`NOISE_KINDS`, a class map or a ``(K, K)`` matrix.
        rate: flip rate in ``[0, 1]`` (none for a matrix).
        seed: int or ``numpy.random.Generator``.
        num_classes: ``K``; defaults to the kind's own (CIFAR kinds, matrix) or ``max + 1``.
        sampler: ``"exact"`` or ``"iid"`` (ignored for ``"instance"``).
        features: ``(n, ...)`` array, required for ``"instance"``.
        std: flip-rate spread for ``"instance"``.

    Returns:
        ``(noisy, T)``: ``(n,)`` int64 noisy labels and the requested ``(K, K)`` matrix
        (``None`` for ``"instance"``).

    Example:
        >>> noisy, T = make_noisy_labels(np.arange(10).repeat(100), "cifar10-asym", 0.4, seed=0)
        >>> int((noisy == 1).sum())  # 100 automobiles + 40 trucks
        140
    """
    is_instance = isinstance(kind, str) and _normalise_kind(kind) == "instance"
    if is_instance:
        if features is None:
            raise ValueError("kind 'instance' needs features: pass features=<(n, d) array>.")
        noisy = instance_dependent_labels(labels, features, rate, seed=seed, num_classes=num_classes, std=std)
        return noisy, None
    if features is not None:
        raise ValueError("features are only used by kind='instance'; drop features= or use that kind.")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}.")
    if num_classes is None and isinstance(kind, (str, Mapping)):
        num_classes = _default_num_classes(kind, labels)
    T = transition_matrix(kind, rate, num_classes)
    return corrupt_labels(labels, T, seed=seed, sampler=sampler), T


def _default_num_classes(kind: str | Mapping[int, Any], labels: ArrayLike) -> int | None:
    if isinstance(kind, str):
        name = _normalise_kind(kind)
        if name == "cifar10-asym":
            return 10
        if name in ("cifar100-asym", "cifar100-superclass"):
            return 100
    arr = np.asarray(labels)
    return int(arr.max()) + 1 if arr.size and arr.dtype.kind in "iu" else None
