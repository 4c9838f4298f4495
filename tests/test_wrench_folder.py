"""Any WRENCH folder by path: its name, both tie-breaks and both abstain rules against hand-counted votes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jal_trainer.arguments import DataArguments
from jal_trainer.data import load_wrench_folder, mark_entities
from jal_trainer.train import apply_noise, load_data

# 10 training rows, 3 classes, 4 labelling functions (-1 = abstain), with the vote counted by hand:
#   votes               gold  majority                     lowest tie
VOTES = [
    ([0, 0, 1, -1], 0),  # 0
    ([1, 2, -1, -1], 2),  # tie {1, 2}                      1 (wrong)
    ([-1, -1, -1, -1], 1),  # not covered
    ([2, 2, 2, 0], 2),  # 2
    ([0, 1, 2, -1], 0),  # tie {0, 1, 2}                   0 (right)
    ([1, 1, -1, 0], 0),  # 1 (wrong)
    ([-1, -1, -1, -1], 2),  # not covered
    ([0, 2, -1, -1], 2),  # tie {0, 2}                      0 (wrong)
    ([1, -1, -1, -1], 1),  # 1
    ([2, -1, -1, -1], 0),  # 2 (wrong)
]
LOWEST = [0, 1, None, 2, 0, 1, None, 0, 1, 2]  # None: not covered
TIES = {1: {1, 2}, 4: {0, 1, 2}, 7: {0, 2}}
NAMES = ["Part of", "Regulator", "NOT"]


def _row(i: int, votes: list[int], gold: int, spans: bool) -> dict:
    gene = f"COX{i}"
    text = f"aspirin blocks {gene} in cells."
    data = {"text": text}
    if spans:
        data.update(entity1=gene, entity2="aspirin", span1=[15, 15 + len(gene)], span2=[0, 7])
    return {"label": gold, "weak_labels": votes, "data": data}


def write_wrench(folder: Path, *, spans: bool = False) -> Path:
    """A WRENCH folder with the rows above as train, and small valid/test splits."""
    folder.mkdir(parents=True)
    (folder / "label.json").write_text(json.dumps({str(i): n for i, n in enumerate(NAMES)}))
    train = {str(i + 100): _row(i, v, g, spans) for i, (v, g) in enumerate(VOTES)}  # ids out of file order
    (folder / "train.json").write_text(json.dumps(dict(reversed(list(train.items())))))
    small = {str(i): _row(i, [k, -1, -1, -1], k, spans) for i, k in enumerate([0, 1, 2, 0, 1, 2])}
    (folder / "valid.json").write_text(json.dumps(small))
    (folder / "test.json").write_text(json.dumps(small))
    return folder


def noisy_train(folder: Path, **kw) -> tuple:
    data = DataArguments(data_path=str(folder), noise_type="majority-vote", **kw)
    dds, report = apply_noise(load_data(data), data)
    return data, dds["train"], report


def test_a_renamed_folder_keeps_its_name_and_rows(tmp_path: Path) -> None:
    folder = write_wrench(tmp_path / "questions-v2")
    data, train, _ = noisy_train(folder, tie_break="lowest", abstain="random")
    assert data.dataset == "questions-v2"
    assert train.features["label"].names == NAMES
    assert train["clean_label"][:] == [g for _, g in VOTES]  # rows in id order, gold labels kept
    assert [list(w) for w in train["weak_labels"][:]] == [v for v, _ in VOTES]


def test_lowest_tie_break_and_dropped_abstains_are_wrench_argmax(tmp_path: Path) -> None:
    _, train, report = noisy_train(write_wrench(tmp_path / "w"), tie_break="lowest", abstain="drop")
    covered = [i for i, y in enumerate(LOWEST) if y is not None]
    assert train["label"][:] == [LOWEST[i] for i in covered]
    assert train["clean_label"][:] == [VOTES[i][1] for i in covered]
    assert report.noise_rate == pytest.approx(4 / 8)  # rows 1, 5, 7 and 9 are wrong
    # the same figure from WRENCH's own rule: argmax of the vote counts on covered rows
    votes = np.array([v for v, _ in VOTES])
    counts = np.stack([(votes == k).sum(axis=1) for k in range(3)], axis=1)
    gold, cover = np.array([g for _, g in VOTES]), (votes >= 0).any(axis=1)
    assert report.noise_rate == pytest.approx(float((counts.argmax(axis=1) != gold)[cover].mean()))


def test_dropped_ties_and_abstains_leave_only_the_decided_votes(tmp_path: Path) -> None:
    _, train, report = noisy_train(write_wrench(tmp_path / "w"), tie_break="drop", abstain="drop")
    decided = [i for i, y in enumerate(LOWEST) if y is not None and i not in TIES]  # rows 0, 3, 5, 8, 9
    assert train["label"][:] == [LOWEST[i] for i in decided]
    assert train["clean_label"][:] == [VOTES[i][1] for i in decided]
    assert report.noise_rate == pytest.approx(2 / 5)  # rows 5 and 9 are wrong
    _, kept, _ = noisy_train(write_wrench(tmp_path / "k"), tie_break="drop", abstain="random")
    assert len(kept["label"][:]) == 10 - len(TIES)  # uncovered rows stay, with a random class


def test_an_unknown_tie_break_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'random', 'lowest', 'drop'"):
        noisy_train(write_wrench(tmp_path / "w"), tie_break="first")


def test_random_tie_break_draws_among_the_tied_classes_only(tmp_path: Path) -> None:
    folder = write_wrench(tmp_path / "w")
    seen = {i: set() for i in TIES}
    for seed in range(12):
        _, train, _ = noisy_train(folder, tie_break="random", abstain="random", noise_seed=seed)
        labels = train["label"][:]
        assert len(labels) == 10  # abstain=random keeps the uncovered rows, with some class
        for i, y in enumerate(LOWEST):
            if i in TIES:
                assert labels[i] in TIES[i]
                seen[i].add(labels[i])
            elif y is not None:
                assert labels[i] == y
    assert seen == TIES  # every tied class is drawn for some seed


def test_entities_are_marked_where_spans_exist(tmp_path: Path) -> None:
    folder = write_wrench(tmp_path / "rel", spans=True)
    marked = load_wrench_folder(folder)["train"]
    assert marked[0]["text"] == "[E2]aspirin[/E2] blocks [E1]COX0[/E1] in cells."
    assert load_wrench_folder(folder, mark=False)["train"][0]["text"] == "aspirin blocks COX0 in cells."
    plain = load_wrench_folder(write_wrench(tmp_path / "plain"))["train"]
    assert plain[0]["text"] == "aspirin blocks COX0 in cells."  # no spans: nothing to mark


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([(0, 12), (0, 5)], "[E1][E2]kinas[/E2]e prote[/E1]in x"),  # nested: the longer opens first
        ([(0, 5), (5, 12)], "[E1]kinas[/E1][E2]e prote[/E2]in x"),  # touching: close before open
    ],
)
def test_marking_stays_well_formed(spans: list, expected: str) -> None:
    assert mark_entities("kinase protein x", spans, ["E1", "E2"]) == expected


def test_bad_wrench_recipes(tmp_path: Path) -> None:
    folder = write_wrench(tmp_path / "w")
    from jal_trainer.data.checks import check_data_arguments

    with pytest.raises(ValueError, match=r"tie_break='first' is unknown. Choose random, lowest or drop"):
        check_data_arguments(DataArguments(data_path=str(folder), tie_break="first"))
    with pytest.raises(ValueError, match=r"abstain='clean' is unknown. Choose random or drop"):
        check_data_arguments(DataArguments(data_path=str(folder), abstain="clean"))
    (folder / "label.json").write_text(json.dumps({"0": "a"}))
    with pytest.raises(ValueError, match=r"labels \[1, 2\] are outside the 1 classes of label.json"):
        load_wrench_folder(folder)
