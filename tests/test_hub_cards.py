"""Model cards of a run: cards parse back, the model-index round-trips, the Theorem 4.1 check and the plots.

Every test reads the tiny trained run of tests/hub_run.py (fixture `trained`, tests/conftest.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

from jal_trainer.hub import JALCardData, base_model_id, check_a, learning_curve_png, noisy_label_accuracy, render_card
from jal_trainer.noise import transition_matrix

sys.path.insert(0, str(Path(__file__).parent))
from hub_run import MIN_A_SYMMETRIC, PNG_MAGIC, RATE, expected_results  # noqa: E402


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


def test_create_model_card_of_a_data_set_built_in_memory(trained: dict[str, Any], tmp_path: Path) -> None:
    """No dataset= and a training set without a builder name (Dataset.from_dict): TrainingSummary gives [None]."""
    trainer = trained["trainer"]
    assert not trainer.train_dataset.info.dataset_name and not getattr(trainer.train_dataset, "builder_name", None)
    original = trainer.args.output_dir
    trainer.args.output_dir = str(tmp_path)
    try:
        trainer.create_model_card()  # raised TypeError in dataset_names(None) before
    finally:
        trainer.args.output_dir = original
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.eval_results[0].dataset_name.startswith("unknown")
    assert "This is a text classifier" in card.text


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
