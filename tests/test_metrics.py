"""The noisy_label_accuracy evaluate metric: offline loading, values, and use as compute_metrics."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import torch
from datasets import Dataset
from torch import nn
from transformers import EvalPrediction

from jal_trainer.metrics import METRIC_PATH, compute_metrics_fn, load_metric, predicted_classes

# (predictions, clean references, noisy references) -> (accuracy, noisy_label_accuracy, memorisation),
# worked out by hand: memorisation counts, among samples whose noisy label is wrong, those
# predicted as that wrong label.
CASES = [
    # wrong labels at 2 (1 vs 2) and 3 (0 vs 2); predicted 1 (memorised) and 2 (not)
    ([0, 1, 1, 2], [0, 1, 2, 2], [0, 1, 1, 0], (3 / 4, 3 / 4, 1 / 2)),
    # every wrong label memorised, clean accuracy only on the clean-labelled samples
    ([1, 1, 0, 0, 2], [0, 1, 1, 0, 2], [1, 1, 0, 0, 2], (3 / 5, 1.0, 1.0)),
    # the model recovers both clean labels: nothing memorised
    ([0, 1, 2, 2], [0, 1, 2, 2], [1, 1, 0, 2], (1.0, 1 / 2, 0.0)),
]


@pytest.fixture(scope="module")
def metric():
    return load_metric()


@pytest.mark.parametrize("predictions, references, noisy, expected", CASES)
def test_values_match_hand_computed_cases(metric, predictions, references, noisy, expected) -> None:
    result = metric.compute(predictions=predictions, references=references, noisy_references=noisy)
    assert result == pytest.approx(
        {"accuracy": expected[0], "noisy_label_accuracy": expected[1], "memorisation": expected[2]}
    )


def test_without_noisy_labels_only_accuracy(metric) -> None:
    assert metric.compute(predictions=[2, 0, 1], references=[2, 1, 1]) == pytest.approx({"accuracy": 2 / 3})


def test_memorisation_is_nan_without_wrong_labels(metric) -> None:
    result = metric.compute(predictions=[0, 1], references=[0, 1], noisy_references=[0, 1])
    assert math.isnan(result["memorisation"])
    assert result["noisy_label_accuracy"] == 1.0


def test_random_labels_against_a_loop(metric) -> None:
    rng = np.random.default_rng(0)
    pred, clean, noisy = rng.integers(0, 4, (3, 500))
    wrong = [i for i in range(500) if noisy[i] != clean[i]]
    expected = {
        "accuracy": sum(int(pred[i] == clean[i]) for i in range(500)) / 500,
        "noisy_label_accuracy": sum(int(pred[i] == noisy[i]) for i in range(500)) / 500,
        "memorisation": sum(int(pred[i] == noisy[i]) for i in wrong) / len(wrong),
    }
    assert metric.compute(predictions=pred, references=clean, noisy_references=noisy) == pytest.approx(expected)


def test_noisy_config_accumulates_batches() -> None:
    """The "noisy" configuration takes noisy_references through add_batch, over several batches."""
    predictions, references, noisy, expected = CASES[0]
    metric = load_metric("noisy")
    metric.add_batch(predictions=predictions[:2], references=references[:2], noisy_references=noisy[:2])
    metric.add_batch(predictions=predictions[2:], references=references[2:], noisy_references=noisy[2:])
    assert list(metric.compute().values()) == pytest.approx(list(expected))


def test_loads_offline_with_evaluate_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate.load(<local folder>) with HF_HUB_OFFLINE=1 and every socket connection refused."""
    import evaluate

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for path in (METRIC_PATH, METRIC_PATH / "noisy_label_accuracy.py"):
        metric = evaluate.load(str(path), keep_in_memory=True)
        assert isinstance(metric, evaluate.Metric)
        assert metric.compute(predictions=[1, 1], references=[1, 0]) == {"accuracy": 0.5}
    assert "2507.17692" in metric.citation


def test_mismatched_lengths_raise(metric) -> None:
    with pytest.raises(ValueError):
        metric.compute(predictions=[0, 1, 1], references=[0, 1])
    with pytest.raises(ValueError, match="noisy_references"):
        metric.compute(predictions=[0, 1], references=[0, 1], noisy_references=[0])


def test_unknown_config_raises() -> None:
    with pytest.raises(ValueError, match="config_name"):
        load_metric("clean")


def test_predicted_classes_takes_the_argmax() -> None:
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    assert predicted_classes(logits).tolist() == [1, 0]
    assert predicted_classes((logits, np.zeros((2, 4)))).tolist() == [1, 0]  # (logits, hidden states)
    assert predicted_classes(np.array([2, 0])).tolist() == [2, 0]


def test_compute_metrics_fn_on_eval_predictions() -> None:
    fn = compute_metrics_fn()
    logits = np.eye(4)[[0, 1, 1, 2]]  # predicts 0, 1, 1, 2 (CASES[0])
    clean = np.array([0, 1, 2, 2])
    noisy = np.array([0, 1, 1, 0])
    assert fn(EvalPrediction(predictions=logits, label_ids=clean)) == pytest.approx({"accuracy": 0.75})
    both = fn(EvalPrediction(predictions=logits, label_ids=(noisy, clean)))
    assert both == pytest.approx({"accuracy": 0.75, "noisy_label_accuracy": 0.75, "memorisation": 0.5})


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_trainer_reports_memorisation_with_clean_label_column(tmp_path) -> None:
    """With label_names=["labels", "clean_label"] the Trainer's evaluation gets all three metrics."""
    from jal_trainer import JALConfig, JALTrainer

    rng = np.random.default_rng(1)
    clean = rng.integers(0, 3, 40)
    noisy = np.where(rng.random(40) < 0.4, (clean + 1) % 3, clean)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    data = Dataset.from_dict({"x": x.tolist(), "labels": noisy.tolist(), "clean_label": clean.tolist()}).with_format(
        "torch"
    )
    args = JALConfig(output_dir=str(tmp_path), loss_type="ce", label_names=["labels", "clean_label"],
                     per_device_eval_batch_size=16, report_to=[], use_cpu=True)  # fmt: skip
    model = _Linear()
    trainer = JALTrainer(model=model, args=args, eval_dataset=data, compute_metrics=compute_metrics_fn())
    metrics = trainer.evaluate()

    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    wrong = noisy != clean
    assert metrics["eval_accuracy"] == pytest.approx((pred == clean).mean())
    assert metrics["eval_noisy_label_accuracy"] == pytest.approx((pred == noisy).mean())
    assert metrics["eval_memorisation"] == pytest.approx((pred[wrong] == noisy[wrong]).mean())
