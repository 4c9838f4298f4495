"""Image batches for a ``Trainer``: a row collator, and a dataset that keeps all images on the device.

Two ways to feed the vision models:

- :class:`ImageCollator`, the usual ``data_collator``: the Trainer's DataLoader reads rows of a
  ``datasets.Dataset`` (uint8 ``pixel_values``), the collator stacks them, augments (when built
  with ``augment=True``) and normalises. Runs on CPU, works with any number of workers.
- :class:`DeviceImageDataset` + :class:`DeviceImageCollator`, the fast path of GPU training
  scripts such as cifar10-airbench: the whole uint8 image tensor lives on the accelerator (150 MB
  for CIFAR-10), the dataset hands the Trainer's DataLoader only row numbers, and the collator
  gathers, augments and normalises the batch on the device in a few vectorised ops. Each
  dataset carries its own ``augment`` flag, so one collator serves the training set (augmented)
  and the test set (not) although the Trainer uses a single ``data_collator`` for both. Use it
  with ``dataloader_num_workers=0``; pinning is skipped for tensors already on the device.

Example:
    >>> from jal_trainer.data import load_digits, DIGITS_MEAN, DIGITS_STD
    >>> dds = load_digits()
    >>> collate = ImageCollator(augment=False, mean=DIGITS_MEAN, std=DIGITS_STD)
    >>> batch = collate([dds["train"][i] for i in range(4)])
    >>> batch["pixel_values"].shape, batch["labels"].tolist()
    (torch.Size([4, 1, 8, 8]), [1, 2, 3, 4])
"""

from __future__ import annotations

import copy

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import datasets
import numpy as np
import torch

from jal_trainer.data.augment import augment_images, normalize
from jal_trainer.data.vision import image_array

PIXELS = "pixel_values"


class _SeededGenerator:
    """A ``torch.Generator`` per device and DataLoader worker, or None (torch's global RNG).

    Inside a worker the seed is mixed with the worker's own seed, which the DataLoader draws
    afresh each epoch: workers do not repeat each other's draws, nor their own across epochs.
    """

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._key: tuple[Any, ...] | None = None

    def get(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        info = torch.utils.data.get_worker_info()
        key = (str(device), None if info is None else (info.id, info.seed))
        if self._generator is None or self._key != key:
            seed = self.seed if info is None else (self.seed * 1_000_003 + info.seed) % (2**63)
            self._generator = torch.Generator(device=device).manual_seed(seed)
            self._key = key
        return self._generator

    def __getstate__(self) -> dict[str, Any]:  # generators do not pickle (spawned workers)
        return {"seed": self.seed, "_generator": None, "_key": None}


def _is_numeric_scalar(value: Any) -> bool:
    if isinstance(value, (bool, numbers.Number)) and not isinstance(value, complex):
        return True
    if isinstance(value, torch.Tensor):
        return value.ndim == 0 and not value.is_complex()
    if isinstance(value, (np.generic, np.ndarray)):
        return value.ndim == 0 and (value.dtype == np.bool_ or np.issubdtype(value.dtype, np.number))
    return False


def _stack_pixels(values: Sequence[Any]) -> torch.Tensor:
    if isinstance(values[0], torch.Tensor):
        return torch.stack(list(values))
    return torch.from_numpy(np.stack([np.asarray(v) for v in values]))


class _Augmenting:
    """The augmentation and normalisation settings that :class:`ImageCollator` and
    :class:`DeviceImageDataset` share, and the augmentation of a batch with them."""

    augment: bool
    device: torch.device

    def _set_augmentation(
        self,
        augment: bool,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        crop_padding: int,
        flip: bool,
        seed: int | None,
        device: str | torch.device | None,
    ) -> None:
        if (mean is None) != (std is None):
            raise ValueError("pass both mean and std (or neither); see jal_trainer.data.image_stats.")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.augment, self.mean, self.std = augment, mean, std
        self.crop_padding, self.flip = crop_padding, flip
        self._rng = _SeededGenerator(seed)

    def _augmented(self, images: torch.Tensor) -> torch.Tensor:
        """Random crop and flip of (B, C, H, W) images, drawn from this object's seeded generator."""
        return augment_images(
            images, crop_padding=self.crop_padding, flip=self.flip, generator=self._rng.get(self.device)
        )


class ImageCollator(_Augmenting):
    """Collate rows ``{pixel_values, label, ...}`` into a batch for an image classifier.

    Returns ``pixel_values`` float32 (B, C, H, W), normalised, augmented when ``augment`` is
    True; ``labels`` int64 (B,) from ``label_column`` (or an existing ``labels``); and every
    other numeric or boolean scalar column (``clean_label``, ``is_noisy``, ``index``, ...) as a
    tensor. Columns that are not numeric scalars (text, lists) are left out.

    Args:
        augment: random crop (``crop_padding``) and horizontal flip (``flip``).
        mean, std: per-channel statistics of [0, 1] images (:func:`image_stats`); None skips.
        crop_padding: zero padding of the random crop, pixels per side (0: no crop).
        flip: random horizontal flip with probability 0.5.
        seed: seed of a private generator; None uses torch's global RNG (seeded by ``set_seed``).
        device: where to stack and augment (default CPU).
        label_column: the row key holding the class id.

    Pixels are uint8 0..255 (as the loaders store them) or floats already in [0, 1].
    """

    def __init__(
        self,
        augment: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        *,
        crop_padding: int = 4,
        flip: bool = True,
        seed: int | None = None,
        device: str | torch.device | None = None,
        label_column: str = "label",
    ) -> None:
        self._set_augmentation(augment, mean, std, crop_padding, flip, seed, device)
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}.")
        self.label_column = label_column

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("ImageCollator got an empty batch.")
        if PIXELS not in rows[0]:
            raise ValueError(f"rows need a {PIXELS!r} entry, got keys {list(rows[0])}; load an image data set.")
        images = _stack_pixels([r[PIXELS] for r in rows]).to(self.device)
        if self.augment:
            images = self._augmented(images)
        batch = {PIXELS: normalize(images, self.mean, self.std)}
        label_key = self.label_column if self.label_column in rows[0] else "labels"
        for key in rows[0]:
            if key == PIXELS:
                continue
            values = [r[key] for r in rows]
            if key == label_key:
                batch["labels"] = torch.as_tensor(np.asarray(values), dtype=torch.long, device=self.device)
            elif all(_is_numeric_scalar(v) for v in values):
                batch[key] = torch.as_tensor(np.asarray(values), device=self.device)
        return batch


