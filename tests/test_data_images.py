"""Image loaders (stratified subsets, digits, CIFAR-10, CIFAR-10N, Hub image columns), checked against the raw files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from jal_trainer.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DIGITS_MEAN,
    DIGITS_STD,
    image_array,
    load_cifar10,
    load_cifar10n,
    load_cifar10n_labels,
    load_digits,
    normalize,
    stratified_indices,
    stratified_subset,
)
from jal_trainer.data import cifar
from jal_trainer.data.augment import image_stats
from jal_trainer.data.vision import ensure_pixel_values
from jal_trainer.paths import shared_dir

DATA = shared_dir() / "data"
CIFAR = DATA / "cifar10_jpeg" / "cifar10_jpeg.npz"
CIFARN = DATA / "cifar_n" / "cifar10n_labels.npz"


def needs(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"shared data missing: {path}")


# ---- stratified subsets ---------------------------------------------------------------------------


def test_stratified_quotas_follow_largest_remainder() -> None:
    labels = np.repeat([0, 1, 2], [10, 20, 70])
    # n=10: exact quotas 1, 2, 7
    assert np.bincount(labels[stratified_indices(labels, 10, seed=1)]).tolist() == [1, 2, 7]
    # n=15: exact 1.5, 3, 10.5 -> floors 1, 3, 10; the spare one goes to the tie's lower class (0)
    assert np.bincount(labels[stratified_indices(labels, 15, seed=1)]).tolist() == [2, 3, 10]


def test_stratified_indices_are_sorted_unique_and_seeded() -> None:
    labels = np.random.default_rng(0).integers(0, 5, size=1000)
    a, b, c = (stratified_indices(labels, 100, seed=s) for s in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(np.diff(a) > 0)
    with pytest.raises(ValueError, match="between 1 and"):
        stratified_indices(labels, 1001)


# ---- digits ---------------------------------------------------------------------------------------


def test_digits_split_is_stratified_and_partitions_the_set() -> None:
    dds = load_digits()
    train, test = dds["train"], dds["test"]
    assert (train.num_rows, test.num_rows) == (1297, 500)
    assert train.features["label"].names == [str(d) for d in range(10)]
    index = np.concatenate([train["index"][:], test["index"][:]])
    assert np.array_equal(np.sort(index), np.arange(1797))
    full = np.bincount(np.concatenate([train["label"][:], test["label"][:]]), minlength=10)
    per_class_test = np.bincount(test["label"][:], minlength=10)
    assert np.all(np.abs(per_class_test - 500 * full / 1797) < 1)  # within one of the exact proportion
    pixels = image_array(train)
    assert pixels.shape == (1297, 1, 8, 8)
    # intensities 0..16 scaled by 255/16: only those 17 levels occur
    assert set(np.unique(pixels)) <= {round(v * 255 / 16) for v in range(17)}


def test_digits_statistics_match_the_constants() -> None:
    pixels = image_array(load_digits()["train"]) / 255.0
    assert pixels.mean() == pytest.approx(DIGITS_MEAN[0], abs=1e-4)
    assert pixels.std() == pytest.approx(DIGITS_STD[0], abs=1e-4)
    assert image_stats("digits") == (DIGITS_MEAN, DIGITS_STD)


# ---- CIFAR-10 on a small hand-made archive: full loads and the cache ------------------------------------


def write_fake_cifar(path: Path, n_train: int = 12, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """A CIFAR-format archive of random 8x8 images stored as PNG (lossless, so pixels compare exactly)."""
    rng = np.random.default_rng(seed)
    arrays, originals = {}, {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
        blobs = []
        for img in images:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "PNG")
            blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
        arrays[f"{split}_jpeg"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum([b.size for b in blobs])]).astype(np.int64)
        arrays[f"{split}_labels"] = np.arange(n, dtype=np.int64) % 10
        originals[split] = images.transpose(0, 3, 1, 2)
    np.savez(path, **arrays)
    return originals


def test_full_load_decodes_then_reads_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, cache = tmp_path / "cifar10_jpeg.npz", tmp_path / "cache"
    originals = write_fake_cifar(archive)
    first = load_cifar10(tmp_path, cache_dir=cache)
    assert np.array_equal(image_array(first["train"]), originals["train"])
    assert np.array_equal(image_array(first["test"]), originals["test"])
    assert first["train"]["index"][:] == list(range(12))
    assert len(list(cache.glob("*.npy"))) == 2

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(cifar, "decode_jpegs", no_decoding)
    second = load_cifar10(archive, cache_dir=cache)
    assert np.array_equal(image_array(second["train"]), originals["train"])
    # a rewritten archive (new mtime) must not reuse the old arrays
    os.utime(archive, ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded although"):
        load_cifar10(archive, cache_dir=cache)


def test_subset_decodes_only_its_images_and_keeps_the_original_index(tmp_path: Path) -> None:
    originals = write_fake_cifar(tmp_path / "cifar10_jpeg.npz", n_train=40)
    dds = load_cifar10(tmp_path, train_subset=20, test_subset=4, seed=0, cache_dir=tmp_path / "cache")
    index = np.asarray(dds["train"]["index"][:])
    assert np.bincount(dds["train"]["label"][:]).tolist() == [2] * 10
    assert np.array_equal(image_array(dds["train"]), originals["train"][index])
    assert not (tmp_path / "cache").exists()  # subsets never write partial caches


def test_cifar10n_rejects_misaligned_label_files(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path / "cifar10_jpeg.npz")
    clean = np.arange(12) % 10
    wrong = clean.copy()
    wrong[[0, 1]] = wrong[[1, 0]]
    columns = {c: clean for c in cifar.CIFAR10N_COLUMNS}
    np.savez(tmp_path / "cifar10n_labels.npz", clean_label=wrong, **columns)
    with pytest.raises(ValueError, match="2 of 12 differ"):
        load_cifar10n(tmp_path / "cifar10n_labels.npz")


# ---- real CIFAR-10 / CIFAR-10N ------------------------------------------------------------------------


@needs(CIFAR)
def test_cifar10_subset_matches_the_archive(tmp_path: Path) -> None:
    dds = load_cifar10(train_subset=500, test_subset=100, seed=1, cache_dir=tmp_path)
    train = dds["train"]
    assert train.features["label"].names[:3] == ["airplane", "automobile", "bird"]
    assert train.features["pixel_values"].shape == (3, 32, 32)
    assert np.bincount(train["label"][:]).tolist() == [50] * 10
    assert np.bincount(dds["test"]["label"][:]).tolist() == [10] * 10
    with np.load(CIFAR) as archive:
        index = np.asarray(train["index"][:])
        assert np.array_equal(train["label"][:], archive["train_labels"][index])
        i = int(index[0])
        jpeg = archive["train_jpeg"][archive["train_offsets"][i] : archive["train_offsets"][i + 1]]
    direct = np.asarray(Image.open(io.BytesIO(jpeg.tobytes())).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(image_array(train)[0], direct)
    # the CIFAR-10 normalisation constants centre and scale these images
    x = normalize(torch.from_numpy(image_array(train)), CIFAR10_MEAN, CIFAR10_STD)
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.1
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.1


@needs(CIFARN)
def test_cifar10n_noise_rates_and_alignment(tmp_path: Path) -> None:
    labels = load_cifar10n_labels()
    assert np.bincount(labels["clean_label"]).tolist() == [5000] * 10
    rates = {c: (labels[c] != labels["clean_label"]).mean() for c in cifar.CIFAR10N_COLUMNS}
    assert round(rates["worse_label"], 4) == 0.4021
    assert round(rates["aggre_label"], 4) == 0.0901
    dds = load_cifar10n(train_subset=300, test_subset=50, cache_dir=tmp_path)
    train = dds["train"]
    index = np.asarray(train["index"][:])
    assert np.array_equal(train["worse_label"][:], labels["worse_label"][index])
    assert np.array_equal(train["label"][:], labels["clean_label"][index])  # `label` stays clean
    assert train.features["worse_label"] == train.features["label"]
    assert "worse_label" not in dds["test"].column_names


def test_hub_style_image_columns_become_pixel_values() -> None:
    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, size=(3, 5, 6, 3), dtype=np.uint8)
    ds = datasets.Dataset.from_dict(
        {"img": [Image.fromarray(a) for a in arrays], "label": [0, 1, 0]},
        features=datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])}),
    )
    out = ensure_pixel_values(datasets.DatasetDict({"train": ds}))["train"]
    assert out.column_names == ["label", "pixel_values"]
    assert np.array_equal(image_array(out), arrays.transpose(0, 3, 1, 2))


def test_stratified_subset_of_a_split() -> None:
    sub = stratified_subset(load_digits()["train"], 100, seed=0)
    assert sub.num_rows == 100 and set(np.bincount(sub["label"][:])) <= {9, 10, 11}
