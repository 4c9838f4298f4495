"""Image folders: labels from the folders, size from the data, statistics computed once and cached."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jal_trainer.arguments import DataArguments
from jal_trainer.data import image_array, load_digits
from jal_trainer.data.stats import resolve_image_stats, train_image_stats
from jal_trainer.train import load_data

CLASSES = ("cat", "dog", "fox")


def write_images(root: Path, *, per_class: int = 8, size: int = 16, splits: tuple[str, ...] = ("train", "test"),
                 seed: int = 0) -> np.ndarray:
    """PNG images root/<split>/<class>/<i>.png; returns every pixel written (n, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    written = []
    for split in splits:
        for k, name in enumerate(CLASSES):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(40 * k, 40 * k + 120, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
                written.append(pixels)
    return np.stack(written)


def test_an_image_folder_loads_with_labels_from_its_folders(tmp_path: Path) -> None:
    write_images(tmp_path / "photos")
    data = DataArguments(data_path=str(tmp_path / "photos"))
    dds = load_data(data, vision=True)
    assert data.dataset == "photos"
    assert dds["train"].features["label"].names == list(CLASSES)  # sorted folder names
    assert dds["train"].features["pixel_values"].shape == (3, 16, 16)
    assert np.bincount(dds["test"]["label"][:]).tolist() == [8, 8, 8]


def test_without_split_folders_a_stratified_test_split_is_held_out(tmp_path: Path) -> None:
    write_images(tmp_path / "flat", per_class=10, splits=("",))
    dds = load_data(DataArguments(data_path=str(tmp_path / "flat"), test_size=0.3), vision=True)
    assert np.bincount(dds["test"]["label"][:]).tolist() == [3, 3, 3]


def test_statistics_are_computed_on_train_and_cached(tmp_path: Path) -> None:
    write_images(tmp_path / "photos")
    train = load_data(DataArguments(data_path=str(tmp_path / "photos")), vision=True)["train"]
    x = image_array(train).astype(np.float64) / 255.0
    expected = tuple(np.round(x.mean(axis=(0, 2, 3)), 4)), tuple(np.round(x.std(axis=(0, 2, 3)), 4))
    mean, std = train_image_stats(train, cache_dir=tmp_path / "cache", chunk=5)  # chunks of 5 images
    assert np.allclose(mean, expected[0], atol=1e-4) and np.allclose(std, expected[1], atol=1e-4)
    cached = next((tmp_path / "cache" / "image_stats").glob("*.json"))
    cached.write_text(json.dumps({"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}))
    assert train_image_stats(train, cache_dir=tmp_path / "cache") == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))


def test_stats_given_built_in_or_computed() -> None:
    train = load_digits()["train"]
    assert resolve_image_stats(train, "digits", None, None, builtin=True) == ((0.3065,), (0.3762,))
    assert resolve_image_stats(train, "x", [0.5], [0.25], builtin=False) == ((0.5,), (0.25,))
    computed = resolve_image_stats(train, "digits", None, None, builtin=False)  # a user set named "digits"
    assert np.allclose(computed, ((0.3065,), (0.3762,)), atol=2e-4)
    with pytest.raises(ValueError, match="need 1 values each"):
        resolve_image_stats(train, "x", [0.5, 0.5, 0.5], [0.2, 0.2, 0.2], builtin=False)
    with pytest.raises(ValueError, match="give both image_mean and image_std"):
        resolve_image_stats(train, "x", [0.5], None, builtin=False)


def test_images_of_other_sizes_or_not_square_fail_in_one_line(tmp_path: Path) -> None:
    write_images(tmp_path / "mixed", size=16)
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "mixed" / "train" / "cat" / "odd.png")
    with pytest.raises(ValueError, match="differ in size"):
        load_data(DataArguments(data_path=str(tmp_path / "mixed")), vision=True)
    write_images(tmp_path / "wide", per_class=2, size=8)
    for png in (tmp_path / "wide").rglob("*.png"):
        Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(png)
    with pytest.raises(ValueError, match=r"8x12 pixels; the vision models take square images"):
        load_data(DataArguments(data_path=str(tmp_path / "wide")), vision=True)
