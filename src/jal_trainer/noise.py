"""Label noise: transition matrices, samplers, instance-dependent noise and Theorem 4.1.

A NumPy core with no dependency on transformers, datasets or torch, so that it works in a
plain training loop and tests in milliseconds; :mod:`jal_trainer.noisy_datasets` is the thin
``datasets`` layer on top.

Conventions, used everywhere in this module:

* ``T`` is a ``(K, K)`` row-stochastic transition matrix, ``T[i, j] = P(noisy j | true i)``:
  **each row sums to one** (``T.sum(axis=1) == 1``).
* Labels are integer arrays of shape ``(n,)`` with values in ``[0, K)``.
* Randomness comes only from an explicit ``seed``: an ``int`` or a ``numpy.random.Generator``.
  No global random state is read or written.

Example:
    >>> import numpy as np
    >>> from jal_trainer.noise import transition_matrix, corrupt_labels, min_admissible_a
    >>> T = transition_matrix("symmetric", 0.8, 10)
    >>> clean = np.repeat(np.arange(10), 5000)
    >>> noisy = corrupt_labels(clean, T, seed=0)
    >>> float((noisy != clean).mean())
    0.7992
    >>> round(min_admissible_a(T), 6)
    9.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_FINE_LABELS",
    "CIFAR100_SUPERCLASSES",
    "NOISE_KINDS",
    "SAMPLERS",
    "NoiseReport",
    "check_a",
    "corrupt_labels",
    "instance_dependent_labels",
    "majority_vote",
    "make_noisy_labels",
    "min_admissible_a",
    "noise_report_from_labels",
    "realised_transition_matrix",
    "transition_matrix",
]

Seed = int | np.random.Generator
Kind = str | Mapping[int, Any] | np.ndarray | Sequence[Sequence[float]]

NOISE_KINDS: tuple[str, ...] = (
    "symmetric",
    "pairflip",
    "cifar10-asym",
    "cifar100-asym",
    "cifar100-superclass",
    "instance",
)
"""Named synthetic noise kinds. A ``{source: target}`` map or a ``(K, K)`` matrix is also a kind."""

SAMPLERS: tuple[str, ...] = ("exact", "iid")

_KIND_ALIASES = {"pair-flip": "pairflip", "sym": "symmetric"}

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# The asymmetric CIFAR-10 protocol (reference section 3): truck -> automobile, bird -> airplane,
# cat <-> dog, deer -> horse.
_CIFAR10_ASYM_MAP: dict[int, int] = {9: 1, 2: 0, 3: 5, 5: 3, 4: 7}

CIFAR100_FINE_LABELS: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
"""CIFAR-100 fine label names; position = fine label index (alphabetical order)."""

CIFAR100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
"""The 20 CIFAR-100 super-classes (``coarse_label_names`` order) and their fine label names."""

# Values of T * n_i within this relative distance of an integer count as that integer, so that
# float rounding (0.29 * 100 = 28.999999999999996) does not lose a sample in the exact sampler.
_COUNT_RTOL = 1e-9
_ROW_SUM_ATOL = 1e-6


# --------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# transition matrices
# --------------------------------------------------------------------------------------------


def _normalise_kind(kind: str) -> str:
    name = kind.strip().lower().replace("_", "-")
    return _KIND_ALIASES.get(name, name)


def _from_flips(flips: np.ndarray, what: str) -> np.ndarray:
    """Build ``T`` from its off-diagonal flip probabilities ``flips`` (K, K), diagonal = rest."""
    flips = flips.copy()
    np.fill_diagonal(flips, 0.0)
    stay = 1.0 - flips.sum(axis=1)
    if np.any(stay < -_ROW_SUM_ATOL):
        i = int(np.argmin(stay))
        raise ValueError(
            f"{what}: row {i} would have a negative diagonal (1 - {flips[i].sum():.6g} = "
            f"{stay[i]:.6g}; flips {np.round(flips[i], 6).tolist()}); lower the flip rates so "
            "that each source class gives away at most 1 in total."
        )
    T = flips
    T[np.diag_indices_from(T)] = np.clip(stay, 0.0, None)
    return T


def _map_matrix(mapping: Mapping[int, Any], rate: float | None, num_classes: int) -> np.ndarray:
    """``{source: target}`` flips ``rate`` of source to target; ``{source: {target: p}}`` is explicit."""
    flips = np.zeros((num_classes, num_classes))
    for source, target in mapping.items():
        if isinstance(target, Mapping):
            if rate is not None:
                raise ValueError(
                    "a class map with explicit {target: probability} values takes no rate; "
                    "drop rate= or use {source: target} with rate=."
                )
            pairs = dict(target)
        else:
            pairs = {target: _check_rate(rate, "class map")}
        for tgt, prob in pairs.items():
            for name, value in (("source", source), ("target", tgt)):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise ValueError(f"class map {name} {value!r} is not an int class index.")
                if not 0 <= value < num_classes:
                    raise ValueError(
                        f"class map {name} {value} is outside [0, {num_classes}); pass the right "
                        "num_classes or fix the map."
                    )
            if source == tgt:
                raise ValueError(f"class map sends class {source} to itself; drop that entry.")
            flips[source, tgt] = _check_rate(prob, "class map")
    return _from_flips(flips, "class map")


def _cycle_matrix(groups: Sequence[Sequence[int]], rate: float, num_classes: int) -> np.ndarray:
    """Each class flips ``rate`` to the next class of its group (the last wraps to the first)."""
    mapping = {}
    for group in groups:
        for pos, cls in enumerate(group):
            mapping[int(cls)] = int(group[(pos + 1) % len(group)])
    return _map_matrix(mapping, rate, num_classes)


def _fixed_num_classes(kind: str, num_classes: int | None, expected: int) -> int:
    if num_classes is not None and num_classes != expected:
        raise ValueError(
            f"kind {kind!r} is defined for {expected} classes, got num_classes={num_classes}; "
            f"use num_classes={expected} or a class map / matrix for other label sets."
        )
    return expected


def cifar100_superclass_groups() -> list[list[int]]:
    """Return the 20 CIFAR-100 super-classes as lists of fine label indices (ascending).

    Example:
        >>> cifar100_superclass_groups()[0]  # aquatic_mammals: beaver, dolphin, otter, seal, whale
        [4, 30, 55, 72, 95]
    """
    index = {name: i for i, name in enumerate(CIFAR100_FINE_LABELS)}
    return [sorted(index[name] for name in members) for members in CIFAR100_SUPERCLASSES.values()]


def transition_matrix(kind: Kind, rate: float | None = None, num_classes: int | None = None) -> np.ndarray:
    """Return the ``(K, K)`` row-stochastic noise matrix ``T[i, j] = P(noisy j | true i)``.

    Each row sums to one (``T.sum(axis=1) == 1``). Kinds (reference section 3):

    * ``"symmetric"``: ``T = (1 - rate) I + rate / (K - 1) (1 1^T - I)``.
    * ``"pairflip"``: class ``i`` flips ``rate`` to ``(i + 1) mod K``.
    * ``"cifar10-asym"``: truck->automobile (9->1), bird->airplane (2->0), cat<->dog (3<->5),
      deer->horse (4->7), each source flipping ``rate``; K = 10.
    * ``"cifar100-asym"``: the paper's code: contiguous blocks ``5s..5s+4`` act as super-classes,
      each class flips ``rate`` to the next of its block (the last wraps); K = 100.
    * ``"cifar100-superclass"``: the same with the true CIFAR-100 super-classes
      (:data:`CIFAR100_SUPERCLASSES`), next fine index within the super-class, wrapping.
    * a ``{source: target}`` map: each source flips ``rate`` to its target (``num_classes``
      required); ``{source: {target: probability}}`` gives the flips explicitly (no ``rate``).
    * a ``(K, K)`` array: validated and returned as float64 (no ``rate``).

    ``"instance"`` has no single matrix: use :func:`instance_dependent_labels`.

    Args:
        kind: a name from :data:`NOISE_KINDS`, a class map, or a matrix.
        rate: flip probability in ``[0, 1]`` (for the named kinds and ``{source: target}`` maps).
        num_classes: ``K``; required for ``symmetric``, ``pairflip`` and maps, fixed for the
            CIFAR kinds.

    Returns:
        ``T``, float64 of shape ``(K, K)``.

    Example:
        >>> T = transition_matrix("pairflip", 0.4, 3)
        >>> T.round(2).tolist()
        [[0.6, 0.4, 0.0], [0.0, 0.6, 0.4], [0.4, 0.0, 0.6]]
    """
    if isinstance(kind, Mapping):
        return _map_matrix(kind, rate, _check_num_classes(num_classes, "class map"))
    if not isinstance(kind, str):
        if rate is not None:
            raise ValueError("a matrix kind takes no rate: drop rate= (the matrix holds the rates).")
        T = _check_matrix(kind)
        if num_classes is not None and num_classes != T.shape[0]:
            raise ValueError(f"num_classes={num_classes} does not match the {T.shape[0]}x{T.shape[0]} matrix.")
        return T
    name = _normalise_kind(kind)
    if name == "symmetric":
        K = _check_num_classes(num_classes, name)
        eta = _check_rate(rate, name)
        return _from_flips(np.full((K, K), eta / (K - 1)), name)
    if name == "pairflip":
        K = _check_num_classes(num_classes, name)
        return _cycle_matrix([list(range(K))], _check_rate(rate, name), K)
    if name == "cifar10-asym":
        K = _fixed_num_classes(name, num_classes, 10)
        return _map_matrix(_CIFAR10_ASYM_MAP, _check_rate(rate, name), K)
    if name == "cifar100-asym":
        K = _fixed_num_classes(name, num_classes, 100)
        return _cycle_matrix([list(range(s, s + 5)) for s in range(0, 100, 5)], _check_rate(rate, name), K)
    if name == "cifar100-superclass":
        K = _fixed_num_classes(name, num_classes, 100)
        return _cycle_matrix(cifar100_superclass_groups(), _check_rate(rate, name), K)
    if name == "instance":
        raise ValueError(
            "instance-dependent noise has no single transition matrix; use "
            "instance_dependent_labels(labels, features, rate, seed=...) or "
            "add_label_noise(..., kind='instance', features=...)."
        )
    raise ValueError(
        f"unknown noise kind {kind!r}; valid kinds: {', '.join(NOISE_KINDS)}, a {{source: target}} "
        "class map, or a (K, K) matrix (for datasets also 'column' and 'majority-vote')."
    )


# --------------------------------------------------------------------------------------------
# samplers
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# instance-dependent noise (PDN, Xia et al. 2020)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# weak supervision: majority vote
# --------------------------------------------------------------------------------------------


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
      the ~21% noise usually quoted for youtube);
    * **all-abstain rows** (not covered) get a class drawn uniformly at random with the seed,
      and are marked in the returned ``covered`` mask so that callers can keep or drop them.

    The seed is consumed in a fixed order (ties, then uncovered rows), so the output is a
    deterministic function of ``(votes, num_classes, seed, tie_break)``.

    Args:
        votes: ``(n, m)`` integer votes of ``m`` labelling functions, values in
            ``{abstain_value} U [0, K)``.
        num_classes: ``K``.
        seed: int or ``numpy.random.Generator``.
        tie_break: ``"random"`` or ``"lowest"``.
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
    if tie_break not in ("random", "lowest"):
        raise ValueError(f"unknown tie_break {tie_break!r}; use 'random' or 'lowest'.")
    rng = _rng(seed)
    n = V.shape[0]
    rows = np.broadcast_to(np.arange(n)[:, None], V.shape)
    counts = np.bincount(rows[valid] * K + V[valid], minlength=n * K).reshape(n, K)
    covered = counts.sum(axis=1) > 0
    labels = counts.argmax(axis=1)  # smallest index among ties
    if tie_break == "random":
        top = counts == counts.max(axis=1, keepdims=True)
        tied = np.flatnonzero(covered & (top.sum(axis=1) > 1))
        keys = np.where(top[tied], rng.random((tied.size, K)), -1.0)
        labels[tied] = keys.argmax(axis=1)
    uncovered = np.flatnonzero(~covered)
    labels[uncovered] = rng.integers(0, K, uncovered.size)
    return labels.astype(np.int64), covered


# --------------------------------------------------------------------------------------------
# one entry point for array labels
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Theorem 4.1 and the noise report
# --------------------------------------------------------------------------------------------


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
        >>> ok, bound = check_a(30.0, transition_matrix("symmetric", 0.8, 10))
        >>> ok, round(bound, 6)
        (True, 9.0)
        >>> check_a(5.0, transition_matrix("symmetric", 0.8, 10))[0]
        False
    """
    bound = float(_row_bounds(_check_matrix(T)).max())
    return bool(a >= bound), bound


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
