"""Model cards and Hub pushes: cards parse back, model-index round-trips, pushes upload the right files.

One tiny BERT trains for two epochs on 24 noisy samples (module fixture) and is written as a
`jal train` run folder by the real `write_run`; every Hub call goes to a mock.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset
from huggingface_hub import EvalResult, HfApi, ModelCard, RepoUrl
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
from huggingface_hub.utils import filter_repo_objects
from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

from jal_trainer import JALConfig
from jal_trainer.arguments import DataArguments, ModelArguments
from jal_trainer.hub import (
    HubUnavailableError,
    JALCardData,
    ModelCardMixin,
    base_model_id,
    check_a,
    push_main,
    push_run,
    learning_curve_png,
    noisy_label_accuracy,
    render_card,
    sanitised_recipe,
    sanitised_versions,
)
from jal_trainer.callbacks import MemorisationCallback
from jal_trainer.metrics import compute_metrics_fn
from jal_trainer.noise import noise_report_from_labels, transition_matrix
from jal_trainer.paths import shared_dir
from jal_trainer.trainer import JALTrainer
from jal_trainer.run_outputs import write_run

MINILM = shared_dir() / "models" / "all-MiniLM-L6-v2"
K, PER_CLASS, RATE = 3, 8, 0.25
# Symmetric noise at rate 0.25 on K = 3: Theorem 4.1 gives a >= (K-1) / (K-1-K*rate) = 2 / 1.25.
MIN_A_SYMMETRIC = (K - 1) / (K - 1 - K * RATE)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# `JALTrainer(ModelCardMixin, Trainer)` once the mixin is wired in; until then, the same combination here.
# (`class _T(ModelCardMixin, JALTrainer)` would have no consistent MRO once JALTrainer has the mixin.)
_Trainer = JALTrainer if issubclass(JALTrainer, ModelCardMixin) else type("_Trainer", (ModelCardMixin, JALTrainer), {})


def _noisy_labels() -> tuple[np.ndarray, np.ndarray]:
    """8 samples per class; in each class one sample flips to each other class (realised rate 0.25)."""
    clean = np.repeat(np.arange(K), PER_CLASS)
    noisy = clean.copy()
    for c in range(K):
        first = c * PER_CLASS
        noisy[first] = (c + 1) % K
        noisy[first + 1] = (c + 2) % K
    return clean, noisy


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not MINILM.is_dir():
        pytest.skip(f"needs the MiniLM tokenizer at {MINILM}")
    run = tmp_path_factory.mktemp("runs") / "trec-sym25-jal-ce"
    tokenizer = AutoTokenizer.from_pretrained(str(MINILM))
    clean, noisy = _noisy_labels()
    words = ["apple", "river", "engine"]  # one word per class: learnable in a few steps
    texts = [f"question about {words[c]} number {i}" for i, c in enumerate(clean)]
    encoded = dict(tokenizer(texts, padding="max_length", max_length=12, truncation=True))
    train = Dataset.from_dict({**encoded, "labels": noisy.tolist(), "clean_label": clean.tolist()})
    test = Dataset.from_dict({**encoded, "labels": clean.tolist()})
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=K)  # fmt: skip
    args = JALConfig(output_dir=str(run), loss_type="jal-ce", loss_preset="cifar10", num_train_epochs=2,
                     per_device_train_batch_size=8, eval_strategy="epoch", logging_strategy="epoch",
                     save_strategy="no", learning_rate=0.1, report_to=[], use_cpu=True, seed=0)  # fmt: skip
    trainer = _Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=train,
                       eval_dataset=test, processing_class=tokenizer, compute_metrics=compute_metrics_fn())  # fmt: skip
    trainer.add_callback(MemorisationCallback(train, trainer=trainer, label_column="labels"))  # memorisation.json
    trainer.train()
    test_accuracy = trainer.evaluate(metric_key_prefix="test")["test_accuracy"]
    noisy_accuracy = trainer.evaluate(train, metric_key_prefix="noisy")["noisy_accuracy"]  # labels = noisy ones
    metrics = {"test_accuracy": test_accuracy, "train_noisy_label_accuracy": noisy_accuracy}
    report = noise_report_from_labels(clean, noisy, T=transition_matrix("symmetric", RATE, K))
    data_args = DataArguments(dataset="trec", noise_type="symmetric", noise_rate=RATE, noise_seed=0)
    write_run(trainer, data_args, ModelArguments(model="${shared}/models/all-MiniLM-L6-v2"), args, metrics, report)
    return {"run": run, "trainer": trainer, "metrics": metrics, "train": train}


@pytest.fixture
def run_copy(trained: dict[str, Any], tmp_path: Path) -> Path:
    """A private copy of the run folder (with a checkpoint that must not be uploaded)."""
    copy = tmp_path / trained["run"].name
    shutil.copytree(trained["run"], copy)
    (copy / "checkpoint-3").mkdir()
    (copy / "checkpoint-3" / "optimizer.pt").write_bytes(b"x")
    return copy


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}  # fmt: skip


def expected_results(run: Path, split_metrics: dict[str, float]) -> list[EvalResult]:
    """The model-index entries a card of this run must hold, written out independently of hub.py."""
    common = dict(
        task_type="text-classification",
        dataset_type="CogComp/trec",
        dataset_name="TREC-6, symmetric noise 0.25",
        dataset_args={"noise_type": "symmetric", "noise_rate": RATE, "noise_seed": 0, "realised_noise_rate": RATE},
        metric_type="accuracy",
    )
    return [
        EvalResult(**common, dataset_split="test", metric_value=round(split_metrics["test_accuracy"], 4),
                   metric_name="Clean test accuracy"),
        EvalResult(**common, dataset_split="train", metric_value=round(split_metrics["train_noisy_label_accuracy"], 4),
                   metric_name="Accuracy on the noisy training labels"),
    ]  # fmt: skip


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave offline mode for a mocked push (the test session itself runs with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def no_call(name: str) -> mock.Mock:
    return mock.Mock(side_effect=AssertionError(f"HfApi.{name} must not be called"))


# ---- cards ----------------------------------------------------------------------------------------


def test_card_parses_back_and_model_index_round_trips(trained: dict[str, Any], tmp_path: Path) -> None:
    run = trained["run"]
    path = render_card(run, tmp_path / "model_cards" / "tiny.md")
    card = ModelCard.load(path)
    expected = expected_results(run, json.loads((run / "metrics.json").read_text()))
    assert card.data.eval_results == expected
    assert card.data.model_name == run.name
    # model-index -> EvalResults -> model-index is the identity
    index = card.data.to_dict()["model-index"]
    name, results = model_index_to_eval_results(index)
    assert (name, results) == (run.name, expected)
    assert eval_results_to_model_index(name, results) == index
    # a saved-and-reloaded card holds the same metadata
    assert ModelCard(str(card)).data.to_dict() == card.data.to_dict()


def test_card_metadata(trained: dict[str, Any]) -> None:
    data = JALCardData.from_run(trained["run"], license="apache-2.0").card_data().to_dict()
    assert data["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert data["datasets"] == ["CogComp/trec"]
    assert data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "text-classification"
    assert data["tags"][:4] == ["noisy-labels", "jal-trainer", "robust-loss", "jal-ce"]


def test_card_records_noise_loss_a_check_plot_and_citation(trained: dict[str, Any], tmp_path: Path) -> None:
    run = trained["run"]
    path = render_card(run, tmp_path / "model_cards" / "tiny.md", repo_id="me/tiny")
    text = path.read_text()
    assert "Noise model: `symmetric`" in text and "Requested rate: 0.25" in text and "Noise seed: 0" in text
    assert "alpha = 1, beta = 1, a = 30" in text  # the cifar10 preset, resolved
    assert f"a = 30 >= {MIN_A_SYMMETRIC:.4g}" in text and "noise tolerant" in text
    assert "@inproceedings{" in text and "2507.17692" in text and "Joint Asymmetric Loss" in text
    assert 'model="me/tiny"' in text
    # the plot beside the card, and the one written into the run folder
    assert "![Learning curve: loss and clean test accuracy per epoch](tiny.png)" in text
    assert (tmp_path / "model_cards" / "tiny.png").read_bytes().startswith(PNG_MAGIC)
    assert (run / "learning_curve.png").read_bytes().startswith(PNG_MAGIC)
    assert "\n\n\n" not in text


def test_learning_curve_png(trained: dict[str, Any]) -> None:
    history = json.loads((trained["run"] / "trainer_state.json").read_text())["log_history"]
    assert learning_curve_png(history).startswith(PNG_MAGIC)
    assert learning_curve_png([]) is None


def test_memorisation_is_read_from_the_callback_file(trained: dict[str, Any], run_copy: Path) -> None:
    """Without the metric in metrics.json, the noisy-label accuracy comes from memorisation.json's last
    row, and equals what `Trainer.evaluate` measured on the training set with its noisy labels."""
    metrics = json.loads((run_copy / "metrics.json").read_text())
    noisy_accuracy = metrics.pop("train_noisy_label_accuracy")
    (run_copy / "metrics.json").write_text(json.dumps(metrics))
    data = JALCardData.from_run(run_copy)
    assert data.noisy_label_accuracy == pytest.approx(noisy_accuracy)
    rows = json.loads((run_copy / "memorisation.json").read_text())["rows"]
    # the two fractions differ, so the weighting by the number of wrong labels matters
    assert rows[-1]["noisy_memorised"] != rows[-1]["clean_fit"]
    assert data.memorisation == rows[-1]["noisy_memorised"]
    text = str(data.to_model_card())
    assert "Memorisation of the wrong training labels" in text and "wrong label memorised" in text
    assert "![Memorisation of the wrong training labels](memorisation.png)" in text


@pytest.mark.parametrize(
    "row, n, wrong, expected",
    [
        ({"noisy_memorised": 0.5, "clean_fit": 1.0}, 10, 4, (4 * 0.5 + 6 * 1.0) / 10),
        ({"noisy_memorised": None, "clean_fit": 0.9}, 10, 0, 0.9),  # no wrong label
        ({"noisy_memorised": 0.25, "clean_fit": None}, 8, 8, 0.25),  # every label wrong
        ({"noisy_memorised": None, "clean_fit": 0.9}, 10, 3, None),  # not measured
    ],
)
def test_noisy_label_accuracy_from_a_memorisation_row(row: dict, n: int, wrong: int, expected: float | None) -> None:
    assert noisy_label_accuracy(row, n, wrong) == (pytest.approx(expected) if expected is not None else None)


A_CASES = [
    # (loss, params, noise report, status, bound)
    ("jal-ce", {"a": 30.0}, {"min_a": 9.0, "min_a_source": "requested"}, "ok", 9.0),
    ("jal-fl", {"a": 5.0}, {"min_a": 9.0, "min_a_source": "requested"}, "too-small", 9.0),
    ("amse", {"a": 30.0}, {"min_a": None, "binding_class": 2}, "no-admissible-a", None),
    ("nce+rce", {"alpha": 1.0, "beta": 1.0}, {"min_a": 9.0}, "not-applicable", None),
    ("jal-ce", {"a": 30.0}, {}, "unknown", None),
    # no min_a in the report: computed from the realised matrix, symmetric 0.4 on K = 10 -> 9 / 5
    ("jal-ce", {"a": 2.0}, {"realised_T": transition_matrix("symmetric", 0.4, 10).tolist()}, "ok", 9 / 5),
    ("jal-ce", {"a": 1.5}, {"realised_T": transition_matrix("symmetric", 0.4, 10).tolist()}, "too-small", 9 / 5),
    # pair-flip 0.4 -> 1 / (1 - 2 * 0.4); a class absent from the training set (None row) is ignored
    ("jal-ce", {"a": 6.0}, {"realised_T": transition_matrix("pairflip", 0.4, 3).tolist()[:2] + [[None] * 3]},
     "ok", 5.0),
]  # fmt: skip


@pytest.mark.parametrize("loss, params, report, status, bound", A_CASES)
def test_theorem_4_1_check(loss: str, params: dict, report: dict, status: str, bound: float | None) -> None:
    result = check_a(loss, params, report)
    assert result.status == status
    if bound is not None:
        assert result.min_a == pytest.approx(bound)
    assert result.text  # every status has a sentence for the card


@pytest.mark.parametrize(
    "model, expected",
    [
        ("${shared}/models/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
        ("/elsewhere/all-MiniLM-L6-v2/", "sentence-transformers/all-MiniLM-L6-v2"),
        ("cnn8", None),
        ("google-bert/bert-base-uncased", "google-bert/bert-base-uncased"),
        ("./my-checkpoint", None),
    ],
)
def test_base_model_id(model: str, expected: str | None) -> None:
    assert base_model_id(model) == expected


def test_card_of_a_run_without_recipe_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="recipe.yaml"):
        JALCardData.from_run(tmp_path)


def test_create_model_card_from_a_live_trainer(trained: dict[str, Any], tmp_path: Path) -> None:
    """Without a run folder the card measures the noise from the clean_label column."""
    trainer = trained["trainer"]
    original = trainer.args.output_dir
    trainer.args.output_dir = str(tmp_path)
    try:
        trainer.create_model_card(noise_type="symmetric", noise_rate=RATE, noise_seed=0, dataset="trec")
    finally:
        trainer.args.output_dir = original
    card = ModelCard.load(tmp_path / "README.md")
    assert "generated_from_trainer" in card.data.tags  # kept from the Trainer's own card
    result = card.data.eval_results[0]
    assert result.metric_value == round(trained["metrics"]["test_accuracy"], 4)  # the logged test_accuracy
    assert result.dataset_args["realised_noise_rate"] == RATE  # 6 of 24 labels flipped
    assert "train_batch_size: 8" in card.text  # the Trainer's hyper-parameter list
    assert (tmp_path / "learning_curve.png").read_bytes().startswith(PNG_MAGIC)


def test_card_command_through_the_cli(trained: dict[str, Any], tmp_path: Path) -> None:
    from jal_trainer.cli import main

    out = tmp_path / "model_cards" / "x.md"
    assert main(["card", str(trained["run"]), "--out", str(out), "--model-name", "x"]) == 0
    assert ModelCard.load(out).data.model_name == "x"
    # an existing card is not replaced without --overwrite
    out.write_text("my notes")
    assert main(["card", str(trained["run"]), "--out", str(out), "--model-name", "y"]) == 2
    assert out.read_text() == "my notes"
    assert main(["card", str(trained["run"]), "--out", str(out), "--model-name", "y", "--overwrite"]) == 0
    assert ModelCard.load(out).data.model_name == "y"


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
