"""The CUDA-graph training step: same updates as the Trainer's own step, clear refusals.

CUDA graphs need a GPU, which CI does not have; the graphed step's bookkeeping (static inputs,
gradients handed to ``param.grad``, logged parts, the eager path for odd-sized batches) is the
same with or without capture, so here it runs with ``capture=False`` and is compared with the
Trainer's ordinary step. The capture itself runs on the GPU machines (recipes/gpu).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from jal_trainer import JALConfig, JALTrainer
from jal_trainer import graph_step as gs
from jal_trainer.data import DeviceImageCollator, DeviceImageDataset, image_stats, load_digits
from jal_trainer.models import build_vision_model


def _train(tmp_path: Path, graph: bool, steps: int = 5) -> tuple[dict[str, torch.Tensor], list[dict], JALTrainer]:
    digits = load_digits()
    train = digits["train"].select(range(300))  # 300 = 2 x 128 + 44: every epoch ends on a short batch
    mean, std = image_stats("digits")
    data = DeviceImageDataset(train, augment=True, mean=mean, std=std, seed=0, crop_padding=1, flip=False)
    torch.manual_seed(0)
    model = build_vision_model("cnn8", label_names=[str(i) for i in range(10)], num_channels=1, image_size=8)
    args = JALConfig(output_dir=str(tmp_path / ("g" if graph else "e")), loss_type="jal-ce", loss_preset="cifar10",
                     l1_weight_decay=5e-5, per_device_train_batch_size=128, max_steps=steps, learning_rate=0.05,
                     optim="sgd", optim_args="momentum=0.9", max_grad_norm=5.0, logging_steps=2, use_cpu=True,
                     report_to="none", save_strategy="no", disable_tqdm=True, remove_unused_columns=False,
                     cuda_graph_step=graph, seed=0)
    trainer = JALTrainer(model=model, args=args, train_dataset=data, data_collator=DeviceImageCollator())
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, logs, trainer


def test_graphed_step_gives_the_trainers_updates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """5 steps (the third a 44-row batch, which takes the eager path; then a new epoch): equal weights and logs."""
    eager, eager_logs, _ = _train(tmp_path, graph=False)
    monkeypatch.setattr(gs, "unsupported_reason", lambda *a, **k: None)  # let the CPU run the eager twin
    graphed, graph_logs, trainer = _train(tmp_path, graph=True)
    assert isinstance(trainer._graph, gs.GraphedStep) and trainer._graph.capture is False
    for name in eager:
        assert torch.allclose(eager[name].float(), graphed[name].float(), atol=1e-6, rtol=0), name
    assert len(eager_logs) == len(graph_logs) >= 2
    for a, b in zip(eager_logs, graph_logs):
        for key in ("loss", "loss_active", "loss_passive"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key


def test_graphed_step_replays_only_the_captured_shape() -> None:
    model = torch.nn.Linear(3, 2)
    step = gs.GraphedStep(lambda b, n: (model(b["x"]).square().sum() / n, None), model,
                          {"x": torch.zeros(4, 3)}, capture=False)
    assert step.accepts({"x": torch.ones(4, 3)})
    assert not step.accepts({"x": torch.ones(3, 3)})  # short batch
    assert not step.accepts({"x": torch.ones(4, 3), "y": torch.ones(4)})  # other keys
    assert not step.accepts({"x": torch.ones(4, 3, dtype=torch.float64)})


def test_gradients_accumulate_when_not_zeroed() -> None:
    """A second call adds to gradients left by another path, and overwrites its own."""
    model = torch.nn.Linear(3, 1, bias=False)
    step = gs.GraphedStep(lambda b, n: (model(b["x"]).sum() / n, None), model, {"x": torch.ones(2, 3)},
                          capture=False)
    model.weight.grad = torch.full_like(model.weight, 10.0)
    step({"x": torch.ones(2, 3)}, 1)
    assert torch.equal(model.weight.grad, torch.full_like(model.weight, 12.0))


def test_cpu_run_refuses_with_a_reason_and_trains(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="cuda_graph_step is on but this run cannot use it: the device is cpu"):
        weights, _, trainer = _train(tmp_path, graph=True, steps=2)
    assert getattr(trainer, "_graph", None) is None and trainer.state.global_step == 2


@pytest.mark.parametrize(
    ("change", "words"),
    [({"gradient_accumulation_steps": 2}, "gradient_accumulation_steps > 1"), ({"fp16": True}, "use bf16"),
     ({"torch_compile": True}, "torch_compile")],
)
def test_unsupported_runs_are_named(change: dict, words: str) -> None:
    from types import SimpleNamespace

    args = SimpleNamespace(**{"gradient_accumulation_steps": 1, "fp16": False, "torch_compile": False, **change})
    assert words in gs.unsupported_reason(args, torch.device("cuda"), 1)
    plain = SimpleNamespace(gradient_accumulation_steps=1, fp16=False, torch_compile=False)
    assert gs.unsupported_reason(plain, torch.device("cuda"), 1) is None
    assert "several processes" in gs.unsupported_reason(plain, torch.device("cuda"), 2)


def test_labels_are_checked_once_before_capture() -> None:
    gs.check_labels_once(torch.tensor([0, 9, -100]), 10)
    with pytest.raises(ValueError, match=r"lie in \[0, 10\).*found 10"):
        gs.check_labels_once(torch.tensor([0, 10]), 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gs.check_labels_once(torch.empty(0, dtype=torch.long), 2)
