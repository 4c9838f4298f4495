"""Image arrays as ``datasets.Dataset``: uint8 pixels built straight in Arrow, and read back in one go.

``pixel_values`` is an ``Array3D`` uint8 column (channels x height x width, values 0..255,
normalised later on the fly by :class:`jal_trainer.data.ImageCollator`); uint8 keeps CIFAR-10's
50,000 training images at 150 MB instead of 600 MB as float32. The loaders of
:mod:`jal_trainer.data.vision` and :mod:`jal_trainer.data.cifar` build their splits here.

Example:
    >>> from jal_trainer.data.images import image_array, images_to_dataset
    >>> ds = images_to_dataset(np.zeros((2, 1, 8, 8), np.uint8), np.array([0, 1]), ["a", "b"])
    >>> image_array(ds).shape
    (2, 1, 8, 8)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import datasets
import numpy as np
import pyarrow as pa
from datasets.features.features import Array3DExtensionType
from datasets.fingerprint import generate_random_fingerprint
from datasets.table import InMemoryTable


def images_to_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    *,
    columns: Mapping[str, np.ndarray] | None = None,
    features: Mapping[str, datasets.features.features.FeatureType] | None = None,
    fingerprint: str | None = None,
) -> datasets.Dataset:
    """Wrap uint8 images (N, C, H, W) and labels (N,) into a ``Dataset`` without copying pixels.

    The pixels become an ``Array3D`` uint8 column built directly in Arrow (``Dataset.from_dict``
    would walk 150 MB of CIFAR pixels in Python). Extra ``columns`` are (N,) arrays; their
    ``features`` default to ``Value`` of the array's dtype.

    Example:
        >>> ds = images_to_dataset(np.zeros((2, 1, 8, 8), np.uint8), np.array([0, 1]), ["a", "b"])
        >>> ds.features["pixel_values"].shape
        (1, 8, 8)
    """
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"images must be (N, C, H, W) with N = len(labels); got {images.shape} and {labels.shape}.")
    shape = tuple(int(s) for s in images.shape[1:])
    storage = pa.array(images.reshape(-1))
    for size in reversed(shape):  # innermost lists first: W, then H, then C
        offsets = np.arange(0, len(storage) + 1, size, dtype=np.int32)
        storage = pa.ListArray.from_arrays(pa.array(offsets), storage)
    arrays = {
        "pixel_values": pa.ExtensionArray.from_storage(Array3DExtensionType(shape, "uint8"), storage),
        "label": pa.array(labels),
    }
    feats = {"pixel_values": datasets.Array3D(shape, "uint8"), "label": datasets.ClassLabel(names=list(label_names))}
    for name, values in (columns or {}).items():
        values = np.asarray(values)
        if len(values) != len(labels):
            raise ValueError(f"column {name!r} has {len(values)} values for {len(labels)} images.")
        arrays[name] = pa.array(values)
        feats[name] = (features or {}).get(name) or datasets.Value(str(values.dtype))
    features_ = datasets.Features(feats)
    table = InMemoryTable(pa.table(arrays).cast(features_.arrow_schema))
    # An explicit fingerprint skips hashing the whole pixel table (seconds for CIFAR).
    fingerprint = fingerprint or generate_random_fingerprint()
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features_), fingerprint=fingerprint)


def image_array(dataset: datasets.Dataset, column: str = "pixel_values") -> np.ndarray:
    """All images of a split as one uint8 array (N, C, H, W), read from Arrow in one go.

    Use this rather than ``np.asarray(dataset["pixel_values"])``, which walks rows in Python
    (seconds per thousand CIFAR images) and widens to int64.

    Example:
        >>> from jal_trainer.data import load_digits
        >>> image_array(load_digits()["test"]).shape
        (500, 1, 8, 8)
    """
    if column not in dataset.column_names:
        raise ValueError(f"column {column!r} not in {dataset.column_names}; load an image data set or pass column=.")
    return np.asarray(dataset.with_format("numpy", columns=[column], dtype=np.uint8)[:][column], dtype=np.uint8)


def ensure_pixel_values(dds: datasets.DatasetDict) -> datasets.DatasetDict:
    """Give a Hub image data set (an ``Image`` column such as ``img``) a uint8 ``pixel_values`` column.

    Leaves data sets that already have ``pixel_values``, or no ``Image`` column, unchanged.

    Example:
        >>> from jal_trainer.data import load_digits
        >>> ensure_pixel_values(load_digits())["train"].column_names
        ['pixel_values', 'label', 'index']
    """
    out = {}
    for split, ds in dds.items():
        image_columns = [k for k, f in ds.features.items() if isinstance(f, datasets.Image)]
        has_pixels = "pixel_values" in ds.column_names or not image_columns
        out[split] = ds if has_pixels else _image_column_to_pixels(ds, image_columns[0])
    return datasets.DatasetDict(out)


def _image_column_to_pixels(ds: datasets.Dataset, column: str) -> datasets.Dataset:
    """Replace the PIL ``column`` by uint8 ``pixel_values`` (C, H, W); grey stays 1 channel, the rest is RGB."""
    first = ds[0][column]
    mode = "L" if first.mode in ("L", "1") else "RGB"
    shape = (1 if mode == "L" else 3, first.height, first.width)

    def to_pixels(batch: dict[str, list]) -> dict[str, list]:
        arrays = [np.asarray(img.convert(mode), dtype=np.uint8) for img in batch[column]]
        arrays = [a.reshape(a.shape[0], a.shape[1], -1).transpose(2, 0, 1) for a in arrays]  # (H, W[, C]) -> CHW
        if any(a.shape != shape for a in arrays):
            raise ValueError(f"images in {column!r} differ in size; resize them to {shape[1:]} before training.")
        return {"pixel_values": arrays}

    features = ds.features.copy()
    del features[column]
    features["pixel_values"] = datasets.Array3D(shape, "uint8")
    return ds.map(to_pixels, batched=True, remove_columns=[column], features=features, desc="pixel_values")
