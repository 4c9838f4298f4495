"""Image data sets as ``datasets.DatasetDict``: CIFAR-10, CIFAR-10N and the digits quickstart.

Every split has ``pixel_values`` (``Array3D`` uint8, channels x height x width, values 0..255,
normalised later on the fly by :class:`jal_trainer.data.ImageCollator`), ``label`` (``ClassLabel``
with class names) and ``index`` (int64, the example's position in the original split, so label
files such as CIFAR-10N join on it after subsetting). uint8 keeps CIFAR-10's 50,000 training
images at 150 MB instead of 600 MB as float32.

Example:
    >>> from jal_trainer.data import load_digits
    >>> dds = load_digits()
    >>> dds["train"].num_rows, dds["test"].num_rows
    (1297, 500)
"""

from __future__ import annotations

import os
from importlib import resources

import datasets
import numpy as np

# CIFAR and the array helpers live in their own modules; re-exported for `jal_trainer.data.vision` imports.
from jal_trainer.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR10N_COLUMNS,
    decode_jpegs,
    default_cache_dir,
    load_cifar10,
    load_cifar10n,
    load_cifar10n_labels,
)
from jal_trainer.data.images import ensure_pixel_values, image_array, images_to_dataset
from jal_trainer.data.subsets import stratified_indices, stratified_subset
from jal_trainer.paths import resolve_path

DIGITS_CLASSES = tuple(str(d) for d in range(10))
DIGITS_TEST_SIZE = 500


def load_digits(path: str | os.PathLike[str] | None = None) -> datasets.DatasetDict:
    """The quickstart data set: scikit-learn's 1,797 handwritten digits, shipped in the package.

    8x8 grey images, 10 classes, split once (stratified, seed 0) into 1,297 ``train`` and 500
    ``test`` images; the split is stored in the file, so it never changes. Columns:
    ``pixel_values`` (uint8, 1 x 8 x 8; the original 0..16 intensities scaled to 0..255),
    ``label`` (ClassLabel "0".."9"), ``index`` (position in scikit-learn's ``load_digits``).

    Args:
        path: an npz with ``images`` (N, 8, 8) 0..16, ``labels`` (N,) and ``test_mask`` (N,);
            default the packaged ``jal_trainer/resources/digits.npz``.

    Example:
        >>> dds = load_digits()
        >>> dds["train"].features["pixel_values"].shape
        (1, 8, 8)
    """
    source = resources.files("jal_trainer") / "resources" / "digits.npz" if path is None else resolve_path(path)
    if not source.is_file():
        raise FileNotFoundError(
            f"digits: {source} not found. Reinstall jal-trainer (the file ships in jal_trainer/resources) or pass "
            "path= to an npz with images, labels and test_mask."
        )
    with source.open("rb") as handle, np.load(handle) as archive:
        images, labels, test_mask = archive["images"], archive["labels"], archive["test_mask"].astype(bool)
    # 0..16 -> 0..255 so every image data set shares the uint8 convention of the collators
    pixels = np.round(images.astype(np.float64) * (255.0 / 16.0)).astype(np.uint8)[:, None]
    splits = {}
    for split, mask in (("train", ~test_mask), ("test", test_mask)):
        index = np.flatnonzero(mask)
        splits[split] = images_to_dataset(
            pixels[index], labels[index], DIGITS_CLASSES, columns={"index": index}, fingerprint=f"jal-digits-{split}"
        )
    return datasets.DatasetDict(splits)


__all__ = [
    "CIFAR10N_COLUMNS",
    "CIFAR10_CLASSES",
    "DIGITS_CLASSES",
    "decode_jpegs",
    "default_cache_dir",
    "ensure_pixel_values",
    "image_array",
    "images_to_dataset",
    "load_cifar10",
    "load_cifar10n",
    "load_cifar10n_labels",
    "load_digits",
    "stratified_indices",
    "stratified_subset",
]
