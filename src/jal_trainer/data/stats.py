"""Normalisation statistics of any image data set: given, built in, or computed once and cached.

Order: the recipe's ``image_mean``/``image_std``; the stored values of a built-in set
(``digits``, ``cifar10``, ``cifar10n``) read from its own files; else the per-channel mean and
std of the training split, computed in chunks (no full float copy of the images) and cached
as JSON under ``<cache>/image_stats/<fingerprint>.json``. `jal train` writes the values it used
into the run's ``recipe.yaml``, so the run can be repeated exactly.

Example:
    >>> from jal_trainer.data import load_digits
    >>> train_image_stats(load_digits()["train"], cache_dir=None)
    ((0.3065,), (0.3762,))
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np

from jal_trainer.data.vision import default_cache_dir

Stats = tuple[tuple[float, ...], tuple[float, ...]]


def train_image_stats(train: datasets.Dataset, *, cache_dir: str | os.PathLike[str] | None = "default",
                      chunk: int = 4096) -> Stats:
    """Per-channel (mean, std) of uint8 ``pixel_values`` (N, C, H, W) scaled to [0, 1], rounded to 4 digits.

    Args:
        train: a split with ``pixel_values``.
        cache_dir: folder of the cache (``"default"``: :func:`default_cache_dir`; ``None``: no cache).
        chunk: images read from Arrow at a time.
    """
    cache = None
    if cache_dir is not None:
        root = default_cache_dir() if cache_dir == "default" else Path(cache_dir)
        cache = root / "image_stats" / f"{train._fingerprint}.json"
        if cache.is_file():
            saved = json.loads(cache.read_text())
            return tuple(saved["mean"]), tuple(saved["std"])
    pixels = train.with_format("numpy", columns=["pixel_values"], dtype=np.uint8)
    total = total_sq = None
    count = 0
    for start in range(0, train.num_rows, chunk):
        x = pixels[start : start + chunk]["pixel_values"].astype(np.float64) / 255.0  # (n, C, H, W)
        sums, sq = x.sum(axis=(0, 2, 3)), (x * x).sum(axis=(0, 2, 3))
        total = sums if total is None else total + sums
        total_sq = sq if total_sq is None else total_sq + sq
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    stats = tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"mean": stats[0], "std": stats[1], "rows": train.num_rows}))
        except OSError:
            pass  # a read-only cache only costs the recomputation
    return stats


def resolve_image_stats(train: datasets.Dataset, name: str | None, mean: Sequence[float] | None,
                        std: Sequence[float] | None, *, builtin: bool) -> Stats:
    """The (mean, std) a run normalises with: given, built in (``builtin``), or computed from ``train``.

    Raises:
        ValueError: only one of mean/std given, or a count that differs from the channels.
    """
    channels = int(train.features["pixel_values"].shape[0])
    if (mean is None) != (std is None):
        raise ValueError("give both image_mean and image_std (one value per channel), or neither.")
    if mean is not None:
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise ValueError(
                f"image_mean {list(mean)} and image_std {list(std)} need {channels} values each (the images have "
                f"{channels} channels), std > 0."
            )
        return tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if builtin and name is not None:
        from jal_trainer.data.augment import _STATS

        if name.lower() in _STATS:
            return _STATS[name.lower()]
    return train_image_stats(train)


__all__ = ["resolve_image_stats", "train_image_stats"]
