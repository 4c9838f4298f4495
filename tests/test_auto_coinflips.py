"""auto leaves out the rows whose majority-vote label is a coin flip (no weak vote, or every class tied)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from jal_trainer.auto import SELECTION_FILE, select_loss
from jal_trainer.auto_coinflips import coin_flip_rows
from jal_trainer.auto_search import SLICE_FILE
from jal_trainer.noise import majority_vote

from test_auto import MLP, auto_args, blobs

pytest.importorskip("optuna")


def with_votes(ds: Dataset, seed: int, uncovered: float = 0.3,
               tied: float = 0.1) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """``ds`` (4 classes) with three labelling functions' votes: right on decided rows, all abstaining on
    ``uncovered`` of the rows, split 1-1 between two classes on ``tied`` of them; labels become their
    majority vote. Returns the set and the ``(n,)`` masks of the uncovered rows (coin flips: a class
    drawn from all 4) and of the tied ones (a class drawn from 2, one of them right: not a coin flip)."""
    rng = np.random.default_rng(seed)
    clean = np.asarray(ds.with_format("numpy")["labels"])
    n = len(clean)
    votes = np.stack([clean, clean, np.full(n, -1)], axis=1)
    draw = rng.random(n)
    empty, tie = draw < uncovered, (draw >= uncovered) & (draw < uncovered + tied)
    votes[empty] = -1
    votes[tie, 1] = (clean[tie] + 1) % 4
    labels, _ = majority_vote(votes, 4, seed=seed)
    out = ds.remove_columns("labels").add_column("labels", labels.tolist()).add_column("weak_labels", votes.tolist())
    return out.with_format("torch"), empty, tie


def test_coin_flips_are_the_tied_and_empty_votes_of_a_majority_vote() -> None:
    ds, flips, tie = with_votes(blobs(200, 0), seed=0)
    labels = np.asarray(ds.with_format("numpy")["labels"])
    found, why = coin_flip_rows(ds, labels)
    assert found is not None and (found == flips).all() and f"{flips.sum()} of 200 rows" in why
    assert coin_flip_rows(ds, labels, max_share=0.9)[0] is None  # fewer than 90% of the rows: kept
    assert tie.any() and not found[tie].any()  # a tie between 2 of 4 classes rules out 2: kept
    binary = Dataset.from_dict({"labels": [0, 1, 1], "weak_labels": [[0, 1], [1, -1], [-1, -1]]})
    assert coin_flip_rows(binary, np.array([0, 1, 1]))[0].tolist() == [True, False, True]  # 2 classes: any tie
    relabelled = labels.copy()
    decided = np.flatnonzero(~flips)[:20]  # a label model or a hand corrected 20 decided rows
    relabelled[decided] = (relabelled[decided] + 1) % 4
    none, why = coin_flip_rows(ds, relabelled)
    assert none is None and "not the majority vote" in why
    plain = blobs(50, 0)
    assert coin_flip_rows(plain, np.zeros(50, dtype=np.int64))[0] is None  # no weak votes: every row stays


@pytest.mark.slow
def test_auto_trains_and_scores_without_the_coin_flips(tmp_path: Path) -> None:
    ds, flips, _ = with_votes(blobs(400, 2), seed=2)
    args = auto_args(tmp_path / "on", num_train_epochs=4, auto_candidates=["gce"])  # ~30% coin flips > 0.2
    selection = select_loss(MLP, args, ds)
    record = json.loads((tmp_path / "on" / SELECTION_FILE).read_text())
    assert record["coin_flip_rows"] == int(flips.sum())
    assert record["trained_rows"] + record["holdout_rows"] == int((~flips).sum())
    with np.load(tmp_path / "on" / SLICE_FILE) as z:
        assert not flips[z["rows"]].any()  # the slice scores decided rows only
    final = selection.training_rows(ds)
    kept = np.asarray(final.with_format("numpy")["x"])
    every = np.asarray(ds.with_format("numpy")["x"])
    assert len(final) <= int((~flips).sum()) and len(final) >= int((~flips).sum()) - 1  # one more: no batch of one
    assert not any(np.isclose(every[flips][:, None], kept[None]).all(axis=2).any(axis=1))
    assert "coin-flip rows" in selection.reason
    from jal_trainer.hub import JALCardData

    card = str(JALCardData(model_name="m", dataset="blobs", loss_type="gce", loss_selection=record).to_model_card())
    assert f"Coin flips: {record['coin_flips']}" in card and "auto_coin_flip_share" in card

    off = select_loss(MLP, auto_args(tmp_path / "off", num_train_epochs=4, auto_candidates=["gce"],
                                     auto_coin_flip_share=0.5), ds)  # ~30% coin flips: below 0.5, kept
    record = json.loads((tmp_path / "off" / SELECTION_FILE).read_text())
    assert record["coin_flip_rows"] == 0 and "at most auto_coin_flip_share (0.5)" in record["coin_flips"]
    assert len(off.training_rows(ds)) == len(ds)


@pytest.mark.parametrize("share", [-0.1, 1.5, True, "half"])
def test_a_coin_flip_share_outside_0_1_fails_before_training(tmp_path: Path, share) -> None:
    from jal_trainer.auto import check_auto_settings

    with pytest.raises(ValueError, match="auto_coin_flip_share must be a share of the rows in"):
        check_auto_settings(auto_args(tmp_path, auto_coin_flip_share=share))


def test_coin_flips_stay_when_a_class_would_be_left_without_a_slice(tmp_path: Path) -> None:
    from jal_trainer.auto import _split_rows

    votes = [[0, 0]] * 30 + [[1, 1]] + [[-1, -1]] * 29  # class 1 has one decided row, 29 coin flips
    labels = np.array([0] * 30 + [1] + [0, 1] * 14 + [1])
    ds = Dataset.from_dict({"labels": labels.tolist(), "weak_labels": votes})
    kept, held, flips, why = _split_rows(ds, labels, auto_args(tmp_path))
    assert flips is None and why.startswith("kept: without them") and "class 1 has only 1 training row" in why
    assert len(kept) + len(held) == 60  # every row is used
