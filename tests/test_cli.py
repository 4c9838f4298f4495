"""The command line reads like the libraries it sits on: subcommands, grouped help, a summary table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jal_trainer import cli
from jal_trainer.arguments import parse_recipe
from jal_trainer.recipes import recipe_names, recipe_path

RECIPE = recipe_path("quickstart")


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
    recipe = yaml.safe_load(RECIPE.read_text())
    loss = next(line.split(None, 1)[1] for line in table if line.split()[:1] == ["loss"])
    assert loss.startswith(f"{recipe['loss_type']} (") and f"{recipe['loss_preset']} preset" in loss
    assert not any(line.split()[:2] == ["training", "labels"] for line in table)  # --noise_type none


def test_the_summary_says_which_loss_auto_chose_and_how_noisy_the_labels_were(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from jal_trainer.run_summary import run_facts

    noise = SimpleNamespace(noise_rate=0.25, num_samples=400)
    assert run_facts(tmp_path, "ce", None, {}, noise, "symmetric") == [
        ("loss", "ce"), ("training labels", "25.0% of 400 wrong (symmetric)")]
    (tmp_path / "loss_selection.json").write_text(json.dumps({"chosen": "gce", "candidates": [{}, {}, {}]}))
    facts = dict(run_facts(tmp_path, "gce", None, {"q": 0.5}, None, "majority-vote"))
    assert facts == {"loss": f"gce (q 0.5), chosen by auto from 3 candidates ({tmp_path / 'loss_selection.json'})"}


def test_jal_recipes_lists_every_packaged_recipe_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == recipe_names() and len(lines) >= 10
    quick = next(line for line in lines if line.startswith("quickstart "))
    assert quick.split(None, 1)[1].startswith("Quickstart: the main job")
    assert all(len(line.split(None, 1)) == 2 and len(line) < 140 for line in lines)


def test_a_bare_config_name_is_a_packaged_recipe_and_a_file_wins(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = ["--output_dir", str(tmp_path / "o")]
    by_name = parse_recipe(["--config", "quickstart", *out])
    assert (by_name == parse_recipe(["--config", "quickstart.yaml", *out])
            == parse_recipe(["--config", str(RECIPE), *out]))
    assert by_name[0].noise_rate == 0.6 and by_name[1].model == "cnn8"
    assert parse_recipe(["--config", "cifar10_sym0.4", *out])[0].noise_rate == 0.4  # a dot in the name
    # a file of that name in the working folder is the user's own recipe, read instead
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart.yaml").write_text(RECIPE.read_text().replace("noise_rate: 0.6", "noise_rate: 0.2"))
    assert parse_recipe(["--config", "quickstart.yaml", *out])[0].noise_rate == 0.2
    assert parse_recipe(["--config", "quickstart", *out])[0].noise_rate == 0.6


def test_the_summary_says_when_there_was_no_wrong_label_to_find(tmp_path: Path) -> None:
    """Clean training labels: no precision/recall line of zeros, but what the flags are."""
    from jal_trainer.run_summary import summary_table

    clean = {"num_flagged": 3, "num_rows": 40, "rule": "class-balanced",
             "report": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "wrong": 0, "flagged": 3}}
    text = summary_table(tmp_path, {"test_accuracy": 0.9}, clean)
    assert "no training label is wrong; the 3 flagged are false alarms" in text and "precision" not in text
    noisy = {**clean, "report": {"precision": 0.5, "recall": 0.25, "f1": 0.333, "wrong": 6, "flagged": 3}}
    assert "precision 0.500, recall 0.250, F1 0.333" in summary_table(tmp_path, {"test_accuracy": 0.9}, noisy)


def test_the_summary_tips_bf16_only_for_float32_fine_tuning_on_a_bf16_cpu(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    from jal_trainer import run_summary

    monkeypatch.setattr(run_summary, "cpu_has_native_bf16", lambda: True)
    tip = run_summary.cpu_bf16_tip("cpu", bf16=False, fp16=False, fine_tuned=True)
    assert tip and "--bf16 true" in tip
    assert "--bf16 true" in run_summary.summary_table(tmp_path, {"test_accuracy": 0.9}, None, tip=tip)
    for device, bf16, fine_tuned in (("cuda", False, True), ("cpu", True, True), ("cpu", False, False)):
        assert run_summary.cpu_bf16_tip(device, bf16=bf16, fp16=False, fine_tuned=fine_tuned) is None
    monkeypatch.setattr(run_summary, "cpu_has_native_bf16", lambda: False)
    assert run_summary.cpu_bf16_tip("cpu", bf16=False, fp16=False, fine_tuned=True) is None
