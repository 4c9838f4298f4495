"""loss_type auto: the choice where the answer is known, errors before training, the record, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from jal_trainer import JALConfig
from jal_trainer.auto import SELECTION_FILE, _CandidateTrainer, decide, parse_candidates, select_loss
from jal_trainer.auto_search import SLICE_FILE
from jal_trainer.selection import anchor_transition, calibrate, confident_transition, estimated_clean_accuracy
from jal_trainer.selection import informative_rows, repair_transition, slice_scores, stratified_holdout

from failing_candidates import fail_candidates

pytest.importorskip("optuna")

K, D = 4, 32


def blobs(n: int, seed: int, noise: float = 0.0) -> Dataset:
    """Four Gaussian classes in 32 dimensions; ``noise`` of the labels flipped uniformly to another class."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).normal(size=(K, D)) * 0.6
    clean = rng.integers(0, K, n)
    x = centers[clean] + rng.normal(size=(n, D))
    flip = rng.random(n) < noise
    noisy = np.where(flip, (clean + rng.integers(1, K, n)) % K, clean)
    return Dataset.from_dict({"x": x.astype(np.float32).tolist(), "labels": noisy.tolist()}).with_format("torch")


class MLP(torch.nn.Module):
    """Wide enough to memorise wrong labels with CE: the case robust losses are for."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(D, 256), torch.nn.ReLU(), torch.nn.Linear(256, K))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def auto_args(out: Path, **overrides) -> JALConfig:
    settings = dict(output_dir=str(out), report_to=[], use_cpu=True, remove_unused_columns=False, save_strategy="no",
                    disable_tqdm=True, per_device_train_batch_size=32, learning_rate=3e-3, num_train_epochs=40,
                    logging_strategy="no", loss_type="auto", loss_preset="cifar10", auto_candidates=["nce+rce"],
                    auto_holdout=0.2, seed=0)
    settings.update(overrides)
    return JALConfig(**settings)


@pytest.mark.slow
def test_symmetric_noise_picks_a_robust_loss_and_the_card_records_it(tmp_path: Path) -> None:
    selection = select_loss(MLP, auto_args(tmp_path), blobs(600, 1, noise=0.4))
    assert selection.chosen.loss_type == "nce+rce", selection.reason
    record = json.loads((tmp_path / SELECTION_FILE).read_text())
    assert record["chosen"] == "nce+rce" and record["corrected"] is True
    assert [row["label"] for row in record["candidates"]] == ["ce", "nce+rce"]
    assert record["budget_trainings"] == 2.0 and record["candidate_schedule"] == {"num_train_epochs": 25.0}
    # the final training's args: the chosen loss, everything else kept
    final = selection.apply(auto_args(tmp_path))
    assert final.loss_type == "nce+rce" and final.loss_preset == "cifar10" and final.num_train_epochs == 40

    from jal_trainer.hub import JALCardData

    card = JALCardData(model_name="m", dataset="blobs", loss_type="nce+rce", loss_selection=record)
    text = str(card.to_model_card())
    assert "How the loss was chosen" in text and "| nce+rce (chosen) |" in text and selection.reason in text


@pytest.mark.slow
def test_the_slice_file_replays_the_recorded_choice(tmp_path: Path) -> None:
    """loss_selection_slice.npz holds the very rows, labels and probabilities auto scored: replaying
    `decide` on it gives the recorded choice and noisy-slice accuracies, and a kept clean column comes along."""
    clean = blobs(400, 2, noise=0.0).with_format("numpy")["labels"][:]  # the same draws, nothing flipped
    data = blobs(400, 2, noise=0.3).with_format(None).add_column("clean_label", clean.tolist()).with_format("torch")
    selection = select_loss(MLP, auto_args(tmp_path, num_train_epochs=10, auto_ce_margin=0.5), data)
    saved = np.load(tmp_path / SLICE_FILE)
    assert np.array_equal(saved["noisy"], data.with_format("numpy")["labels"][:][saved["rows"]])
    assert np.array_equal(saved["clean"], clean[saved["rows"]])
    assert not np.array_equal(saved["clean"], saved["noisy"])  # the noise is there to judge the choice by
    probs = {k[2:]: saved[k].astype(np.float32) for k in saved.files if k.startswith("p_")}
    assert sorted(probs) == ["ce", "nce+rce"]
    assert selection.settings["ce_margin_stds"] == 0.5  # auto_ce_margin reaches the rule, and is recorded
    replayed = decide(parse_candidates(["nce+rce"], "cifar10"), probs, {}, saved["noisy"], {"seed": 0},
                      ce_margin=selection.settings["ce_margin_stds"])
    assert replayed.chosen.label == selection.chosen.label
    recorded = {r["label"]: r["noisy_slice_accuracy"] for r in selection.candidates}
    assert {r["label"]: r["noisy_slice_accuracy"] for r in replayed.candidates} == recorded


@pytest.mark.slow
def test_clean_labels_keep_ce(tmp_path: Path) -> None:
    selection = select_loss(MLP, auto_args(tmp_path), blobs(600, 1, noise=0.0))
    assert selection.chosen.loss_type == "ce", selection.reason


def test_unknown_candidate_fails_when_configured(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="auto: unknown candidate 'jal-xx'"):
        auto_args(tmp_path, auto_candidates=["jal-xx"])


def test_budget_below_one_training_fails_when_configured(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="below one training"):
        auto_args(tmp_path, auto_budget=0.5)


def test_too_few_slice_rows_fail_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the slice")

    monkeypatch.setattr(_CandidateTrainer, "train", no_training)
    data = blobs(40, 0)
    labels = np.asarray(data.with_format("numpy")["labels"])
    rare = np.flatnonzero(labels != 3)[:37].tolist() + np.flatnonzero(labels == 3)[:3].tolist()  # class 3: 3 rows
    # no holdout share helps a class of 3 rows: the error names the real fix, not auto_holdout
    with pytest.raises(ValueError, match="class 3 has only 3 training row.*needs 4 or more rows") as error:
        select_loss(MLP, auto_args(tmp_path, auto_holdout=0.1), data.select(rare))
    assert "auto_holdout" not in str(error.value) and "auto_rare_classes: train" in str(error.value)


def test_a_class_too_rare_to_score_can_train_unscored(tmp_path: Path) -> None:
    """auto_rare_classes: train keeps every row of a 3-row class for training, scores on the other classes,
    and says so in the reason and loss_selection.json; the other classes still give the slice 2+ rows each."""
    data = blobs(200, 0)
    labels = np.asarray(data.with_format("numpy")["labels"])
    rows = np.flatnonzero(labels != 3).tolist() + np.flatnonzero(labels == 3)[:3].tolist()
    data = data.select(sorted(rows))
    labels = labels[sorted(rows)]
    selection = select_loss(MLP, auto_args(tmp_path, auto_rare_classes="train", num_train_epochs=2), data)
    saved = np.load(tmp_path / SLICE_FILE)
    assert 3 not in saved["noisy"] and set(np.unique(saved["noisy"])) == {0, 1, 2}
    assert all((saved["noisy"] == c).sum() >= 2 for c in range(3))
    assert selection.settings["trained_rows"] + selection.settings["holdout_rows"] == len(labels)
    record = json.loads((tmp_path / SELECTION_FILE).read_text())
    assert record["unscored_classes"] == {"3": 3}
    assert "class 3 (3 rows) too rare to score" in record["reason"]
    from jal_trainer.hub import JALCardData

    card = str(JALCardData(model_name="m", dataset="blobs", loss_type="ce", loss_selection=record).to_model_card())
    assert "Classes too rare to score (label: training rows): 3: 3." in card and "auto_rare_classes: train" in card


def test_only_rare_classes_left_is_an_error(tmp_path: Path) -> None:
    data = blobs(200, 0)
    labels = np.asarray(data.with_format("numpy")["labels"])
    rows = np.flatnonzero(labels == 0).tolist() + np.flatnonzero(labels == 1)[:2].tolist()
    with pytest.raises(ValueError, match="fewer than 2 classes are left to score"):
        select_loss(MLP, auto_args(tmp_path, auto_rare_classes="train"), data.select(sorted(rows)))
    with pytest.raises(ValueError, match="auto_rare_classes must be one of error, train"):
        auto_args(tmp_path, auto_rare_classes="skip")


def test_a_rare_class_gets_two_slice_rows() -> None:
    labels = np.array([0] * 90 + [1] * 10)  # 10% of class 1 is one row: too few to score it
    kept, held = stratified_holdout(labels, 0.1, seed=0, min_per_class=2)
    assert (labels[held] == 1).sum() == 2 and (labels[kept] == 1).sum() == 8 and (labels[held] == 0).sum() == 9
    assert (labels[stratified_holdout(labels, 0.1, seed=0)[1]] == 1).sum() == 1  # the default: no minimum


def test_auto_is_not_a_loss_to_build(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="select_loss"):
        auto_args(tmp_path).build_loss()


def test_a_failing_candidate_loses_nothing_in_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    fail_candidates(monkeypatch, "out of memory (simulated)", only="gce")
    args = auto_args(tmp_path, auto_candidates=["gce", "nce+rce"], num_train_epochs=2)
    selection = select_loss(MLP, args, blobs(200, 1, noise=0.2))
    assert (tmp_path / "keep.txt").read_text() == "user data"
    rows = {row["label"]: row for row in json.loads((tmp_path / SELECTION_FILE).read_text())["candidates"]}
    assert rows["gce"]["status"] == "failed" and "simulated" in rows["gce"]["error"]
    assert rows["ce"]["status"] == rows["nce+rce"]["status"] == "ok"
    assert selection.chosen.label in ("ce", "nce+rce")


def test_the_estimate_undoes_known_noise() -> None:
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 3, 30000)
    noisy = np.where(rng.random(30000) < 0.3, (clean + 1) % 3, clean)  # pair-flip 0.3
    transition = np.array([[0.7, 0.3, 0.0], [0.0, 0.7, 0.3], [0.3, 0.0, 0.7]])
    half_right = np.where(rng.random(30000) < 0.8, clean, (clean + 2) % 3)  # clean accuracy 0.8
    assert estimated_clean_accuracy(half_right, noisy, transition) == pytest.approx(0.8, abs=0.02)
    # anchor rows of calibrated probabilities recover the matrix
    probs = transition[clean] * 0.98 + 0.02 / 3
    estimate = anchor_transition(calibrate(probs, noisy))
    assert np.abs(estimate - transition).max() < 0.05
    # the confident joint of a model that knows the clean class (its second choice the flipped one)
    knows = np.full((30000, 3), 0.1) + 0.5 * np.eye(3)[clean] + 0.2 * np.eye(3)[(clean + 1) % 3]
    assert np.abs(confident_transition(knows / knows.sum(1, keepdims=True), noisy) - transition).max() < 0.02
    kept, held = stratified_holdout(clean[:100], 0.1, seed=0)
    assert len(set(kept) & set(held)) == 0 and len(kept) + len(held) == 100


def test_every_candidate_failing_is_reported_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_candidates(monkeypatch, "broken candidate (simulated)")
    with pytest.raises(RuntimeError, match="every candidate failed"):
        select_loss(MLP, auto_args(tmp_path, num_train_epochs=1), blobs(100, 1))
    rows = json.loads((tmp_path / SELECTION_FILE).read_text())["candidates"]
    assert [row["status"] for row in rows] == ["failed", "failed"]


def test_an_unreliable_row_is_replaced_and_a_flat_estimate_is_refused() -> None:
    rare_class_row = np.array([[0.6, 0.4, 0.0], [0.45, 0.35, 0.2], [0.0, 0.4, 0.6]])  # row 1 not dominant
    repaired, rows = repair_transition(rare_class_row)
    assert rows == [1] and repaired[1].tolist() == pytest.approx([0.2, 0.6, 0.2])
    assert repaired[0].tolist() == [0.6, 0.4, 0.0]
    flat, rows = repair_transition(np.full((2, 2), 0.5))
    assert flat is None and rows == [0, 1]


def weak_slice(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A WRENCH-like slice: half the rows have one weak vote (the clean class), half none (a random label)."""
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 2, n)
    covered = rng.random(n) < 0.5
    weak = np.where(covered, clean, -1)[:, None]
    noisy = np.where(covered, clean, rng.integers(0, 2, n))
    return clean, noisy, weak, covered


