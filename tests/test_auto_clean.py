"""loss_type auto with a detect-then-retrain candidate (`<loss>+clean`): the trial, the record, the final
training set, the budget and the errors before any training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from jal_trainer import JALConfig
from jal_trainer.auto import SELECTION_FILE, _CandidateTrainer, parse_candidates, select_for_recipe, select_loss
from jal_trainer.auto_clean import candidate_cost, dropped_rows

from failing_candidates import fail_candidates

pytest.importorskip("optuna")

K, D = 4, 16


def separable(n: int = 300, seed: int = 1, noise: float = 0.15) -> tuple[Dataset, np.ndarray]:
    """Four well separated Gaussian classes; ``noise`` of the labels flipped to another class. Returns the
    data set and the (N,) mask of the flipped rows: the rows a good detector flags."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(123).normal(size=(K, D)) * 1.5
    clean = rng.integers(0, K, n)
    x = centers[clean] + rng.normal(size=(n, D))
    flip = rng.random(n) < noise
    noisy = np.where(flip, (clean + rng.integers(1, K, n)) % K, clean)
    data = Dataset.from_dict({"x": x.astype(np.float32).tolist(), "labels": noisy.tolist(), "row": list(range(n))})
    return data.with_format("torch"), flip


class Linear(torch.nn.Module):
    """Too small to memorise the flipped labels: its epoch-mean probabilities disagree with them."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(D, K)

    def forward(self, x: torch.Tensor, row: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x)


def clean_args(out: Path, **overrides) -> JALConfig:
    settings = dict(output_dir=str(out), report_to=[], use_cpu=True, remove_unused_columns=False, save_strategy="no",
                    disable_tqdm=True, per_device_train_batch_size=32, learning_rate=3e-2, num_train_epochs=10,
                    logging_strategy="no", loss_type="auto", auto_candidates=["ce+clean"], auto_holdout=0.2, seed=0)
    settings.update(overrides)
    return JALConfig(**settings)


@pytest.fixture
def plain_ce_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain CE's trial fails, so the +clean candidate is chosen (on this easy set they would tie, and a tie
    keeps CE)."""
    fail_candidates(monkeypatch, "ce fails (simulated)", only="ce")


def test_a_chosen_clean_candidate_drops_the_flagged_rows_from_the_final_training(tmp_path: Path,
                                                                                  plain_ce_fails: None) -> None:
    data, flipped = separable()
    selection = select_loss(Linear, clean_args(tmp_path), data)
    assert selection.chosen.label == "ce+clean" and selection.chosen.clean, selection.reason
    dropped = set(selection.dropped.tolist())
    truly_wrong = set(np.flatnonzero(flipped).tolist())
    # the class-balanced rule finds the flipped rows, in the trained rows and in the slice alike
    assert len(dropped & truly_wrong) >= 0.9 * len(truly_wrong) and len(dropped - truly_wrong) <= 3

    final = selection.training_rows(data)
    rows = set(final.with_format("numpy")[:]["row"].tolist())
    assert len(final) == len(data) - len(dropped) and not rows & dropped
    assert selection.apply(clean_args(tmp_path)).loss_type == "ce"

    record = json.loads((tmp_path / SELECTION_FILE).read_text())
    assert record["chosen"] == "ce+clean" and record["detect_then_retrain"] is True
    assert record["dropped_rows"] == len(dropped) and sorted(record["dropped_row_indices"]) == sorted(dropped)
    # the budget counts the +clean candidate twice: 1 + 0.5 x (1 for ce + 2 for ce+clean)
    assert record["candidate_trainings"] == 3 and record["budget_trainings"] == 2.5
    assert record["candidate_schedule"] == {"num_train_epochs": round(10 * 0.5 * 300 / record["trained_rows"], 4)}
    rows_by_label = {row["label"]: row for row in record["candidates"]}
    assert rows_by_label["ce"]["status"] == "failed" and rows_by_label["ce+clean"]["flagged_rows"] == len(dropped)

    from jal_trainer.hub import JALCardData

    text = str(JALCardData(model_name="m", dataset="blobs", loss_type="ce", loss_selection=record).to_model_card())
    assert "| ce+clean (chosen) |" in text and f"without the {len(dropped)} training rows (of 300)" in text
    with pytest.raises(ValueError, match="pass the very set select_loss chose on"):
        selection.training_rows(data.select(range(10)))


