"""Your own data: every format through `datasets`, one contract, and a one-line error for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest

from jal_trainer.arguments import DataArguments
from jal_trainer.data import dataset_name_from_path, load_raw_data
from jal_trainer.data.contract import prepare_dataset
from jal_trainer.train import apply_noise, load_data

STARS = ["one", "three", "five"]


def reviews(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """n reviews with string stars, in a fixed cycle so that every class has n / 3 rows."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"review": [f"review {i} {rng.integers(100)}" for i in range(n)],
                         "stars": [STARS[i % 3] for i in range(n)]})


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".json":
        path.write_text(json.dumps(frame.to_dict(orient="records")))
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


def args(path: Path | str, **kw) -> DataArguments:
    return DataArguments(data_path=str(path), text_column=kw.pop("text_column", "review"),
                         label_column=kw.pop("label_column", "stars"), **kw)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
def test_every_file_format_gives_the_same_splits(suffix: str, tmp_path: Path) -> None:
    data = args(write(reviews(), tmp_path / f"reviews{suffix}"))
    dds = load_data(data)
    assert data.dataset == "reviews"  # named after the file, written into recipe.yaml
    assert list(dds) == ["train", "test"] and (dds["train"].num_rows, dds["test"].num_rows) == (48, 12)
    # string labels -> ClassLabel in sorted order, the same in both splits; the split is stratified
    for split in dds.values():
        assert split.features["label"].names == ["five", "one", "three"]
    assert np.bincount(dds["test"]["label"][:]).tolist() == [4, 4, 4]
    original = dict(zip(reviews()["review"], reviews()["stars"]))
    names = dds["train"].features["label"].names
    assert all(original[t] == names[y] for t, y in zip(dds["train"]["review"][:], dds["train"]["label"][:]))


def test_globs_folders_and_the_seed_of_made_splits(tmp_path: Path) -> None:
    frame = reviews(90)
    for i in range(3):
        write(frame.iloc[30 * i : 30 * (i + 1)], tmp_path / "parts" / f"part-{i}.csv")
    dds = load_data(args(tmp_path / "parts" / "part-*.csv"))
    assert dds["train"].num_rows + dds["test"].num_rows == 90
    assert dataset_name_from_path(str(tmp_path / "parts" / "part-*.csv")) == "parts"
    again = load_data(args(tmp_path / "parts" / "part-*.csv"))
    other = load_data(args(tmp_path / "parts" / "part-*.csv", subset_seed=1))
    assert again["test"]["review"][:] == dds["test"]["review"][:] != other["test"]["review"][:]
    # a folder with train/test files keeps its own splits
    write(frame.iloc[:60], tmp_path / "split" / "train.csv")
    write(frame.iloc[60:], tmp_path / "split" / "test.csv")
    dds = load_data(args(tmp_path / "split"))
    assert (dds["train"].num_rows, dds["test"].num_rows) == (60, 30)


def test_a_validation_split_is_made_when_needed(tmp_path: Path) -> None:
    dds = load_data(args(write(reviews(100), tmp_path / "r.csv"), validation_size=0.25), need_validation=True)
    assert [dds[s].num_rows for s in ("train", "validation", "test")] == [60, 20, 20]
    assert np.bincount(dds["validation"]["label"][:]).tolist() in ([7, 7, 6], [7, 6, 7], [6, 7, 7])
    assert not set(dds["validation"]["review"][:]) & set(dds["train"]["review"][:])


def test_subsets_follow_subset_seed_not_noise_seed(tmp_path: Path) -> None:
    path = write(reviews(120), tmp_path / "r.csv")
    a = load_data(args(path, test_subset=9, noise_seed=0))
    b = load_data(args(path, test_subset=9, noise_seed=7))
    c = load_data(args(path, test_subset=9, subset_seed=3))
    assert a["test"]["review"][:] == b["test"]["review"][:] != c["test"]["review"][:]


