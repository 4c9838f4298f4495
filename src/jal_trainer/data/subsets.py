"""Seeded, class-stratified subsets of a label array or a split (``train_subset``, ``test_subset``).

Example:
    >>> stratified_indices([0, 0, 1, 1, 1, 1], 3, seed=0).size
    3
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np


def stratified_indices(labels: Sequence[int] | np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded subset of ``n`` examples with the class proportions of ``labels``.

    Class k gets ``floor(n * c_k / N)`` examples plus one for the classes with the largest
    remainders (ties to the lower class id), so a balanced set of 10 classes and ``n=1000`` gives
    exactly 100 per class. Indices are sorted, which keeps the original order.

    Args:
        labels: (N,) integer class ids.
        n: subset size, 1 <= n <= N.
        seed: seed of the ``numpy.random.Generator`` that picks examples within each class.

    Example:
        >>> stratified_indices([0, 0, 1, 1, 1, 1], 3, seed=0).size
        3
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}.")
    if not 1 <= n <= labels.size:
        raise ValueError(f"subset size n={n} must be between 1 and the {labels.size} examples available.")
    classes, counts = np.unique(labels, return_counts=True)
    exact = n * counts / labels.size
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((classes, -(exact - quota)))  # largest remainder first, ties to the lower class
    quota[order[: n - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked))


def stratified_subset(
    dataset: datasets.Dataset, n: int, *, seed: int = 0, label_column: str = "label"
) -> datasets.Dataset:
    """A seeded, class-stratified subset of ``n`` rows of ``dataset``, in the original order.

    Example:
        >>> from jal_trainer.data import load_digits
        >>> sub = stratified_subset(load_digits()["train"], 100, seed=0)
        >>> sorted(set(sub["label"])) == list(range(10))
        True
    """
    if label_column not in dataset.column_names:
        raise ValueError(f"column {label_column!r} not in {dataset.column_names}; pass label_column=.")
    labels = dataset.with_format("numpy", columns=[label_column])[:][label_column]
    return dataset.select(stratified_indices(labels, n, seed=seed))


__all__ = ["stratified_indices", "stratified_subset"]