def test_jal_train_path_trains_on_all_rows_minus_the_flags(tmp_path: Path, plain_ce_fails: None) -> None:
    data, _ = separable()
    raw = data.rename_column("x", "features")  # the same rows before a recipe embeds or tokenizes them
    parts = {"model": Linear(), "dataset": {"train": data}, "callbacks": ["built for all rows"]}
    splits, rebuilt = {"train": raw}, []
    args = select_for_recipe(parts, clean_args(tmp_path), raw=splits,
                             callbacks=lambda ds: rebuilt.append(len(ds["train"])) or ["rebuilt"])
    record = json.loads((tmp_path / SELECTION_FILE).read_text())
    kept = sorted(set(range(300)) - set(record["dropped_row_indices"]))
    assert args.loss_type == "ce" and parts["callbacks"] == ["rebuilt"] and rebuilt == [len(kept)]
    assert parts["dataset"]["train"].with_format("numpy")[:]["row"].tolist() == kept
    assert splits["train"].with_format("numpy")[:]["row"].tolist() == kept


def test_when_not_chosen_nothing_is_dropped(tmp_path: Path) -> None:
    data, _ = separable(noise=0.0)
    selection = select_loss(Linear, clean_args(tmp_path), data)
    assert selection.chosen.label == "ce" and selection.dropped is None  # a tie keeps plain CE
    assert selection.training_rows(data) is data
    record = json.loads((tmp_path / SELECTION_FILE).read_text())
    assert "dropped_rows" not in record and record["detect_then_retrain"] is False


@pytest.mark.parametrize("label, message", [
    ("foo+clean", "unknown candidate 'foo\\+clean'"),
    ("ce+clean+clean", "repeats \\+clean"),
    ("ce+clean@finetune", "unknown candidate 'ce\\+clean@finetune'"),
])
def test_bad_clean_candidates_fail_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str,
                                                   message: str) -> None:
    with pytest.raises(ValueError, match=message):
        clean_args(tmp_path, auto_candidates=[label])
    monkeypatch.setattr(_CandidateTrainer, "train", lambda *a, **k: pytest.fail("trained before checking"))
    args = clean_args(tmp_path)
    args.auto_candidates = [label]  # set after the config's own check: select_loss checks again
    with pytest.raises(ValueError, match=message):
        select_loss(Linear, args, separable(40)[0])


def test_candidates_and_their_cost() -> None:
    parsed = parse_candidates(["jal-ce@cifar10+clean", "nce+rce+clean", "gce"], None)
    assert [(c.label, c.loss_type, c.preset, c.clean) for c in parsed] == [
        ("ce", "ce", None, False), ("jal-ce@cifar10+clean", "jal-ce", "cifar10", True),
        ("nce+rce+clean", "nce+rce", None, True), ("gce", "gce", None, False)]
    assert [c.label for c in parse_candidates(["ce+clean"], None)] == ["ce", "ce+clean"]  # plain CE still added
    assert candidate_cost([c.label for c in parsed]) == 6
    with pytest.raises(ValueError, match="below one training"):
        clean_args(Path("unused"), auto_candidates=["ce+clean"], auto_budget=0.9)


def test_dropped_rows_avoid_a_last_batch_of_one() -> None:
    flags = {"trained": np.array([True, False, False, False]), "slice": np.array([False, False]),
             "trained_scores": np.array([0.9, 0.1, 0.7, 0.2]), "slice_scores": np.array([0.0, 0.0])}
    kept, held = np.array([0, 2, 3, 5]), np.array([1, 4])
    assert dropped_rows(flags, kept, held, 8).tolist() == [0]
    assert dropped_rows(flags, kept, held, 4).tolist() == [0, 3]  # 5 rows left: the highest-scored kept row goes


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray on two CPUs; this module's model classes travel to the workers by value."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    import sys

    from ray import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.slow
def test_ray_runs_the_clean_trial_as_optuna_does(tmp_path: Path, ray_session, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trial reads no other trial's files: in Ray's workers it flags and scores as in this process."""
    data, _ = separable()
    monkeypatch.chdir(tmp_path)
    records = {}
    for backend in ("optuna", "ray"):
        select_loss(Linear, clean_args(tmp_path / backend, auto_backend=backend, auto_storage="shared"), data)
        records[backend] = json.loads((tmp_path / backend / SELECTION_FILE).read_text())
        assert records[backend].pop("backend") == backend
    assert records["ray"] == records["optuna"]
    clean_row = records["ray"]["candidates"][1]
    assert clean_row["label"] == "ce+clean" and clean_row["flagged_rows"] > 0
