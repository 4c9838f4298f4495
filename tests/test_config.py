"""JALConfig: read from YAML and the command line, validated at creation."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
import torch
from transformers import HfArgumentParser

from jal_trainer import JALConfig
from jal_trainer.config import LOSS_PARAM_FIELDS

JAL_FIELDS = ("loss_type", "loss_preset", *LOSS_PARAM_FIELDS, "l1_weight_decay", "analysis_columns")


def test_every_loss_field_has_a_one_line_help() -> None:
    fields = {f.name: f for f in dataclasses.fields(JALConfig)}
    for name in JAL_FIELDS:
        text = fields[name].metadata.get("help", "")
        assert text and "\n" not in text, name


def test_yaml_and_command_line(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("output_dir: out\nloss_type: jal-fl\nloss_preset: cifar10\nalpha: 2.0\nl1_weight_decay: 5.0e-5\n")
    (args,) = HfArgumentParser(JALConfig).parse_yaml_file(str(recipe))
    assert (args.loss_type, args.loss_preset, args.alpha, args.l1_weight_decay) == ("jal-fl", "cifar10", 2.0, 5e-5)
    assert args.beta is None and args.a is None

    (cli,) = HfArgumentParser(JALConfig).parse_args_into_dataclasses(
        ["--output_dir", "o", "--loss_type", "nce+rce", "--alpha", "1", "--beta", "1"]
    )
    assert cli.loss_type == "nce+rce" and cli.loss_kwargs() == {"alpha": 1.0, "beta": 1.0}


def test_loss_is_built_from_preset_and_overrides() -> None:
    loss = JALConfig(output_dir="o", loss_type="jal-ce", loss_preset="cifar10", a=20.0).build_loss()
    assert loss.hparams["a"] == 20.0 and loss.hparams["alpha"] == 1.0 and loss.hparams["beta"] == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"loss_type": "jal-xx"}, "jal-ce"),
        ({"loss_type": "jal-ce", "loss_preset": "imagenet"}, "cifar10"),
        ({"loss_type": "jal-ce", "a": 1.0}, "a"),
        ({"loss_type": "gce", "q": 0.0}, "q"),
        ({"loss_type": "ce", "l1_weight_decay": -1.0}, "l1_weight_decay"),
    ],
)
def test_bad_configuration_fails_at_creation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JALConfig(output_dir="o", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the case of a machine whose only device is the CPU")
def test_bf16_on_a_cpu_that_emulates_it_warns_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jal_trainer import run_summary

    monkeypatch.setattr(run_summary, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match=r"14x slower.*--bf16 false"):
        JALConfig(output_dir=str(tmp_path), loss_type="ce", bf16=True)
    monkeypatch.setattr(run_summary, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert JALConfig(output_dir=str(tmp_path), loss_type="ce", bf16=True).use_cpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="the case of a machine whose only device is the CPU")
def test_bf16_without_a_gpu_trains_on_the_cpu(tmp_path: Path) -> None:
    # TrainingArguments alone raises "You need to assign use_cpu"; the CPU is the only device here.
    args = JALConfig(output_dir=str(tmp_path), loss_type="ce", bf16=True)
    assert args.use_cpu and args.bf16 and args.device.type == "cpu"
    assert not JALConfig(output_dir=str(tmp_path), loss_type="ce").use_cpu  # float32 runs are left alone


@pytest.mark.skipif(torch.cuda.is_available(), reason="the case of a machine whose only device is the CPU")
def test_a_cpu_only_run_does_not_pin_memory(tmp_path: Path) -> None:
    # pinned memory only helps copies to an accelerator; torch warns on every CPU DataLoader that asks for it
    import warnings

    from jal_trainer import JALTrainer

    args = JALConfig(output_dir=str(tmp_path), loss_type="ce", num_train_epochs=1, per_device_train_batch_size=4,
                     report_to=[], save_strategy="no", disable_tqdm=True, remove_unused_columns=False)
    assert args.dataloader_pin_memory is False
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    rows = [{"x": torch.randn(3), "labels": i % 2} for i in range(8)]

    def collate(batch: list[dict]) -> dict[str, torch.Tensor]:
        return {"x": torch.stack([r["x"] for r in batch]), "labels": torch.tensor([r["labels"] for r in batch])}

    trainer = JALTrainer(model=model, args=args, train_dataset=rows, data_collator=collate)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*pin_memory.*")
        next(iter(trainer.get_train_dataloader()))
