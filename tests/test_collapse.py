"""The collapse guard warns when one class takes >= 95% of an evaluation's predictions."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from jal_trainer import JALConfig, JALTrainer
from jal_trainer.collapse import CollapseWarning, collapse_message


class Biased(torch.nn.Module):
    """A linear model whose bias can force every prediction to class 0."""

    def __init__(self, bias: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(2, 3)
        with torch.no_grad():
            self.linear.bias.copy_(torch.tensor([bias, 0.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def balanced(n: int = 60, majority: float | None = None) -> Dataset:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    if majority is not None:
        labels[: int(majority * n)] = 0
    x = torch.randn(n, 2, generator=g)
    return Dataset.from_dict({"x": x.tolist(), "labels": labels.tolist()}).with_format("torch")


def args(tmp_path: Path, **overrides) -> JALConfig:
    settings = dict(output_dir=str(tmp_path), report_to=[], use_cpu=True, remove_unused_columns=False,
                    save_strategy="no", disable_tqdm=True, per_device_eval_batch_size=16, learning_rate=1e-9,
                    num_train_epochs=1, per_device_train_batch_size=16, eval_strategy="epoch",
                    loss_type="nce+rce", loss_preset="cifar10")
    settings.update(overrides)
    return JALConfig(**settings)


def test_warns_during_training_when_one_class_takes_every_prediction(tmp_path: Path) -> None:
    data = balanced()
    trainer = JALTrainer(model=Biased(50.0), args=args(tmp_path), train_dataset=data, eval_dataset=data)
    with pytest.warns(CollapseWarning, match=r"predicts class 0 for 100.0% of the 60 eval set rows") as record:
        trainer.train()
    text = str(record[0].message)
    assert "nce+rce (alpha 1, beta 1)" in text and "too few epochs" in text and "clean-label dominant" in text


def test_no_warning_for_varied_predictions_or_a_lopsided_set(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        JALTrainer(model=Biased(0.0), args=args(tmp_path), eval_dataset=balanced()).evaluate()
        # 97% of the labels are class 0: predicting class 0 everywhere is no collapse
        JALTrainer(model=Biased(50.0), args=args(tmp_path), eval_dataset=balanced(majority=0.97)).evaluate()


def test_message_thresholds() -> None:
    assert collapse_message(np.array([95, 3, 2]), np.array([40, 30, 30]), "ce") is not None
    assert collapse_message(np.array([94, 4, 2]), np.array([40, 30, 30]), "ce") is None
    assert collapse_message(np.array([10, 0]), np.array([5, 5]), "ce") is None  # too few rows to say


def test_the_message_names_parameters_only_for_a_loss_that_has_them() -> None:
    counts, labels = np.array([100, 0]), np.array([50, 50])
    assert "AMSE a dominates" in collapse_message(counts, labels, "jal-ce (alpha 1, beta 1, a 30)")
    assert "loss's parameters (nce+rce" in collapse_message(counts, labels, "nce+rce (alpha 1, beta 1)")
    assert "AMSE" not in collapse_message(counts, labels, "nce+rce (alpha 1, beta 1)")
    ce = collapse_message(counts, labels, "ce")
    assert "parameters" not in ce and "too few epochs" in ce
