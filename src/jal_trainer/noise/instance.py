"""Instance-dependent label noise (PDN, Xia et al. 2020): each sample's flip probability depends on its features.

Example:
    >>> import numpy as np
    >>> from jal_trainer.noise import instance_dependent_labels
    >>> rng = np.random.default_rng(0)
    >>> noisy = instance_dependent_labels(rng.integers(0, 3, 500), rng.normal(size=(500, 8)), 0.4, seed=0)
    >>> noisy.shape
    (500,)
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from jal_trainer.noise._checks import Seed, _check_labels, _check_num_classes, _check_rate, _rng
from jal_trainer.noise.samplers import _cdf


def _truncated_normal(rng: np.random.Generator, mean: float, std: float, size: int) -> np.ndarray:
    """``size`` draws of N(mean, std^2) truncated to [0, 1], by rejection (acceptance >= ~50%)."""
    out = np.empty(size)
    todo = np.arange(size)
    while todo.size:
        draw = rng.normal(mean, std, todo.size)
        ok = (draw >= 0.0) & (draw <= 1.0)
        out[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return out


def _check_features(features: ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(features)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise ValueError(
            f"features must have one row per label: expected shape ({n}, ...), got {arr.shape}; "
            "pass an (n, d) array (pixels for images, embeddings for text) aligned with the labels."
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"features must be numeric, got dtype {arr.dtype}; convert them to float first.")
    # float32 unless given float64: CIFAR-10 pixels as float64 would take 1.2 GB
    flat = arr.reshape(n, -1).astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
    if flat.shape[1] == 0:
        raise ValueError(f"features have no columns (shape {arr.shape}); pass at least one feature per sample.")
    if not np.all(np.isfinite(flat)):
        raise ValueError("features hold NaN or inf values; clean or impute them first.")
    return flat


def instance_dependent_labels(
    labels: ArrayLike,
    features: ArrayLike,
    rate: float,
    *,
    seed: Seed,
    num_classes: int | None = None,
    std: float = 0.1,
    chunk_size: int = 4096,
) -> np.ndarray:
    """Instance-dependent (part-dependent, PDN) noise of Xia et al. 2020 (reference section 3).

    Per sample a flip rate ``q_i ~ N(rate, std^2)`` truncated to ``[0, 1]``; a random projection
    ``W ~ N(0, 1)`` of shape ``(K, d, K)``; for a sample ``x`` of class ``y`` the scores
    ``x . W[y]`` with the true class masked out, softmax, times ``q_i``, the true class keeping
    ``1 - q_i``; the noisy label is drawn from that distribution. The average noise rate is
    ``E[q]``: ``rate`` for rates well inside ``[0, 1]``, more near 0 and less near 1 because of
    the truncation (``rate=0`` gives about 0.08 with ``std=0.1``; ``std=0`` is exact). The
    features decide *which* class a sample flips to, and their scale only how peaked that
    choice is, so pass them as the model sees them (e.g. normalised pixels). Truncated normals
    are drawn by rejection: the draws differ from the original code's ``scipy.stats.truncnorm``
    stream, not their distribution.

    Args:
        labels: ``(n,)`` integer class indices in ``[0, K)``.
        features: ``(n, ...)`` numeric array, flattened to ``(n, d)``.
        rate: mean flip rate in ``[0, 1]``.
        seed: int or ``numpy.random.Generator``.
        num_classes: ``K``; defaults to ``labels.max() + 1``.
        std: standard deviation of the per-sample flip rate (0.1 in the paper).
        chunk_size: rows scored at once (working memory about ``chunk_size * d`` floats).

    Returns:
        ``(n,)`` int64 noisy labels.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 10, 20000)
        >>> x = rng.normal(size=(20000, 32))
        >>> noisy = instance_dependent_labels(y, x, 0.4, seed=0, num_classes=10)
        >>> abs(float((noisy != y).mean()) - 0.4) < 0.02
        True
    """
    eta = _check_rate(rate, "instance")
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std >= 0):
        raise ValueError(f"std must be a finite number >= 0, got {std!r}; the paper uses std=0.1.")
    arr = np.asarray(labels)
    K = _check_num_classes(
        num_classes if num_classes is not None else (int(arr.max()) + 1 if arr.size else 2), "instance"
    )
    y = _check_labels(arr, K)
    X = _check_features(features, y.size)
    rng = _rng(seed)
    q = _truncated_normal(rng, eta, float(std), y.size)
    u = rng.random(y.size)
    noisy = np.empty(y.size, dtype=np.int64)
    for cls in range(K):
        # W[cls] of the (K, d, K) projection, drawn class by class (always, to keep the stream
        # fixed) so that memory stays at d * K floats instead of K * d * K.
        W_cls = rng.standard_normal((X.shape[1], K))
        members = np.flatnonzero(y == cls)
        for start in range(0, members.size, chunk_size):
            rows = members[start : start + chunk_size]
            scores = X[rows] @ W_cls
            scores[:, cls] = -np.inf
            scores -= scores.max(axis=1, keepdims=True)
            P = np.exp(scores)
            P *= (q[rows] / P.sum(axis=1))[:, None]
            P[:, cls] = 1.0 - q[rows]
            noisy[rows] = (_cdf(P) <= u[rows, None]).sum(axis=1)
    return noisy