class DeviceRow(NamedTuple):
    """What :class:`DeviceImageDataset` yields per example: its dataset and row number.

    Not a dict, so the Trainer's column-removing wrapper passes it through untouched.
    """

    source: DeviceImageDataset
    index: int


class DeviceRows(list):
    """What :meth:`DeviceImageDataset.__getitems__` gives a DataLoader: the batch's rows, plus their
    dataset and row numbers so that the collator gathers them in one call.

    A list of :class:`DeviceRow`, so wrappers that iterate over a batch's rows (the Trainer's
    column-removing collator) still see rows.
    """

    def __init__(self, source: DeviceImageDataset, indices: list[int]) -> None:
        super().__init__(DeviceRow(source, i) for i in indices)
        self.source, self.indices = source, indices


class DeviceBatch(dict):
    """A batch dict whose ``pin_memory`` leaves tensors already on an accelerator alone.

    The DataLoader pins every batch when ``pin_memory=True`` (the Trainer's default) and pinning
    a CUDA tensor is an error; CPU tensors are still pinned.
    """

    def pin_memory(self, device: Any = None) -> DeviceBatch:
        return DeviceBatch({k: v.pin_memory() if v.device.type == "cpu" else v for k, v in self.items()})


def _scalar_columns(dataset: datasets.Dataset, skip: Sequence[str]) -> list[str]:
    keep = []
    for name, feature in dataset.features.items():
        if name in skip:
            continue
        if isinstance(feature, datasets.ClassLabel):
            keep.append(name)
        elif isinstance(feature, datasets.Value) and (
            feature.dtype == "bool" or feature.dtype.startswith(("int", "uint", "float"))
        ):
            keep.append(name)
    return keep


