"""jal clean: retrain a run without (or with relabelled) flagged rows, into a new folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from jal_trainer.clean import clean_run, edit_rows
from jal_trainer.cli import main as jal
from jal_trainer.recipes import recipe_path
from jal_trainer.train import main as train

TINY = ["--train_subset", "200", "--test_subset", "50", "--num_train_epochs", "2", "--per_device_train_batch_size",
        "50", "--eval_strategy", "no", "--logging_strategy", "no", "--disable_tqdm", "true",
        "--find_label_issues", "true", "--track_memorisation", "false"]


@pytest.mark.filterwarnings("ignore:Theorem 4.1")  # 60% noise on a tiny subset: not what this tests
def test_jal_clean_retrains_without_the_flagged_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    train(["--config", str(recipe_path("quickstart")), "--output_dir", str(run), *TINY])
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    issues = json.loads((run / "label_issues.json").read_text())
    assert issues["num_flagged"] > 0
    assert jal(["clean", str(run), "--num_train_epochs", "1"]) == 0
    assert "dropped" in capsys.readouterr().out
    new = tmp_path / "run-clean-drop"
    result = json.loads((new / "clean.json").read_text())
    assert result["dropped"] == issues["num_flagged"] and result["relabelled"] == 0
    # the new run trained on the kept rows only: its own label issues cover 200 - flagged rows
    assert json.loads((new / "label_issues.json").read_text())["num_rows"] == 200 - issues["num_flagged"]
    assert result["wrong_after"] == result["wrong_before"] - result["dropped_truly_wrong"]
    # the new run's noise report is of the rows it trained on, not of the source run's
    report = json.loads((new / "noise_report.json").read_text())
    assert report["num_samples"] == 200 - issues["num_flagged"]
    assert round(report["noise_rate"] * report["num_samples"]) == result["wrong_after"]
    # and its card says how it came about
    from jal_trainer.hub import render_card

    card = render_card(new).read_text()
    assert "after `jal clean`" in card and f"the run `{run}`" in card
    assert f"{result['wrong_before']} before, {result['wrong_after']} after" in card
    assert 0.0 <= result["test_accuracy"] <= 1.0 and (new / "recipe.yaml").is_file()
    # the original run is untouched, and the same target is refused rather than overwritten
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    with pytest.raises(FileExistsError, match="is not empty"):
        clean_run(run, output_dir=new)
    with pytest.raises(ValueError, match="original run is kept"):
        clean_run(run, output_dir=run)


def test_rescore_with_another_run_averages_their_probabilities(tmp_path: Path) -> None:
    from jal_trainer.clean import read_issue_table, rescore
    from jal_trainer.label_issues import score_label_issues

    runs = []
    for loss in ("jal-ce", "ce"):
        runs.append(tmp_path / loss)
        train(["--config", str(recipe_path("quickstart")), "--output_dir", str(runs[-1]), "--loss_type", loss, *TINY])
    table = read_issue_table(runs[0])
    both = rescore(table, runs, "class-balanced")
    probs = []
    for run in runs:
        with np.load(run / "epoch_probabilities.npz") as saved:
            probs.append(saved["sum"] / saved["epochs"])
    expected = score_label_issues(np.mean([p / p.sum(1, keepdims=True) for p in probs], axis=0), table["label"])[1]
    assert both["is_label_issue"].tolist() == expected.tolist()
    (runs[1] / "label_issues.csv").write_text("index,label,is_label_issue,predicted_label\n0,0,True,1\n")
    with pytest.raises(ValueError, match="other rows"):
        rescore(table, runs, "class-balanced")


def table_for(labels: np.ndarray, flagged: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    return {"index": np.arange(len(labels)), "label": labels, "is_label_issue": flagged, "predicted_label": predicted}


def test_relabel_rule_and_mismatch_check() -> None:
    names = ClassLabel(names=["a", "b", "c"])
    clean = np.array([0, 1, 2, 0, 1])
    labels = np.array([0, 2, 2, 1, 1])  # rows 1 and 3 wrong
    data = Dataset.from_dict({"x": [0.0] * 5, "label": labels, "clean_label": clean},
                             features=Features({"x": Value("float32"), "label": names, "clean_label": names}))
    flagged = np.array([False, True, False, True, True])
    predicted = np.array([0, 1, 2, 2, 1])  # row 4: flagged but predicted as its own label -> dropped
    out, counts = edit_rows(data, table_for(labels, flagged, predicted), "relabel")
    assert out["label"][:] == [0, 1, 2, 2] and out.features["label"] == names
    assert counts == {"rows": 5, "flagged": 3, "dropped": 1, "relabelled": 2, "dropped_for_batch": 0,
                      "wrong_before": 2, "dropped_truly_wrong": 0, "relabelled_to_clean": 1, "wrong_after": 1}
    # 4 kept rows in batches of 3 leave a batch of one: the most suspicious kept row goes too
    scored = {**table_for(labels, flagged, predicted), "label_issue_score": np.array([0.1, 0.9, 0.5, 0.8, 0.7])}
    out, counts = edit_rows(data, scored, "relabel", batch_size=3)
    assert counts["dropped"] == 2 and counts["dropped_for_batch"] == 1 and out["label"][:] == [0, 2, 2]
    with pytest.raises(ValueError, match="does not match label_issues.csv"):
        edit_rows(data, table_for(labels[::-1].copy(), flagged, predicted), "drop")


def test_clean_refuses_a_run_without_label_issues(tmp_path: Path) -> None:
    (tmp_path / "recipe.yaml").write_text("dataset: digits\n")
    with pytest.raises(FileNotFoundError, match="find_label_issues"):
        clean_run(tmp_path)
    with pytest.raises(ValueError, match="action"):
        clean_run(tmp_path, action="fix")
