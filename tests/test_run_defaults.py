"""Defaults that depend on the model: a frozen encoder's head gets the probe schedule unless one is set."""

from __future__ import annotations

from pathlib import Path

from jal_trainer import JALConfig
from jal_trainer.arguments import ModelArguments
from jal_trainer.run_defaults import PROBE_SCHEDULE, probe_defaults


def test_a_frozen_encoder_gets_the_probe_schedule_unless_one_is_set(tmp_path: Path) -> None:
    frozen = ModelArguments(model="enc", freeze_encoder=True)
    args = probe_defaults(frozen, JALConfig(output_dir=str(tmp_path), loss_type="ce"))
    assert (args.learning_rate, args.num_train_epochs) == (PROBE_SCHEDULE["learning_rate"], 20.0)
    assert args.per_device_train_batch_size == 8  # the batch also sets how processes split an update: kept
    kept = probe_defaults(frozen, JALConfig(output_dir=str(tmp_path), loss_type="ce", learning_rate=3e-3,
                                            num_train_epochs=5))
    assert (kept.learning_rate, kept.num_train_epochs) == (3e-3, 5)
    tuned = probe_defaults(ModelArguments(model="enc"), JALConfig(output_dir=str(tmp_path), loss_type="ce"))
    assert (tuned.learning_rate, tuned.num_train_epochs) == (5e-5, 3.0)  # fine-tuning keeps the Trainer's


def test_auto_fine_tuning_a_pretrained_encoder_adds_jal_ce_clean_to_its_candidates(tmp_path: Path) -> None:
    from jal_trainer.auto import DEFAULT_CANDIDATES, check_auto_settings
    from jal_trainer.run_defaults import default_candidates

    def auto(**kw: object) -> JALConfig:
        return JALConfig(output_dir=str(tmp_path), loss_type="auto", **kw)

    tuned = default_candidates(ModelArguments(model="enc"), auto())
    assert tuned.auto_candidates == [*DEFAULT_CANDIDATES, "jal-ce+clean"]
    assert [c.label for c in check_auto_settings(tuned)][-1] == "jal-ce+clean"
    assert default_candidates(ModelArguments(model="enc", freeze_encoder=True), auto()).auto_candidates is None
    assert default_candidates(ModelArguments(model="resnet34"), auto()).auto_candidates is None  # from scratch
    assert default_candidates(ModelArguments(model="enc"), auto(auto_candidates=["gce"])).auto_candidates == ["gce"]
    assert default_candidates(ModelArguments(model="enc"), JALConfig(output_dir=str(tmp_path),
                                                                     loss_type="ce")).auto_candidates is None
