"""Text loaders, the data-set dispatcher and its paths, checked against the raw files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jal_trainer.data import (
    image_array,
    load_banking77,
    load_cifar10,
    load_dataset_by_name,
    load_digits,
    load_sst2,
    load_trec,
    load_wrench,
    tokenize_dataset,
)
from jal_trainer.paths import shared_dir

DATA = shared_dir() / "data"
MINILM = shared_dir() / "models" / "all-MiniLM-L6-v2"


def needs(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.exists(), reason=f"shared data missing: {path}")


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
