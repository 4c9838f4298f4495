"""JALTrainer: exact under any batch split, logs its parts, keeps analysis columns out of forward."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from jal_trainer import JALConfig, JALTrainer, make_compute_loss_func

sys.path.insert(0, str(Path(__file__).parent))
from exactness_runs import (  # noqa: E402
    NUM_CLASSES,
    make_dataset,
    make_model,
    max_weight_diff,
    plain_trainer_on_bert,
    run_two_processes,
    tiny_bert,
    token_dataset,
    train_one_step,
)


@pytest.fixture(scope="module")
def reference_run() -> dict:
    """(a) batch 8, accumulation 1, one process."""
    return train_one_step(batch_size=8, accumulation=1)


def test_one_step_changes_every_parameter(reference_run: dict) -> None:
    initial = {k: v.tolist() for k, v in make_model().state_dict().items()}
    for name in initial:
        diff = (torch.tensor(initial[name]) - torch.tensor(reference_run["weights"][name])).abs().max().item()
        assert diff > 1e-4, f"{name} did not move"


def test_accumulation_gives_the_same_update(reference_run: dict) -> None:
    """(b) batch 4 x 2 accumulation steps equals (a): weights and logged loss."""
    split = train_one_step(batch_size=4, accumulation=2)
    assert max_weight_diff(reference_run["weights"], split["weights"]) <= 1e-6
    assert split["loss"] == pytest.approx(reference_run["loss"], rel=1e-6)
    assert split["log"]["loss_active"] == pytest.approx(reference_run["log"]["loss_active"], rel=1e-5)
    assert split["log"]["loss_passive"] == pytest.approx(reference_run["log"]["loss_passive"], rel=1e-5)


@pytest.mark.slow
def test_two_processes_give_the_same_update(reference_run: dict, tmp_path: Path) -> None:
    """(c) batch 2 x 2 accumulation steps x 2 processes (torchrun, gloo) equals (a)."""
    results = run_two_processes(Path(__file__).parent / "exactness_runs.py", tmp_path / "rank0.json", port=29517)
    result = results["jal"]
    assert result["world_size"] == 2
    assert max_weight_diff(reference_run["weights"], result["weights"]) <= 1e-6
    assert result["loss"] == pytest.approx(reference_run["loss"], rel=1e-6)
    # the parts are gathered over both processes, so they match the one-process values too
    assert result["log"]["loss_active"] == pytest.approx(reference_run["log"]["loss_active"], rel=1e-5)
    assert result["log"]["loss_passive"] == pytest.approx(reference_run["log"]["loss_passive"], rel=1e-5)
    # the default Trainer with a transformers head: 2 accumulation steps x 2 processes -> 4x the loss
    plain_one = plain_trainer_on_bert(batch_size=8, accumulation=1)
    assert results["plain_bert"]["loss"] / plain_one["loss"] == pytest.approx(4.0, rel=0.1)


def test_logged_parts_add_up_to_the_loss() -> None:
    run = train_one_step(batch_size=4, accumulation=2, l1_weight_decay=0.0)
    log = run["log"]
    assert log["loss_active"] > 0 and log["loss_passive"] > 0
    assert log["loss_active"] + log["loss_passive"] == pytest.approx(log["loss"], rel=1e-4)


def test_l1_weight_decay_is_added_once_per_step() -> None:
    without = train_one_step(batch_size=4, accumulation=2, l1_weight_decay=0.0)
    lam = 1e-2
    with_l1 = train_one_step(batch_size=4, accumulation=2, l1_weight_decay=lam)
    l1 = sum(p.abs().sum().item() for p in make_model().parameters())
    assert with_l1["loss"] - without["loss"] == pytest.approx(lam * l1, rel=1e-4)


def test_transformers_head_is_exact_with_jal_trainer() -> None:
    runs = [train_one_step(b, ga, model=tiny_bert(), dataset=token_dataset(), loss_type="ce", loss_preset=None)
            for b, ga in [(8, 1), (4, 2)]]
    assert max_weight_diff(runs[0]["weights"], runs[1]["weights"]) <= 1e-6
    assert runs[1]["loss"] == pytest.approx(runs[0]["loss"], rel=1e-6)


def test_plain_trainer_with_transformers_head_is_not_exact() -> None:
    """The reason to switch: the default Trainer's loss doubles with 2 accumulation steps."""
    one, two = plain_trainer_on_bert(8, 1), plain_trainer_on_bert(4, 2)
    assert two["loss"] / one["loss"] == pytest.approx(2.0, rel=0.1)
    assert max_weight_diff(one["weights"], two["weights"]) > 1e-4