def test_rows_with_a_coin_flip_label_are_scored_by_consensus() -> None:
    clean, noisy, weak, covered = weak_slice()
    informative = informative_rows(weak, 2, len(noisy))
    assert (informative == covered).all()
    assert informative_rows(np.array([[0, 1, -1], [1, 1, 0]]), 2, 2).tolist() == [False, True]
    right = slice_scores(clean, noisy, None, informative, consensus=clean)
    assert right["estimated_clean_accuracy"] == pytest.approx(1.0)  # agreement with random labels alone: ~0.75
    assert right["noisy_slice_accuracy"] == pytest.approx(0.75, abs=0.03)


def test_decide_prefers_the_candidate_right_where_the_labels_are_random() -> None:
    """CE learns the labelling functions: right on covered rows, a coin on the rest; the robust losses generalise."""
    clean, noisy, weak, covered = weak_slice()
    rng = np.random.default_rng(1)
    coin = rng.integers(0, 2, len(clean))

    def confident(pred: np.ndarray) -> np.ndarray:
        return np.eye(2)[pred] * 0.8 + 0.1

    probs = {"ce": confident(np.where(covered, clean, coin)), "gce": confident(clean), "nce+rce": confident(clean)}
    candidates = parse_candidates(["gce", "nce+rce"], None)
    chosen = decide(candidates, probs, {}, noisy, {"seed": 0}, weak_labels=weak)
    assert chosen.chosen.loss_type in ("gce", "nce+rce"), chosen.reason
    assert "scored by consensus" in chosen.reason and chosen.settings["informative_rows"] == int(covered.sum())
    # without the weak votes the random labels hide the difference (both agree with 75% of the labels)
    blind = {row["label"]: row for row in decide(candidates, probs, {}, noisy, {"seed": 0}).candidates}
    assert abs(blind["ce"]["noisy_slice_accuracy"] - blind["gce"]["noisy_slice_accuracy"]) < 0.03
    scored = {row["label"]: row for row in chosen.candidates}
    assert scored["gce"]["estimated_clean_accuracy"] - scored["ce"]["estimated_clean_accuracy"] > 0.2


