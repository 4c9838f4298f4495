"""Data sets, augmentation and collators for training on noisy labels.

All loaders return a ``datasets.DatasetDict`` whose ``label`` column is a ``ClassLabel``; image
sets store uint8 ``pixel_values`` (C, H, W) and are normalised on the fly by the collators.
:func:`load_dataset_by_name` is what recipes call: a built-in name reads the offline files
under the shared folder; your own data (files, globs, saved, WRENCH and image folders, Hub ids)
goes through ``datasets`` (:mod:`jal_trainer.data.files`) and is brought to one contract of
columns and labels by :mod:`jal_trainer.data.contract`.

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
from jal_trainer.data.files import as_dataset_dict, dataset_name_from_path, is_saved_dataset, load_raw_data
from jal_trainer.data.wrench import is_wrench_folder, load_wrench_folder, mark_entities
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


def load_dataset_by_name(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    data_config: str | None = None,
    data_revision: str | None = None,
    mark_entities: bool = True,
    entity_markers: tuple[str, ...] | list[str] = ("E1", "E2"),
    **kwargs: Any,
) -> datasets.DatasetDict:
    """Load a data set named in a recipe.

    Resolution order:

    1. ``path`` is a folder written by ``save_to_disk``: ``datasets.load_from_disk(path)``;
    2. ``path`` is a WRENCH folder (``label.json``, ``train.json``): any WRENCH set, under any
       name (:func:`~jal_trainer.data.wrench.load_wrench_folder`, entities marked);
    3. ``name`` is one of :data:`DATASET_NAMES` (``digits``, ``cifar10``, ``cifar10n``, ``sst2``,
       ``trec``, ``banking77``, ``wrench-youtube``, ``wrench-sms``, ``wrench-trec``): the offline
       loader, reading ``path`` (``${shared}`` expands) or the shared folder, with ``kwargs``;
    4. ``path`` is anything else :func:`~jal_trainer.data.files.load_raw_data` reads: a CSV,
       JSON, JSONL or Parquet file or glob, an image folder, a folder of data files, a Hub id;
    5. ``name`` itself looks like a Hub id: ``datasets.load_dataset(name, data_config,
       revision=data_revision)``.

    Hub image sets with an ``Image`` column get a uint8 ``pixel_values`` column
    (:func:`ensure_pixel_values`).

    Example:
        >>> load_dataset_by_name("wrench-sms")["validation"].num_rows
        500
    """
    key = name.lower()
    if path is not None:
        resolved = resolve_path(path)
        if is_saved_dataset(resolved):
            return ensure_pixel_values(as_dataset_dict(datasets.load_from_disk(str(resolved))))
        if is_wrench_folder(resolved):
            return load_wrench_folder(resolved, mark=mark_entities, markers=entity_markers)
        if key not in _LOADERS:
            return load_raw_data(path, data_config=data_config, data_revision=data_revision,
                                 mark_entities=mark_entities, entity_markers=entity_markers)
    if key in _LOADERS:
        return _LOADERS[key](path, **kwargs)
    if path is None and _HUB_ID.match(name) and "/" in name:
        loaded = datasets.load_dataset(name, data_config, revision=data_revision, **kwargs)
        return ensure_pixel_values(as_dataset_dict(loaded))
    raise ValueError(
        f"unknown data set {name!r}. Use one of {', '.join(DATASET_NAMES)}, a Hub id such as 'owner/name', "
        "or give data_path (a data file, a saved or WRENCH or image folder)."
    )


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
    "as_dataset_dict",
    "augment_images",
    "compute_image_stats",
    "decode_jpegs",
    "dataset_name_from_path",
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
    "load_raw_data",
    "load_sst2",
    "load_trec",
    "load_wrench",
    "load_wrench_folder",
    "mark_entities",
    "normalize",
    "random_crop",
    "random_hflip",
    "stratified_indices",
    "stratified_subset",
    "tokenize_dataset",
]