def test_compute_loss_func_makes_the_plain_trainer_exact() -> None:
    def plain(batch: int, ga: int) -> dict:
        return train_one_step(batch, ga, trainer_cls=_PlainTrainerWithLossFunc,
                              dataset=make_dataset().remove_columns("clean_label"), l1_weight_decay=0.0)

    one, two = plain(8, 1), plain(4, 2)
    jal = train_one_step(8, 1, l1_weight_decay=0.0)
    assert max_weight_diff(one["weights"], two["weights"]) <= 1e-6
    assert max_weight_diff(one["weights"], jal["weights"]) <= 1e-6
    assert two["loss"] == pytest.approx(jal["loss"], rel=1e-6)


class _PlainTrainerWithLossFunc(Trainer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, compute_loss_func=make_compute_loss_func("jal-ce", preset="cifar10"), **kwargs)


def test_analysis_columns_never_reach_forward(tmp_path: Path) -> None:
    seen: list[set[str]] = []

    class KwargsModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(6, NUM_CLASSES)

        def forward(self, **inputs: torch.Tensor) -> dict:
            seen.append(set(inputs))
            return {"logits": self.linear(inputs["x"])}

    args = JALConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, report_to=[],
                     use_cpu=True, remove_unused_columns=False, save_strategy="no", disable_tqdm=True,
                     per_device_eval_batch_size=4)
    trainer = JALTrainer(model=KwargsModel(), args=args, train_dataset=make_dataset(), eval_dataset=make_dataset())
    trainer.train()
    metrics = trainer.evaluate()
    assert seen and all(keys == {"x"} for keys in seen)
    assert "eval_loss" in metrics and "eval_loss_active" in metrics and "eval_loss_passive" in metrics


def test_predictions_come_back_for_a_plain_module(tmp_path: Path) -> None:
    args = JALConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, remove_unused_columns=False,
                     per_device_eval_batch_size=3, disable_tqdm=True)
    trainer = JALTrainer(model=make_model(), args=args)
    out = trainer.predict(make_dataset())
    assert out.predictions.shape == (8, NUM_CLASSES)
    assert out.label_ids.tolist() == make_dataset().with_format(None)["labels"]
    assert out.metrics["test_loss"] > 0


def noisy_dataset(rate: float, num_classes: int = 3, per_class: int = 100) -> Dataset:
    """Labels with exactly `rate` of each class flipped uniformly to the other classes."""
    clean, noisy = [], []
    flips_per_target = int(rate * per_class / (num_classes - 1))
    for c in range(num_classes):
        targets = [t for t in range(num_classes) if t != c]
        row = [t for t in targets for _ in range(flips_per_target)]
        row += [c] * (per_class - len(row))
        clean += [c] * per_class
        noisy += row
    return Dataset.from_dict({"x": [[0.0] * 6] * len(clean), "labels": noisy, "clean_label": clean})


def test_warns_when_a_is_below_the_theorem_bound(tmp_path: Path) -> None:
    # symmetric 0.6 with K = 3: a >= (K-1) / (K-1-K*eta) = 2 / 0.2 = 10
    args = JALConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, loss_type="jal-ce", a=5.0)
    with pytest.warns(UserWarning, match="below the smallest a"):
        JALTrainer(model=make_model(), args=args, train_dataset=noisy_dataset(0.6))
    args = JALConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, loss_type="jal-ce", a=12.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        JALTrainer(model=make_model(), args=args, train_dataset=noisy_dataset(0.6))


def test_bf16_autocast_trains_with_a_float32_loss(tmp_path: Path) -> None:
    run = train_one_step(batch_size=8, accumulation=1, bf16=True)
    assert torch.isfinite(torch.tensor(run["loss"]))
    fp32 = train_one_step(batch_size=8, accumulation=1)
    assert run["loss"] == pytest.approx(fp32["loss"], rel=2e-2)


def test_plain_training_arguments_are_accepted(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    trainer = JALTrainer(model=make_model(), args=args)
    assert isinstance(trainer.args, JALConfig) and trainer.args.loss_type == "jal-ce"


def test_logged_eval_parts_ignore_prediction_passes(tmp_path: Path) -> None:
    """A predict() between evaluations (as the memorisation callback does) must not leak into them."""
    args = JALConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, remove_unused_columns=False,
                     per_device_eval_batch_size=3, disable_tqdm=True)
    trainer = JALTrainer(model=make_model(), args=args, eval_dataset=make_dataset())
    first = trainer.evaluate()
    trainer.predict(make_dataset())
    second = trainer.evaluate(metric_key_prefix="test")
    assert second["test_loss_active"] == pytest.approx(first["eval_loss_active"], rel=1e-6)
    assert second["test_loss_passive"] == pytest.approx(first["eval_loss_passive"], rel=1e-6)
    assert first["eval_loss_active"] + first["eval_loss_passive"] == pytest.approx(first["eval_loss"], rel=1e-5)