def test_slice_probabilities_keep_the_row_order_under_group_by_length(tmp_path: Path) -> None:
    """transformers 5 groups evaluation rows by length under group_by_length; auto's record must not."""
    slice_ = blobs(96, 3).with_format(None)
    slice_ = slice_.add_column("length", np.random.default_rng(0).integers(1, 50, len(slice_)).tolist())
    slice_ = slice_.with_format("torch")
    args = auto_args(tmp_path, loss_type="ce", train_sampling_strategy="group_by_length", per_device_eval_batch_size=8,
                     analysis_columns=["length"])
    model = MLP().eval()
    candidates = {c.label: c for c in parse_candidates(["ce"], "cifar10")}
    trainer = _CandidateTrainer(model=model, args=args, eval_dataset=slice_, candidates=candidates)
    trainer.current = "ce"
    trainer.evaluate()
    with torch.no_grad():
        expected = torch.softmax(model(torch.stack(list(slice_["x"]))), dim=-1).numpy()
    assert np.allclose(np.load(tmp_path / "ce.npy"), expected, atol=1e-5)
    assert trainer.args.train_sampling_strategy == "group_by_length"  # put back after the evaluation


def test_hyperparameter_search_trains_each_trial_with_its_own_loss(tmp_path: Path) -> None:
    # Trainer.hyperparameter_search sets a trial's values on args; the loss built in __init__ must follow
    import optuna

    from jal_trainer import JALTrainer

    args = JALConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, remove_unused_columns=False,
                     save_strategy="no", disable_tqdm=True, per_device_train_batch_size=32, num_train_epochs=1,
                     logging_strategy="no", loss_type="jal-ce", loss_preset="cifar10")  # a = 30
    data = blobs(64, seed=0)
    trainer = JALTrainer(model_init=MLP, args=args, train_dataset=data, eval_dataset=data)
    seen: list[float] = []

    def objective(metrics: dict[str, float]) -> float:
        seen.append(trainer.loss_fn.hparams["a"])
        return metrics["eval_loss"]

    values = [2.0, 50.0]
    trainer.hyperparameter_search(hp_space=lambda trial: {"a": trial.suggest_categorical("a", values)}, n_trials=2,
                                  backend="optuna", compute_objective=objective,
                                  sampler=optuna.samplers.GridSampler({"a": values}, seed=0))
    assert sorted(seen) == values
