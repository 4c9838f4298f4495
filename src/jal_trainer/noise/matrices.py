"""Transition matrices ``T[i, j] = P(noisy j | true i)`` of the named noise kinds (rows sum to one).

Symmetric, pair-flip, the paper's CIFAR-10 and CIFAR-100 asymmetric protocols, the true
CIFAR-100 super-classes, ``{source: target}`` maps and explicit matrices (reference section 3).

Example:
    >>> from jal_trainer.noise import transition_matrix
    >>> transition_matrix("symmetric", 0.4, 3).round(2).tolist()
    [[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jal_trainer.noise._checks import _ROW_SUM_ATOL, Kind, _check_matrix, _check_num_classes, _check_rate


NOISE_KINDS: tuple[str, ...] = (
    "symmetric",
    "pairflip",
    "cifar10-asym",
    "cifar100-asym",
    "cifar100-superclass",
    "instance",
)
"""Named synthetic noise kinds. A ``{source: target}`` map or a ``(K, K)`` matrix is also a kind."""

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
