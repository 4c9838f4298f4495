"""The command line reads like the libraries it sits on: subcommands, grouped help, a summary table."""

from __future__ import annotations

from pathlib import Path

import pytest

from jal_trainer import cli

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"


def test_jal_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: jal")
    for name in cli.COMMANDS:
        assert f"    {name} " in out


def test_train_help_shows_our_fields_first_and_training_arguments_last(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: jal train")
    titles = [line.rstrip(":") for line in out.splitlines() if line and not line.startswith(" ") and
              line.endswith(":")]
    assert titles == ["options", "recipe", "data and noise", "model", "loss and run folder",
                      "TrainingArguments (transformers)"]
    ours, theirs = out.split("TrainingArguments (transformers):")
    assert "--noise_rate" in ours and "--loss_type" in ours and "--overwrite_output_dir" in ours
    assert "--learning_rate" in theirs and "--noise_rate" not in theirs


def test_a_run_ends_with_a_summary_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "--config", str(RECIPE), "--output_dir", str(tmp_path / "run"), "--max_steps", "2",
                     "--train_subset", "64", "--test_subset", "20", "--disable_tqdm", "true",
                     "--noise_type", "none"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("jal train: finished"):].splitlines()
    assert table[1].split()[:3] == ["clean", "test", "accuracy"]
    assert any(line.split()[:2] == ["run", "folder"] and line.endswith(str(tmp_path / "run")) for line in table)
