"""Data sets, augmentation and collators for training on noisy labels.

All loaders return a ``datasets.DatasetDict`` whose ``label`` column is a ``ClassLabel``; image
sets store uint8 ``pixel_values`` (C, H, W) and are normalised on the fly by the collators.
:func:`load_dataset_by_name` is what recipes call: a built-in name reads the offline files
under the shared folder, a Hub id or a ``save_to_disk`` folder goes through ``datasets``.

Example:
    >>> from jal_trainer.data import load_dataset_by_name
    >>> dds = load_dataset_by_name("digits")
    >>> dds["train"].features["label"].num_classes
    10
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets

from jal_trainer.data.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DIGITS_MEAN,
    DIGITS_STD,
    augment_images,
    compute_image_stats,
    image_stats,
    normalize,
    random_crop,
    random_hflip,
)
from jal_trainer.data.collate import DeviceBatch, DeviceImageCollator, DeviceImageDataset, DeviceRow, ImageCollator
from jal_trainer.data.text import (
    SST2_CLASSES,
    TREC_CLASSES,
    WRENCH_NAMES,
    load_banking77,
    load_sst2,
    load_trec,
    load_wrench,
    tokenize_dataset,
)
from jal_trainer.data.vision import (
    CIFAR10_CLASSES,
    CIFAR10N_COLUMNS,
    decode_jpegs,
    default_cache_dir,
    ensure_pixel_values,
    image_array,
    images_to_dataset,
    load_cifar10,
    load_cifar10n,
    load_cifar10n_labels,
    load_digits,
    stratified_indices,
    stratified_subset,
)
from jal_trainer.paths import resolve_path

_LOADERS: dict[str, Callable[..., datasets.DatasetDict]] = {
    "digits": load_digits,
    "cifar10": load_cifar10,
    "cifar10n": load_cifar10n,
    "sst2": load_sst2,
    "trec": load_trec,
    "banking77": load_banking77,
    **{f"wrench-{name}": (lambda path=None, _n=name, **kw: load_wrench(_n, path, **kw)) for name in WRENCH_NAMES},
}
DATASET_NAMES = tuple(_LOADERS)

# owner/name or name, as on the Hub; no path separators beyond the one slash, no ${shared}, no ~
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _is_saved_dataset(folder: Path) -> bool:
    markers = ("dataset_dict.json", "dataset_info.json", "state.json")  # written by save_to_disk
    return folder.is_dir() and any((folder / marker).is_file() for marker in markers)


def load_dataset_by_name(name: str, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> datasets.DatasetDict:
    """Load a data set named in a recipe.

    Resolution order:

    1. ``path`` is a folder written by ``save_to_disk``: ``datasets.load_from_disk(path)``;
    2. ``path`` does not exist locally and looks like a Hub id (``owner/name``):
       ``datasets.load_dataset(path, **kwargs)`` (needs network);
    3. ``name`` is one of :data:`DATASET_NAMES` (``digits``, ``cifar10``, ``cifar10n``, ``sst2``,
       ``trec``, ``banking77``, ``wrench-youtube``, ``wrench-sms``, ``wrench-trec``): the offline
       loader, reading ``path`` (``${shared}`` expands) or the shared folder, with ``kwargs``;
    4. ``name`` itself looks like a Hub id: ``datasets.load_dataset(name, **kwargs)``.

    Hub image sets with an ``Image`` column get a uint8 ``pixel_values`` column
    (:func:`ensure_pixel_values`).

    Example:
        >>> load_dataset_by_name("wrench-sms")["validation"].num_rows
        500
    """
    if path is not None:
        resolved = resolve_path(path)
        if _is_saved_dataset(resolved):
            return ensure_pixel_values(_as_dict(datasets.load_from_disk(str(resolved))))
        text = os.fspath(path)
        if not resolved.exists() and "/" in text and _HUB_ID.match(text):
            return ensure_pixel_values(_as_dict(datasets.load_dataset(text, **kwargs)))
    key = name.lower()
    if key in _LOADERS:
        return _LOADERS[key](path, **kwargs)
    if path is None and _HUB_ID.match(name) and "/" in name:
        return ensure_pixel_values(_as_dict(datasets.load_dataset(name, **kwargs)))
    raise ValueError(
        f"unknown data set {name!r}. Use one of {', '.join(DATASET_NAMES)}, a Hub id such as 'owner/name', "
        "or pass path= to a folder written by save_to_disk."
    )


def _as_dict(loaded: datasets.Dataset | datasets.DatasetDict) -> datasets.DatasetDict:
    if isinstance(loaded, datasets.DatasetDict):
        return loaded
    if isinstance(loaded, datasets.Dataset):
        return datasets.DatasetDict({"train": loaded})
    raise ValueError(f"expected a Dataset or DatasetDict, got {type(loaded).__name__}; load a map-style data set.")


__all__ = [
    "CIFAR10N_COLUMNS",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASET_NAMES",
    "DIGITS_MEAN",
    "DIGITS_STD",
    "DeviceBatch",
    "DeviceImageCollator",
    "DeviceImageDataset",
    "DeviceRow",
    "ImageCollator",
    "SST2_CLASSES",
    "TREC_CLASSES",
    "WRENCH_NAMES",
    "augment_images",
    "compute_image_stats",
    "decode_jpegs",
    "default_cache_dir",
    "ensure_pixel_values",
    "image_array",
    "image_stats",
    "images_to_dataset",
    "load_banking77",
    "load_cifar10",
    "load_cifar10n",
    "load_cifar10n_labels",
    "load_dataset_by_name",
    "load_digits",
    "load_sst2",
    "load_trec",
    "load_wrench",
    "normalize",
    "random_crop",
    "random_hflip",
    "stratified_indices",
    "stratified_subset",
    "tokenize_dataset",
]