def test_a_hub_id_resolves_through_load_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network here: `datasets.load_dataset` for the id reads a local save_to_disk folder instead."""
    saved = tmp_path / "hub-copy"
    datasets.Dataset.from_pandas(reviews()).save_to_disk(saved)
    calls = []
    real = datasets.load_dataset

    def stand_in(path, name=None, **kw):
        if path != "someone/reviews":
            return real(path, name, **kw)
        calls.append((name, kw.get("revision")))
        return datasets.DatasetDict({"train": datasets.load_from_disk(str(saved))})

    monkeypatch.setattr(datasets, "load_dataset", stand_in)
    data = args("someone/reviews", data_config="en", data_revision="v1.0")
    dds = load_data(data)
    assert calls == [("en", "v1.0")] and data.dataset == "someone/reviews"
    assert dds["train"].features["label"].names == ["five", "one", "three"]


def test_integer_labels_keep_their_values_as_names(tmp_path: Path) -> None:
    frame = reviews().assign(stars=[1 + 2 * (i % 3) for i in range(60)])  # 1, 3, 5: no class 0
    dds = load_data(args(write(frame, tmp_path / "r.csv")))
    assert dds["train"].features["label"].names == ["1", "3", "5"]
    names = dds["train"].features["label"].names
    assert sorted({int(names[y]) for y in dds["train"]["label"][:]}) == [1, 3, 5]


def test_gold_beside_noisy_labels_trains_on_the_noisy_and_reports_against_the_gold(tmp_path: Path) -> None:
    frame = reviews()
    frame["gt"] = frame["stars"]
    frame["stars"] = [s if i % 5 else "one" for i, s in enumerate(frame["stars"])]  # every 5th row says "one"
    frame["label"] = "unrelated"  # a column named like the canonical one must not get in the way
    data = args(write(frame, tmp_path / "news.csv"), clean_label_column="gt")
    dds, report = apply_noise(load_data(data), data)
    train, test = dds["train"], dds["test"]
    names = train.features["label"].names
    assert ([names[y] for y in train["label"][:]]
            == [dict(zip(frame.review, frame.stars))[t] for t in train["review"][:]])
    assert ([names[y] for y in train["clean_label"][:]]
            == [dict(zip(frame.review, frame["gt"]))[t] for t in train["review"][:]])
    assert [names[y] for y in test["label"][:]] == [dict(zip(frame.review, frame["gt"]))[t] for t in test["review"][:]]
    expected = float(np.mean(np.asarray(train["label"][:]) != np.asarray(train["clean_label"][:])))
    assert report.noise_rate == pytest.approx(expected) and 0 < expected < 0.2


def test_noisy_labels_from_a_file_join_on_index_or_row_order(tmp_path: Path) -> None:
    frame = reviews().assign(index=range(60))
    data_file = write(frame, tmp_path / "d.csv")
    noisy = frame[["index"]].assign(human=[STARS[(i + 1) % 3] if i % 4 == 0 else STARS[i % 3] for i in range(60)])
    shuffled = write(noisy.sample(frac=1.0, random_state=0), tmp_path / "noisy.jsonl")
    data = args(data_file, noisy_label_column="human", noisy_label_path=str(shuffled))
    dds, report = apply_noise(load_data(data), data)
    names = dds["train"].features["label"].names
    by_index = dict(zip(noisy["index"], noisy["human"]))
    assert [names[y] for y in dds["train"]["label"][:]] == [by_index[i] for i in dds["train"]["index"][:]]
    assert report.noise_rate == pytest.approx(np.mean([i % 4 == 0 for i in dds["train"]["index"][:]]))
    # without an id column the file must match row by row
    plain = write(reviews(), tmp_path / "plain.csv")
    ordered = write(noisy[["human"]], tmp_path / "ordered.csv")
    dds, _ = apply_noise(load_data(d := args(plain, noisy_label_column="human", noisy_label_path=str(ordered))), d)
    assert dds["train"].num_rows == 48


def test_wrench_folder_name_and_entity_markers_through_load_data(tmp_path: Path) -> None:
    from test_wrench_folder import write_wrench

    folder = write_wrench(tmp_path / "my-relations", spans=True)
    data = DataArguments(data_path=str(folder), noise_type="majority-vote", tie_break="lowest", abstain="drop",
                         entity_markers=["GENE", "CHEM"])
    dds = load_data(data, need_validation=True)
    assert data.dataset == "my-relations" and list(dds) == ["train", "validation", "test"]
    assert list(load_data(data)) == ["train", "test"]  # validation only when the run reads it
    assert dds["train"][0]["text"].startswith("[CHEM]aspirin[/CHEM] blocks [GENE]")


# ---- bad input: one line naming the problem and the fix ---------------------------------------------


def bad(frame: pd.DataFrame, tmp_path: Path, name: str = "r.csv", **kw) -> DataArguments:
    return args(write(frame, tmp_path / name), **kw)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f, p: bad(f, p, label_column="rating"),
         r"label_column='rating' is not a column.*\['review', 'stars'\]"),
        (lambda f, p: bad(f, p, text_column="body"), r"text_column='body' is not a column"),
        (lambda f, p: bad(f, p, clean_label_column="gold"), r"clean_label_column='gold' is not a column"),
        (lambda f, p: bad(f.assign(stars=["1", "two", "3"] * 20), p), r"mix numbers and names"),
        (lambda f, p: bad(f.iloc[:0], p), r"empty|no 'train' split"),
        (lambda f, p: bad(f.assign(stars="one"), p), r"single class \('one'\)"),
        (lambda f, p: bad(f.assign(stars=[1.5, 2.0, 3.0] * 20), p), r"not whole numbers"),
        (lambda f, p: bad(f.assign(stars=["one", None, "five"] * 20), p), r"missing values"),
        (lambda f, p: bad(f.iloc[:4], p, test_size=0.5), r"stratified test split"),
    ],
)
def test_bad_data_fails_in_one_line(make, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message) as info:
        load_data(make(reviews(), tmp_path))
    assert "\n" not in str(info.value)


def test_labels_outside_the_names_and_mixed_split_types(tmp_path: Path) -> None:
    features = datasets.Features({"review": datasets.Value("string"), "stars": datasets.ClassLabel(names=STARS)})
    train = datasets.Dataset.from_dict({"review": list("abcdef"), "stars": [0, 1, 2] * 2}, features=features)
    test = datasets.Dataset.from_dict({"review": ["x", "y"], "stars": ["one", "seven"]})
    with pytest.raises(ValueError, match=r"1 labels in 'label' of the test split are not among the class names"):
        prepare_dataset(datasets.DatasetDict({"train": train, "test": test}), args("x", text_column="review"))
    test = datasets.Dataset.from_dict({"review": ["x", "y"], "stars": [1, 2]})
    strings = train.cast_column("stars", datasets.Value("string"))
    with pytest.raises(ValueError, match=r"mix types across splits"):
        prepare_dataset(datasets.DatasetDict({"train": strings, "test": test}), args("x"))


def test_noisy_label_files_that_cannot_be_matched(tmp_path: Path) -> None:
    frame = reviews().assign(index=range(60))
    path = write(frame, tmp_path / "d.csv")
    short = write(pd.DataFrame({"human": STARS * 3}), tmp_path / "short.csv")
    with pytest.raises(ValueError, match=r"9 rows for 60 training rows, and no id column"):
        load_data(args(write(reviews(), tmp_path / "plain.csv"), noisy_label_column="human",
                       noisy_label_path=str(short)))
    missing = write(pd.DataFrame({"index": range(50), "human": "one"}), tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=r"10 training rows have no noisy label.*index=50"):
        load_data(args(path, noisy_label_column="human", noisy_label_path=str(missing)))
    twice = write(pd.DataFrame({"index": [0] + list(range(60)), "human": "one"}), tmp_path / "twice.csv")
    with pytest.raises(ValueError, match=r"repeats ids"):
        load_data(args(path, noisy_label_column="human", noisy_label_path=str(twice)))
    with pytest.raises(ValueError, match=r"noisy_label_column='worker' is not a column of the noisy-label file"):
        load_data(args(path, noisy_label_column="worker", noisy_label_path=str(twice)))


def test_raw_loader_names_what_it_accepts(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"names no file or folder.*\.csv/\.json"):
        load_raw_data(tmp_path / "nothing.csv")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"suffixes \['\.txt'\]"):
        load_raw_data(tmp_path / "notes.txt")
