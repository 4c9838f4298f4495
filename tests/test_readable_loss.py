"""Logged losses read 0 at a perfect fit and never below; eval_loss leaves the L1 term out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import Dataset

from jal_trainer import JALConfig, JALTrainer
from jal_trainer.losses import LOSS_NAMES, build_loss
from jal_trainer.trainer import above_minimum, clamp_logged


@pytest.mark.parametrize("name", LOSS_NAMES)
@pytest.mark.parametrize("num_classes", [2, 10])
def test_every_loss_is_at_least_its_minimum_and_reaches_it(name: str, num_classes: int) -> None:
    loss = build_loss(name, reduction="none")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(512, num_classes, generator=g) * torch.tensor([0.1, 1.0, 10.0, 100.0]).repeat(128)[:, None]
    labels = torch.randint(0, num_classes, (512,), generator=g)
    above, _ = above_minimum(loss, loss(logits, labels), None, labels, num_classes)
    assert above.min().item() >= -1e-5, f"{name}: logged loss below 0"
    perfect = torch.nn.functional.one_hot(labels, num_classes).float() * 60.0
    at_fit, _ = above_minimum(loss, loss(perfect, labels), None, labels, num_classes)
    assert at_fit.abs().max().item() < 1e-4, f"{name}: logged loss at a perfect fit is {at_fit.max().item()}"


def test_minimum_parts_add_up_and_amse_floor_is_the_formula() -> None:
    loss = build_loss("jal-ce", preset="cifar10")
    active, passive = loss.minimum_parts(2)
    assert active == pytest.approx(0.0, abs=1e-12)
    assert passive == pytest.approx((30.0 - 1.0) ** 2 / 2)  # beta * (a - 1)^2 / K
    assert loss.minimum(2) == pytest.approx(active + passive)
    assert build_loss("jal-ce", preset="cifar10", a=20.0).minimum(10) == pytest.approx(19.0**2 / 10)


def test_ignored_samples_stay_zero() -> None:
    loss = build_loss("jal-ce", preset="cifar10", reduction="none")
    labels = torch.tensor([0, -100])
    above, _ = above_minimum(loss, loss(torch.zeros(2, 2), labels), None, labels, 2)
    assert above[1].item() == 0.0 and above[0].item() > 0


def test_clamp_keeps_the_gradient() -> None:
    x = torch.tensor(-1e-7, requires_grad=True)
    y = clamp_logged(x * 3.0)
    y.backward()
    assert y.item() == 0.0 and x.grad.item() == pytest.approx(3.0)


def separable_toy(n: int = 64) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    labels = (x[:, 0] > 0).long()
    x[:, 0] += torch.where(labels.bool(), 1.0, -1.0)  # a wide margin: a linear model fits it exactly
    return Dataset.from_dict({"x": x.tolist(), "labels": labels.tolist()}).with_format("torch")


class Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def toy_args(tmp_path: Path, **overrides) -> JALConfig:
    settings = dict(output_dir=str(tmp_path), report_to=[], use_cpu=True, remove_unused_columns=False,
                    save_strategy="no", disable_tqdm=True, per_device_train_batch_size=16, learning_rate=0.5,
                    optim="adamw_torch", weight_decay=0.0, lr_scheduler_type="constant", num_train_epochs=60,
                    logging_steps=4, loss_type="jal-ce", loss_preset="cifar10", seed=0)
    settings.update(overrides)
    return JALConfig(**settings)


def test_a_perfect_fit_logs_a_loss_near_zero(tmp_path: Path) -> None:
    """Without the floor, JAL-CE (a = 30) on two classes would log about 420.5 at a perfect fit."""
    data = separable_toy()
    trainer = JALTrainer(model=Linear(), args=toy_args(tmp_path), train_dataset=data, eval_dataset=data)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[0] > 1.0
    assert 0.0 <= losses[-1] < 0.05
    assert all(value >= 0.0 for value in losses)
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_loss"] < 0.05


def test_eval_loss_leaves_out_the_l1_term(tmp_path: Path) -> None:
    data = separable_toy(16)
    values = []
    for lam in (0.0, 1.0):
        trainer = JALTrainer(model=Linear(), args=toy_args(tmp_path, l1_weight_decay=lam, l1_scope="all"),
                             eval_dataset=data)
        values.append(trainer.evaluate()["eval_loss"])
    assert values[0] == pytest.approx(values[1], rel=1e-6)


def test_l1_on_a_pretrained_body_covers_only_the_head() -> None:
    from transformers import BertConfig, BertForSequenceClassification

    from jal_trainer.trainer import l1_parameters

    model = BertForSequenceClassification(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=8, num_labels=3))
    head = {id(p) for p in model.classifier.parameters()}
    assert {id(p) for p in l1_parameters(model, "head")} == head
    assert len(l1_parameters(model, "all")) == len(list(model.parameters()))
    plain = Linear()
    assert len(l1_parameters(plain, "head")) == 2  # no pretrained body: the whole model


def test_bad_l1_scope_fails_early(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="l1_scope must be one of head, all"):
        JALConfig(output_dir=str(tmp_path), l1_scope="body")


def test_pretrained_recipes_default_to_the_finetune_preset(tmp_path: Path) -> None:
    from jal_trainer.arguments import ModelArguments
    from jal_trainer.train import default_preset

    text = ModelArguments(model="some/pretrained-encoder")
    assert default_preset(text, JALConfig(output_dir=str(tmp_path), loss_type="jal-ce")).loss_preset == "finetune"
    named = JALConfig(output_dir=str(tmp_path), loss_type="jal-ce", loss_preset="cifar10")
    assert default_preset(text, named).loss_preset == "cifar10"  # a named preset wins
    vision = JALConfig(output_dir=str(tmp_path), loss_type="jal-ce")
    assert default_preset(ModelArguments(model="cnn8"), vision).loss_preset is None
