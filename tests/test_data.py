"""Data loaders, augmentation and collators, checked against the raw files and closed forms."""

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
    DeviceImageCollator,
    DeviceImageDataset,
    ImageCollator,
    image_array,
    load_banking77,
    load_cifar10,
    load_cifar10n,
    load_cifar10n_labels,
    load_dataset_by_name,
    load_digits,
    load_sst2,
    load_trec,
    load_wrench,
    normalize,
    random_crop,
    random_hflip,
    stratified_indices,
    stratified_subset,
    tokenize_dataset,
)
from jal_trainer.data import vision
from jal_trainer.data.augment import compute_image_stats, image_stats
from jal_trainer.data.vision import ensure_pixel_values
from jal_trainer.paths import shared_dir

DATA = shared_dir() / "data"
CIFAR = DATA / "cifar10_jpeg" / "cifar10_jpeg.npz"
CIFARN = DATA / "cifar_n" / "cifar10n_labels.npz"
MINILM = shared_dir() / "models" / "all-MiniLM-L6-v2"


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

    monkeypatch.setattr(vision, "decode_jpegs", no_decoding)
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
    columns = {c: clean for c in vision.CIFAR10N_COLUMNS}
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
    rates = {c: (labels[c] != labels["clean_label"]).mean() for c in vision.CIFAR10N_COLUMNS}
    assert round(rates["worse_label"], 4) == 0.4021
    assert round(rates["aggre_label"], 4) == 0.0901
    dds = load_cifar10n(train_subset=300, test_subset=50, cache_dir=tmp_path)
    train = dds["train"]
    index = np.asarray(train["index"][:])
    assert np.array_equal(train["worse_label"][:], labels["worse_label"][index])
    assert np.array_equal(train["label"][:], labels["clean_label"][index])  # `label` stays clean
    assert train.features["worse_label"] == train.features["label"]
    assert "worse_label" not in dds["test"].column_names


# ---- text -------------------------------------------------------------------------------------------


@needs(DATA / "sst_trec_mr")
def test_sst2_and_trec_sizes_and_parsing() -> None:
    sst = load_sst2()
    assert {k: v.num_rows for k, v in sst.items()} == {"train": 6920, "validation": 872, "test": 1821}
    label, text = (DATA / "sst_trec_mr" / "stsa.binary.dev").read_text().splitlines()[0].split(" ", 1)
    assert sst["validation"][0] == {"text": text.strip(), "label": int(label)}
    trec = load_trec()
    assert {k: v.num_rows for k, v in trec.items()} == {"train": 5452, "test": 500}
    counts = dict(zip(trec["train"].features["label"].names, np.bincount(trec["train"]["label"][:])))
    # class sizes of the original TREC-6 training set (Li and Roth)
    assert counts == {"DESC": 1162, "ENTY": 1250, "ABBR": 86, "HUM": 1223, "LOC": 835, "NUM": 896}
    abbr = trec["train"].filter(lambda row: "full form of .com" in row["text"])
    assert abbr[0]["label"] == trec["train"].features["label"].str2int("ABBR")


@needs(DATA / "banking77")
def test_banking77_sizes_and_classes() -> None:
    dds = load_banking77()
    assert {k: v.num_rows for k, v in dds.items()} == {"train": 10003, "test": 3080}
    names = dds["train"].features["label"].names
    assert len(names) == 77 and names[0] == "activate_my_card"
    assert np.bincount(dds["test"]["label"][:]).tolist() == [40] * 77  # the test set is balanced
    assert dds["train"][0] == {"text": "I am still waiting on my card?", "label": names.index("card_arrival")}


@needs(DATA / "wrench")
@pytest.mark.parametrize(
    ("name", "sizes", "n_lfs", "n_classes"),
    [("youtube", (1686, 120, 250), 10, 2), ("sms", (4571, 500, 500), 73, 2), ("trec", (5033, 500, 500), 68, 6)],
)
def test_wrench_sizes_and_weak_labels(name: str, sizes: tuple[int, ...], n_lfs: int, n_classes: int) -> None:
    dds = load_dataset_by_name(f"wrench-{name}")
    assert tuple(dds[s].num_rows for s in ("train", "validation", "test")) == sizes
    assert dds["train"].features["label"].num_classes == n_classes
    weak = np.asarray(dds["train"]["weak_labels"][:])
    assert weak.shape == (sizes[0], n_lfs)
    assert weak.min() >= -1 and weak.max() < n_classes


@needs(DATA / "wrench")
def test_wrench_majority_vote_is_the_documented_noise() -> None:
    train = load_wrench("youtube")["train"]
    weak, gold = np.asarray(train["weak_labels"][:]), np.asarray(train["label"][:])
    covered = (weak >= 0).any(axis=1)
    votes = np.stack([(weak == k).sum(axis=1) for k in range(2)], axis=1)
    wrong = (votes.argmax(axis=1) != gold)[covered].mean()
    assert 0.18 < wrong < 0.24  # SOURCES.md: about 21 % wrong on covered rows


@needs(MINILM)
def test_tokenize_keeps_other_columns() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    dds = load_wrench("youtube")
    out = tokenize_dataset(dds, tokenizer, max_length=16)
    assert "text" not in out["train"].column_names
    assert {"label", "weak_labels", "input_ids", "attention_mask"} <= set(out["train"].column_names)
    assert max(len(ids) for ids in out["train"]["input_ids"][:]) == 16
    assert out["test"]["label"][:] == dds["test"]["label"][:]
    kept = tokenize_dataset(dds["validation"], tokenizer, keep_text=True)
    assert kept["text"][:] == dds["validation"]["text"][:]
    assert kept[0]["input_ids"] == tokenizer(dds["validation"][0]["text"], truncation=True, max_length=128)["input_ids"]
    with pytest.raises(ValueError, match="text column 'sentence'"):
        tokenize_dataset(dds, tokenizer, text_column="sentence")


# ---- paths and the dispatcher -------------------------------------------------------------------------


def test_missing_files_name_the_file_and_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match=r"cifar10_jpeg\.npz.*JAL_SHARED_DIR"):
        load_cifar10(tmp_path / "nowhere")
    monkeypatch.setenv("JAL_SHARED_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=rf"stsa\.binary\.train.*{tmp_path}"):
        load_sst2()
    with pytest.raises(FileNotFoundError, match="digits"):
        load_digits(tmp_path / "digits.npz")
    with pytest.raises(ValueError, match="unknown WRENCH set"):
        load_wrench("imdb")


@needs(DATA / "sst_trec_mr")
def test_dispatcher_resolves_names_paths_and_saved_folders(tmp_path: Path) -> None:
    assert load_dataset_by_name("TREC", "${shared}/data/sst_trec_mr")["test"].num_rows == 500
    assert load_dataset_by_name("trec", "${shared}")["test"].num_rows == 500  # the shared root works too
    digits = load_digits()
    digits.save_to_disk(tmp_path / "saved")
    again = load_dataset_by_name("anything", tmp_path / "saved")
    assert np.array_equal(image_array(again["test"]), image_array(digits["test"]))
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        load_dataset_by_name("mnist")


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
