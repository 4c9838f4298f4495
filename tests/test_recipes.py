"""Every recipe runs (a few steps), bad configuration fails early, two processes equal one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from jal_trainer.paths import shared_dir
from jal_trainer.train import main

sys.path.insert(0, str(Path(__file__).parent))
from recipe_runs import RECIPES, RECIPE_RUNS, recipe_argv, tiny_run_warnings  # noqa: E402

ALL_RECIPES = sorted(p.stem for p in RECIPES.glob("*.yaml"))
needs_shared = pytest.mark.skipif(not (shared_dir() / "data").is_dir(), reason="../shared/data is not here")


def short_run(name: str, out: Path, *extra: str) -> dict:
    argv = recipe_argv(name, out, per_device_batch=8, accumulation=1, max_steps=2)
    return main([*argv, "--train_subset", "64", "--test_subset", "32", *extra])


def uses_shared(name: str) -> bool:
    return "${shared}" in (RECIPES / f"{name}.yaml").read_text()


# One text recipe fine-tunes the whole encoder; the others check their data and noise through the
# frozen-encoder path, which skips the backward pass through MiniLM and the 90 MB save.
FULL_FINE_TUNE = "sst2_sym0.4"


@pytest.mark.parametrize("name", ALL_RECIPES)
def test_every_recipe_trains_and_writes_its_run(name: str, tmp_path: Path) -> None:
    if uses_shared(name) and not (shared_dir() / "data").is_dir():
        pytest.skip("../shared/data is not here")
    text = "models/all-MiniLM" in (RECIPES / f"{name}.yaml").read_text()
    extra = ["--freeze_encoder", "true"] if text and name != FULL_FINE_TUNE else []
    with tiny_run_warnings(tmp_path):
        metrics = short_run(name, tmp_path, *extra)
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    recipe = yaml.safe_load((tmp_path / "recipe.yaml").read_text())
    written = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    assert recipe["loss_type"] == written["loss_type"] and recipe["max_steps"] == 2
    report = json.loads((tmp_path / "noise_report.json").read_text())
    assert 0.0 <= report["noise_rate"] <= 1.0
    assert {"torch", "transformers", "datasets"} <= set(json.loads((tmp_path / "versions.json").read_text()))
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()


def test_quickstart_needs_nothing_from_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first command: runs with the package alone and reloads with the Auto classes."""
    monkeypatch.setenv("JAL_SHARED_DIR", str(tmp_path / "nowhere"))
    metrics = main([*recipe_argv("quickstart", tmp_path / "run", per_device_batch=32, accumulation=1, max_steps=12),
                    "--track_memorisation", "true", "--train_subset", "320", "--num_train_epochs", "1",
                    "--eval_strategy", "epoch"])
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    memorisation = json.loads((tmp_path / "run" / "memorisation.json").read_text())
    assert memorisation["rows"] and 0.0 <= memorisation["rows"][-1]["noisy_memorised"] <= 1.0
    # label issues from the same pass: one CSV row per training example, a summary with the report
    issues = json.loads((tmp_path / "run" / "label_issues.json").read_text())
    assert issues["rule"] == "class-balanced" and issues["num_rows"] == 320
    import csv

    with open(tmp_path / "run" / "label_issues.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["index"]) for r in table] == list(range(320))
    assert sum(r["is_label_issue"] == "True" for r in table) == issues["num_flagged"]
    wrong = sum(r["label"] != r["clean_label"] for r in table)
    assert issues["report"]["wrong"] == wrong > 0
    from transformers import AutoModelForImageClassification

    import jal_trainer.models  # noqa: F401  (registers the vision classes with the Auto classes)

    model = AutoModelForImageClassification.from_pretrained(tmp_path / "run")
    assert model.config.model_type == "jal-cnn8" and model.config.num_labels == 10


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--noise_type", "gaussian"], "noise_type"),
        (["--noise_rate", "1.5"], "noise_rate"),
        (["--noise_sampler", "poisson"], "noise_sampler"),
        (["--label_issue_rule", "vote"], "label_issue_rule"),
        (["--loss_type", "jal-xx"], "jal-ce"),
        (["--dataset", "cifar10", "--data_path", "/nonexistent/cifar.npz"], "cifar"),
    ],
)
def test_bad_configuration_fails_before_training(extra: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        short_run("quickstart", tmp_path, *extra)
    assert not (tmp_path / "model.safetensors").exists()


def test_exact_sampler_on_small_classes_warns_and_iid_realises_the_rate(tmp_path: Path) -> None:
    # 64 digits, ~6 per class: floor(0.4 / 9 * 6) = 0 flips per class pair with the exact sampler
    with pytest.warns(UserWarning, match="noise_sampler"):
        short_run("quickstart", tmp_path / "exact", "--noise_rate", "0.4")
    with tiny_run_warnings(tmp_path / "iid"):
        short_run("quickstart", tmp_path / "iid", "--noise_rate", "0.4", "--noise_sampler", "iid")
    realised = json.loads((tmp_path / "iid" / "noise_report.json").read_text())["noise_rate"]
    assert 0.2 < realised < 0.6


def test_unknown_recipe_field_is_named(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text((RECIPES / "quickstart.yaml").read_text() + "learning_rte: 0.1\n")
    with pytest.raises(ValueError, match="'learning_rte'.*'learning_rate'"):
        main(["--config", str(recipe), "--output_dir", str(tmp_path / "o")])


def test_model_without_a_classification_head_is_refused(tmp_path: Path) -> None:
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(
        tmp_path / "vit"
    )
    with pytest.raises(ValueError, match="model=.*no sequence-classification head"):
        short_run("trec_sym0.4", tmp_path / "o", "--model", str(tmp_path / "vit"))


def trainable_weights(run: Path) -> dict:
    weights = load_file(run / "model.safetensors")
    # BatchNorm running statistics are buffers, synchronised from rank 0 by DDP: not compared
    return {k: v for k, v in weights.items() if "running_" not in k and "num_batches_tracked" not in k}


@needs_shared
@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path: Path) -> None:
    """Vision and text recipes on 2 CPU processes (batch 8 each) equal 1 process (batch 8 x 2 steps)."""
    script = Path(__file__).parent / "dist_recipes.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           str(script), str(tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    # the failing rank's own traceback, which the launcher's summary at the end pushes out of a plain tail
    rank_lines = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("[rank"))
    assert proc.returncode == 0, rank_lines[-6000:] or proc.stderr[-4000:]
    for name in RECIPE_RUNS:
        digests = {(tmp_path / "two" / f"{name}.rank{r}").read_text() for r in (0, 1)}
        assert len(digests) == 1, f"{name}: the two processes built different noisy labels"
        one = tmp_path / "one" / name
        with tiny_run_warnings(one):
            main(recipe_argv(name, one, per_device_batch=8, accumulation=2))
        a, b = trainable_weights(one), trainable_weights(tmp_path / "two" / name)
        assert a.keys() == b.keys()
        worst = max((a[k] - b[k]).abs().max().item() for k in a)
        assert worst <= 1e-5, f"{name}: weights differ by {worst}"
