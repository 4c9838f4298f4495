"""Hub pushes of a run: the right files are uploaded, nothing local leaks, bad runs and offline mode fail fast.

Every Hub call goes to a mock; the run is a copy of the tiny trained run of tests/hub_run.py.
"""

from __future__ import annotations

import json
import sys
import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
import yaml
from huggingface_hub import HfApi, ModelCard, RepoUrl
from huggingface_hub.utils import filter_repo_objects
from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from jal_trainer.hub import HubUnavailableError, push_main, push_run, sanitised_recipe, sanitised_versions

sys.path.insert(0, str(Path(__file__).parent))
from hub_run import K, MINILM, PNG_MAGIC, expected_results, no_call, snapshot  # noqa: E402


# ---- pushes -------------------------------------------------------------------------------------


def test_push_run_uploads_model_tokenizer_records_and_card(online: None, run_copy: Path, tmp_path: Path) -> None:
    before = snapshot(run_copy)
    with mock.patch.object(HfApi, "whoami", return_value={"name": "me"}), \
         mock.patch.object(HfApi, "create_repo", return_value=RepoUrl("https://huggingface.co/me/tiny")) as create, \
         mock.patch.object(HfApi, "create_commit", return_value="commit") as commit:  # fmt: skip
        push_run(run_copy, "me/tiny", token="hf_test", private=True)

    assert create.call_args.args[0] == "me/tiny" and create.call_args.kwargs["private"] is True
    operations = {op.path_in_repo: op for op in commit.call_args.kwargs["operations"]}
    assert set(operations) == {
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
        "learning_curve.png", "recipe.yaml", "metrics.json", "noise_report.json", "versions.json", "trainer_state.json",
        "memorisation.json", "memorisation.png",
    }  # fmt: skip
    readme = ModelCard(operations["README.md"].path_or_fileobj.decode())
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert readme.data.eval_results == expected_results(run_copy, metrics)
    assert readme.data.model_name == "tiny"
    assert operations["learning_curve.png"].path_or_fileobj.startswith(PNG_MAGIC)
    assert snapshot(run_copy) == before  # pushing never writes into the run folder

    # the uploaded files load back as the trained model and tokenizer
    hub = tmp_path / "hub"
    hub.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(operations[name].path_or_fileobj, hub / name)
    model = AutoModelForSequenceClassification.from_pretrained(hub)
    tokenizer = AutoTokenizer.from_pretrained(hub)
    original = AutoModelForSequenceClassification.from_pretrained(run_copy)
    batch = tokenizer(["question about river", "engine"], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, original(**batch).logits)


def test_trainer_push_to_hub_uses_the_card(online: None, trained: dict[str, Any], run_copy: Path) -> None:
    """`Trainer.push_to_hub` calls our create_model_card, then upload_folder on output_dir."""
    uploads: list[dict[str, Any]] = []

    def upload_folder(self: HfApi, **kwargs: Any) -> str:
        folder = Path(kwargs["folder_path"])
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        ignore = list(kwargs.get("ignore_patterns") or []) + DEFAULT_IGNORE_PATTERNS
        kept = list(filter_repo_objects(files, allow_patterns=kwargs.get("allow_patterns"), ignore_patterns=ignore))
        uploads.append({"files": kept, "readme": (folder / "README.md").read_text(), "repo_id": kwargs["repo_id"]})
        return "commit"

    trainer = trained["trainer"]
    original = trainer.args.output_dir
    trainer.args.output_dir = str(run_copy)
    try:
        with mock.patch.object(HfApi, "whoami", return_value={"name": "me"}), \
             mock.patch.object(HfApi, "create_repo", return_value=RepoUrl("https://huggingface.co/me/tiny")), \
             mock.patch.object(HfApi, "model_info", no_call("model_info")), \
             mock.patch.object(HfApi, "upload_folder", upload_folder):  # fmt: skip
            trainer.hub_model_id = None
            trainer.push_to_hub(token="hf_test", license="apache-2.0")
    finally:
        trainer.args.output_dir = original
        trainer.hub_model_id = None

    (upload,) = uploads
    assert upload["repo_id"] == "me/tiny"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"):
        assert name in upload["files"]
    assert not any(f.startswith("checkpoint-") for f in upload["files"])
    card = ModelCard(upload["readme"])
    assert card.data.license == "apache-2.0"
    assert card.data.eval_results == expected_results(run_copy, json.loads((run_copy / "metrics.json").read_text()))
    assert {"noisy-labels", "jal-trainer", "jal-ce", "generated_from_trainer"} <= set(card.data.tags)


