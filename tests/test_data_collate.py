"""Augmentation and collators, checked against closed forms and the row-by-row collator."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from jal_trainer.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DIGITS_MEAN,
    DIGITS_STD,
    DeviceImageCollator,
    DeviceImageDataset,
    ImageCollator,
    image_array,
    load_digits,
    normalize,
    random_crop,
    random_hflip,
)
from jal_trainer.data.augment import compute_image_stats


# ---- augmentation ---------------------------------------------------------------------------------------


def find_shift(out: torch.Tensor, padded: torch.Tensor, pad: int) -> list[tuple[int, int]]:
    h, w = out.shape[-2:]
    return [
        (dy, dx)
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
        if torch.equal(padded[:, dy : dy + h, dx : dx + w], out)
    ]


def test_random_crop_is_a_window_of_the_zero_padded_image() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, (300, 3, 8, 8), dtype=torch.uint8)  # no zeros: padding is recognisable
    out = random_crop(images, 4, generator=g)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    shifts = [find_shift(o, p, 4) for o, p in zip(out, padded)]
    assert all(len(s) == 1 for s in shifts)  # exactly one window explains each crop
    dy, dx = np.array([s[0] for s in shifts]).T
    assert set(dy) == set(range(9)) and set(dx) == set(range(9))  # every shift of -4..4 occurs
    again = random_crop(images, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(random_crop(images, 0), images)


def test_random_flip_mirrors_about_half() -> None:
    images = torch.rand(2000, 1, 4, 5)
    out = random_hflip(images, generator=torch.Generator().manual_seed(1))
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    same = (out == images).flatten(1).all(1)
    assert bool((mirrored ^ same).all())
    assert abs(mirrored.float().mean().item() - 0.5) < 4 * (0.25 / 2000) ** 0.5
    assert torch.equal(random_hflip(images, p=0.0), images)
    assert torch.equal(random_hflip(images, p=1.0), images.flip(-1))


def test_normalize_closed_form_and_errors() -> None:
    white = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    expected = [(1 - m) / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD)]
    assert torch.allclose(normalize(white, CIFAR10_MEAN, CIFAR10_STD)[0, :, 0, 0], torch.tensor(expected))
    floats = torch.full((1, 1, 2, 2), 0.5)
    assert torch.allclose(normalize(floats, (0.5,), (0.25,)), torch.zeros(1, 1, 2, 2))  # floats are not /255
    with pytest.raises(ValueError, match="one value per channel"):
        normalize(white, (0.5,), (0.25,))
    assert compute_image_stats(torch.tensor([[[[0, 255]]]], dtype=torch.uint8)) == ((0.5,), (0.5,))


# ---- collators ----------------------------------------------------------------------------------------


def digits_with_extras() -> datasets.Dataset:
    train = load_digits()["train"].select(range(32))
    return (
        train.add_column("clean_label", train["label"][:])
        .add_column("is_noisy", [i % 3 == 0 for i in range(32)])
        .add_column("note", ["x"] * 32)
    )


def test_image_collator_normalises_and_passes_numeric_columns() -> None:
    rows = [digits_with_extras()[i] for i in range(8)]
    batch = ImageCollator(augment=False, mean=DIGITS_MEAN, std=DIGITS_STD)(rows)
    assert set(batch) == {"pixel_values", "labels", "index", "clean_label", "is_noisy"}  # strings left out
    pixels = torch.tensor(np.stack([r["pixel_values"] for r in rows]), dtype=torch.float32)
    assert torch.allclose(batch["pixel_values"], (pixels / 255 - DIGITS_MEAN[0]) / DIGITS_STD[0])
    assert batch["labels"].tolist() == [r["label"] for r in rows] and batch["labels"].dtype == torch.long
    assert batch["is_noisy"].dtype == torch.bool and batch["is_noisy"].tolist() == [r["is_noisy"] for r in rows]


def test_image_collator_augments_reproducibly() -> None:
    rows = [digits_with_extras().with_format("numpy")[i] for i in range(16)]
    make = lambda seed: ImageCollator(augment=True, crop_padding=2, seed=seed)  # noqa: E731
    a, b, c = make(5)(rows), make(5)(rows), make(6)(rows)
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    assert not torch.equal(a["pixel_values"], c["pixel_values"])
    plain = ImageCollator()(rows)["pixel_values"]
    padded = torch.nn.functional.pad(plain, (2, 2, 2, 2))
    for out, pad_img in zip(a["pixel_values"], padded):  # each image is a crop of itself or its mirror
        assert find_shift(out, pad_img, 2) or find_shift(out.flip(-1), pad_img, 2)


def test_device_dataset_batches_match_the_row_collator() -> None:
    ds = digits_with_extras()
    plain = DeviceImageDataset(ds, mean=DIGITS_MEAN, std=DIGITS_STD)
    assert len(plain) == 32
    rows = [plain[i] for i in (3, 1, 4, 1, 5)]
    batch = DeviceImageCollator()(rows)
    reference = ImageCollator(mean=DIGITS_MEAN, std=DIGITS_STD)([ds[i] for i in (3, 1, 4, 1, 5)])
    assert set(batch) == set(reference)
    for key in reference:
        assert torch.equal(batch[key], reference[key]), key
    with pytest.raises(ValueError, match="mixes rows"):
        DeviceImageCollator()([plain[0], DeviceImageDataset(ds)[1]])


def test_device_dataset_serves_whole_batches_to_a_dataloader() -> None:
    """The DataLoader takes a batch through __getitems__ in one call; same batch as row by row, any layout."""
    ds = digits_with_extras()
    data = DeviceImageDataset(ds, mean=DIGITS_MEAN, std=DIGITS_STD)
    loader = torch.utils.data.DataLoader(data, batch_size=5, collate_fn=DeviceImageCollator())
    first = next(iter(loader))
    rows = DeviceImageCollator()([data[i] for i in range(5)])
    assert set(first) == set(rows)
    for key in rows:
        assert torch.equal(first[key], rows[key]), key
    assert len(list(loader)) == 7  # 32 rows: six batches of 5 and one of 2
    wide = DeviceImageDataset(ds, mean=DIGITS_MEAN, std=DIGITS_STD, channels_last=True).batch([0, 1])
    assert wide["pixel_values"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(wide["pixel_values"], rows["pixel_values"][:2])


def test_device_dataset_augments_only_when_asked() -> None:
    ds = digits_with_extras()
    train = DeviceImageDataset(ds, augment=True, crop_padding=2, flip=False, seed=0)
    out = train.batch(torch.arange(32))["pixel_values"]
    padded = torch.nn.functional.pad(normalize(torch.from_numpy(image_array(ds))), (2, 2, 2, 2))
    shifts = [find_shift(o, p, 2) for o, p in zip(out, padded)]
    assert all(shifts) and len({s[0] for s in shifts}) > 1
    test = DeviceImageDataset(ds, augment=False)
    assert torch.equal(test.batch(torch.arange(32))["pixel_values"], normalize(torch.from_numpy(image_array(ds))))


def test_device_dataset_trains_and_evaluates_through_a_trainer(tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    from jal_trainer.models import build_vision_model

    dds = load_digits()
    kwargs = {"mean": DIGITS_MEAN, "std": DIGITS_STD}
    train = DeviceImageDataset(dds["train"].select(range(64)), augment=True, crop_padding=1, flip=False, **kwargs)
    test = DeviceImageDataset(dds["test"].select(range(32)), **kwargs)
    torch.manual_seed(0)
    model = build_vision_model("cnn8", num_labels=10, num_channels=1, image_size=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=16, per_device_eval_batch_size=16,
        report_to=[], save_strategy="no", use_cpu=True, dataloader_num_workers=0, logging_strategy="no",
    )  # fmt: skip
    collator = DeviceImageCollator()
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=test, data_collator=collator)
    trainer.train()
    assert not torch.equal(before["classifier.weight"], model.state_dict()["classifier.weight"])
    first, second = trainer.evaluate(), trainer.evaluate()
    assert first["eval_loss"] == second["eval_loss"]  # the test set is never augmented