class DeviceImageDataset(_Augmenting, torch.utils.data.Dataset):
    """A split held as tensors on one device; batches are gathered and augmented there.

    Map-style: ``len(ds)`` rows, ``ds[i]`` is a :class:`DeviceRow`; give the Trainer
    :class:`DeviceImageCollator` as ``data_collator``. Batches hold ``pixel_values`` (float32,
    normalised, augmented when ``augment``), ``labels`` and every numeric scalar column of the
    source split (``index``, ``clean_label``, ``is_noisy``, ...) as tensors on ``device``.

    Args:
        dataset: a split with uint8 ``pixel_values`` (N, C, H, W) and ``label_column``.
        augment: random crop + flip on each batch (for the training set only).
        mean, std, crop_padding, flip, seed: as in :class:`ImageCollator`.
        device: where the images live, e.g. ``"cuda"`` (default CPU).
        label_column: the class-id column, returned as ``labels``.
        columns: which other columns to carry (default every numeric scalar column).
        channels_last: return ``pixel_values`` in ``torch.channels_last`` memory format, the
            layout cuDNN's fastest convolution kernels read (pair it with a model moved to
            ``channels_last``); the values and the shape are unchanged.

    Example:
        >>> from jal_trainer.data import load_digits
        >>> train = DeviceImageDataset(load_digits()["train"], augment=True, crop_padding=1, flip=False)
        >>> batch = DeviceImageCollator()([train[i] for i in range(8)])
        >>> batch["pixel_values"].shape, batch["index"].shape
        (torch.Size([8, 1, 8, 8]), torch.Size([8]))
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        *,
        augment: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        crop_padding: int = 4,
        flip: bool = True,
        seed: int | None = None,
        device: str | torch.device | None = None,
        label_column: str = "label",
        columns: Sequence[str] | None = None,
        channels_last: bool = False,
    ) -> None:
        self._set_augmentation(augment, mean, std, crop_padding, flip, seed, device)
        self.dataset = dataset  # the source split, for code that reads its columns (noise checks, callbacks)
        self.channels_last = channels_last
        # Made once on the device: a tensor built from a Python list per batch would be a
        # host-to-device copy that waits for the GPU's queue at every step.
        self._mean_std = (
            None if mean is None else (_on_device(mean, self.device), _on_device(std, self.device))
        )
        self.images = torch.from_numpy(image_array(dataset)).to(self.device)
        names = list(columns) if columns is not None else _scalar_columns(dataset, skip=[PIXELS])
        missing = [c for c in names if c not in dataset.column_names]
        if missing:
            raise ValueError(f"columns {missing} are not in the data set ({dataset.column_names}).")
        table = dataset.with_format("numpy", columns=names)[:] if names else {}
        self.tensors = {
            ("labels" if name == label_column else name): torch.as_tensor(np.asarray(table[name])).to(self.device)
            for name in names
        }

    def __len__(self) -> int:
        return self.images.shape[0]

    def without_augmentation(self) -> DeviceImageDataset:
        """The same rows (sharing the device tensors, no copy) served without augmentation."""
        view = copy.copy(self)
        view.augment = False
        return view

    def __getitem__(self, index: int) -> DeviceRow:
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} out of range for {len(self)} rows")
        return DeviceRow(self, int(index) % len(self))

    def __getitems__(self, indices: list[int]) -> DeviceRows:
        # The DataLoader asks for a whole batch at once when this exists: one call instead of
        # one `__getitem__` per row (128 Python calls per step were a third of the Trainer's overhead).
        return DeviceRows(self, list(indices))

    def batch(self, indices: Sequence[int] | torch.Tensor) -> DeviceBatch:
        """Gather rows ``indices`` (B,) and return the batch (augmented if this dataset augments)."""
        idx = _indices_on(indices, self.device)
        images = self.images.index_select(0, idx)
        if self.augment:
            images = self._augmented(images)
        pixels = normalize(images, *(self._mean_std or (None, None)))
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        batch = DeviceBatch({PIXELS: pixels})
        for name, values in self.tensors.items():
            batch[name] = values.index_select(0, idx)
        return batch


def _on_device(values: Sequence[float], device: torch.device) -> torch.Tensor:
    """(C,) float32 tensor of per-channel statistics on ``device``."""
    return torch.as_tensor(values, dtype=torch.float32).to(device)


def _indices_on(indices: Sequence[int] | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Row numbers (B,) as int64 on ``device``, without making the host wait for the GPU.

    A copy from ordinary (pageable) host memory to a GPU makes PyTorch synchronise with the
    device's queue; from pinned memory it is asynchronous, so the next step's batch is queued
    while the GPU still runs the current one.
    """
    idx = torch.as_tensor(indices, dtype=torch.long)
    if idx.device == device:
        return idx
    if device.type == "cuda" and idx.device.type == "cpu":
        return idx.pin_memory().to(device, non_blocking=True)
    return idx.to(device)


class DeviceImageCollator:
    """The ``data_collator`` for :class:`DeviceImageDataset`: turns a list of rows into one batch.

    Stateless: the rows name their dataset, so the same collator serves augmented training
    batches and plain evaluation batches.
    """

    def __call__(self, rows: Sequence[DeviceRow] | DeviceRows) -> DeviceBatch:
        if isinstance(rows, DeviceRows) and rows.indices:  # a whole batch from __getitems__: no per-row work
            self._check_worker(rows.source)
            return rows.source.batch(rows.indices)
        if not rows or not isinstance(rows[0], DeviceRow):
            raise ValueError(
                "DeviceImageCollator takes rows of a DeviceImageDataset; wrap the split with "
                "DeviceImageDataset(...) or use ImageCollator for datasets rows."
            )
        source = rows[0].source
        if any(r.source is not source for r in rows):
            raise ValueError("a batch mixes rows of different DeviceImageDatasets; use one dataset per DataLoader.")
        self._check_worker(source)
        return source.batch([r.index for r in rows])

    @staticmethod
    def _check_worker(source: DeviceImageDataset) -> None:
        if source.device.type != "cpu" and torch.utils.data.get_worker_info() is not None:
            raise ValueError(
                f"images on {source.device} cannot be gathered in a DataLoader worker; set dataloader_num_workers=0."
            )


__all__ = ["DeviceBatch", "DeviceImageCollator", "DeviceImageDataset", "DeviceRow", "DeviceRows", "ImageCollator"]