def test_push_offline_fails_fast_and_leaves_the_run_untouched(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = snapshot(run_copy)
    with mock.patch.object(HfApi, "whoami", no_call("whoami")), \
         mock.patch.object(HfApi, "create_repo", no_call("create_repo")), \
         mock.patch.object(HfApi, "create_commit", no_call("create_commit")):  # fmt: skip
        code = push_main([str(run_copy), "--repo-id", "me/tiny", "--token", "hf_test"])
    assert code == 1
    assert "Offline mode" in capsys.readouterr().err
    assert snapshot(run_copy) == before


def test_push_without_token_fails_fast(
    online: None, run_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("jal_trainer.hub.push.get_token", lambda: None)
    before = snapshot(run_copy)
    with mock.patch.object(HfApi, "whoami", no_call("whoami")), \
         mock.patch.object(HfApi, "create_commit", no_call("create_commit")):  # fmt: skip
        assert push_main([str(run_copy), "--repo-id", "me/tiny"]) == 1
    assert "No Hugging Face token" in capsys.readouterr().err
    assert snapshot(run_copy) == before


def test_push_with_unreachable_hub_fails_before_creating_the_repo(online: None, run_copy: Path) -> None:
    from huggingface_hub.utils import httpx  # the HTTP client the hub library uses

    before = snapshot(run_copy)
    with mock.patch.object(HfApi, "whoami", side_effect=httpx.ConnectError("no route to host")), \
         mock.patch.object(HfApi, "create_repo", no_call("create_repo")):  # fmt: skip
        with pytest.raises(HubUnavailableError, match="Cannot reach"):
            push_run(run_copy, "me/tiny", token="hf_test")
    assert snapshot(run_copy) == before


def test_trainer_push_offline_fails_before_saving(trained: dict[str, Any], run_copy: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    trainer = trained["trainer"]
    original = trainer.args.output_dir
    trainer.args.output_dir = str(run_copy)
    before = snapshot(run_copy)
    try:
        with pytest.raises(HubUnavailableError, match="Offline mode"):
            trainer.push_to_hub(token="hf_test")
    finally:
        trainer.args.output_dir = original
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("broken", ["model.safetensors", "recipe.yaml"])
def test_push_refuses_an_unfinished_run(run_copy: Path, broken: str) -> None:
    (run_copy / broken).unlink()
    with pytest.raises(ValueError, match="not a finished"):
        push_run(run_copy, "me/tiny", token="hf_test")


def test_push_refuses_a_bad_repo_id(run_copy: Path) -> None:
    with pytest.raises(ValueError, match="user/model-name"):
        push_run(run_copy, "not a repo id", token="hf_test")


# ---- vision models (jal_trainer.models, written by another module) -----------------------------


def test_vision_model_pushes_and_loads_back_with_the_package(online: None, tmp_path: Path) -> None:
    """Vision classes load back with from_pretrained once `jal_trainer.models` is imported (no remote code)."""
    models = pytest.importorskip("jal_trainer.models")
    from transformers import AutoModelForImageClassification

    run = tmp_path / "cnn8-run"
    torch.manual_seed(0)
    model = models.build_vision_model("cnn8", num_labels=K, num_channels=3, image_size=32,
                                      id2label={i: str(i) for i in range(K)})  # fmt: skip
    model.save_pretrained(run)
    recipe = {"dataset": "cifar10", "model": "cnn8", "noise_type": "symmetric", "noise_rate": 0.4, "noise_seed": 0,
              "loss_type": "jal-ce", "loss_preset": "cifar10"}  # fmt: skip
    (run / "recipe.yaml").write_text(json.dumps(recipe))  # JSON is YAML
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))

    with mock.patch.object(HfApi, "whoami", return_value={"name": "me"}), \
         mock.patch.object(HfApi, "create_repo", return_value=RepoUrl("https://huggingface.co/me/cnn8")), \
         mock.patch.object(HfApi, "create_commit", return_value="commit") as commit:  # fmt: skip
        push_run(run, "me/cnn8", token="hf_test")
    operations = {op.path_in_repo: op for op in commit.call_args.kwargs["operations"]}
    assert {"config.json", "model.safetensors", "README.md"} <= set(operations)
    card = ModelCard(operations["README.md"].path_or_fileobj.decode())
    assert card.data.eval_results[0].task_type == "image-classification"
    assert card.data.get("base_model") is None  # trained from scratch

    hub = tmp_path / "hub"
    hub.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(operations[name].path_or_fileobj, hub / name)
    loaded = AutoModelForImageClassification.from_pretrained(hub).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=images).logits, model.eval()(pixel_values=images).logits)


# ---- what a push holds ------------------------------------------------------------------------------


def test_push_uploads_only_the_allow_list_without_local_paths(run_copy: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from jal_trainer.cli import main

    (run_copy / "sub").mkdir()
    (run_copy / "sub" / ".env").write_text("SECRET=1")
    (run_copy / "wandb").mkdir()
    (run_copy / "wandb" / "settings").write_text("key")
    (run_copy / "hf_token.txt").write_text("hf_xxx")
    recipe = yaml.safe_load((run_copy / "recipe.yaml").read_text())
    recipe.update(output_dir=str(run_copy), model=str(MINILM), data_path="/home/me/data/trec")
    (run_copy / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    versions = json.loads((run_copy / "versions.json").read_text())
    (run_copy / "versions.json").write_text(json.dumps({**versions, "platform": "Linux-6.1-myhost"}))

    assert main(["push", str(run_copy), "--repo-id", "me/tiny", "--dry-run"]) == 0
    listed = {line.split()[-1]: int(line.split()[0].replace(",", ""))
              for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "recipe.yaml"} <= set(listed)
    assert not {"hf_token.txt", "training_args.bin", "sub/.env", "wandb/settings"} & set(listed)
    assert not any(name.startswith("checkpoint-") for name in listed)
    assert listed["model.safetensors"] == (run_copy / "model.safetensors").stat().st_size

    uploaded = yaml.safe_load(sanitised_recipe(run_copy))
    text = sanitised_recipe(run_copy).decode() + sanitised_versions(run_copy).decode()
    assert str(tmp_path) not in text and "/home/me" not in text and "myhost" not in text
    assert uploaded["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert uploaded["data_path"] == "trec" and uploaded["output_dir"] == run_copy.name


def test_push_refuses_a_link_that_leaves_the_run_folder(run_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{}")
    (run_copy / "metrics.json").unlink()
    (run_copy / "metrics.json").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the run folder"):
        push_run(run_copy, "me/tiny", dry_run=True)
    from jal_trainer.cli import main

    assert main(["push", str(run_copy), "--repo-id", "me/tiny", "--dry-run"]) == 2
