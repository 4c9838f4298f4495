"""`jal report`: plots and report.md from a fake run folder built here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from jal_trainer.report import main, markdown_table, memorisation_table, plot_memorisation

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

ROWS = [
    {"epoch": 1.0, "test_accuracy": 0.41, "noisy_memorised": 0.05, "noisy_true": 0.52, "clean_fit": 0.44,
     "seconds": 0.8},
    {"epoch": 2.0, "test_accuracy": 0.47, "noisy_memorised": 0.07, "noisy_true": 0.58, "clean_fit": 0.51,
     "seconds": 0.7},
]


def fake_run(folder: Path, with_memorisation: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump({"dataset": "cifar10n", "noise_type": "column",
                                                        "loss_type": "jal-ce", "seed": 3, "unused": 1}))
    (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.4725, "test_loss": 1.25}))
    (folder / "noise_report.json").write_text(json.dumps({
        "num_samples": 100, "num_classes": 2, "noise_rate": 0.3, "per_class_rate": [0.2, None],
        "realised_T": [[0.8, 0.2], [None, None]], "min_a": 2.5, "min_a_source": "realised", "binding_class": 0}))
    history = [{"epoch": 1.0, "step": 5, "loss": 2.0, "loss_active": 0.5, "loss_passive": 1.5},
               {"epoch": 1.0, "step": 5, "eval_loss": 1.9, "eval_accuracy": 0.41},
               {"epoch": 2.0, "step": 10, "loss": 1.5, "loss_active": 0.4, "loss_passive": 1.1},
               {"epoch": 2.0, "step": 10, "eval_loss": 1.7, "eval_accuracy": 0.47}]
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    if with_memorisation:
        (folder / "memorisation.json").write_text(json.dumps({"rows": ROWS}))
        (folder / "label_issues.json").write_text(json.dumps({
            "rule": "class-balanced", "probabilities": "mean over 2 epochs of the in-sample softmax",
            "num_rows": 100, "num_flagged": 27, "report": {"precision": 0.8, "recall": 0.72, "f1": 0.7579,
                                                           "flagged": 27, "wrong": 30, "auroc": 0.91, "auprc": 0.83},
            "flag_everything": {"precision": 0.3, "recall": 1.0, "f1": 0.4615, "auroc": 0.5, "auprc": 0.3},
            "top": [{"index": 41, "label": 1, "score": 0.97}, {"index": 7, "label": 0, "score": 0.91}]}))
    return folder


def test_report_writes_plots_and_a_markdown_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = fake_run(tmp_path / "run-a")
    assert main([str(run)]) == 0
    for name in ("memorisation.png", "learning_curve.png"):
        assert (run / name).read_bytes()[:8] == PNG_MAGIC
    text = (run / "report.md").read_text()
    assert text.startswith("# Run report: run-a")
    assert "| loss_type | jal-ce |" in text and "unused" not in text  # only the listed recipe fields
    assert "| test_accuracy | 0.4725 |" in text
    assert "| noise_rate | 0.3000 |" in text and "| 1 | - |" in text  # a class without samples shows '-'
    assert "| 2 | 0.4700 | 0.0700 | 0.5800 | 0.5100 | 0.7000 |" in text
    assert "![memorisation](memorisation.png)" in text
    assert ("27 of 100 training labels flagged" in text
            and "| this run | 0.800 | 0.720 | 0.758 | 0.910 | 0.830 | 27 | 30 |" in text)
    assert "| flag every row | 0.300 | 1.000 | 0.462 | 0.500 | 0.300 | 100 | 30 |" in text
    assert "| 41 | 1 | 0.970 |" in text
    assert "report:" in capsys.readouterr().out


def test_report_without_memorisation_and_into_another_folder(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run-b", with_memorisation=False)
    out = tmp_path / "out"
    assert main([str(run), "--out", str(out)]) == 0
    assert not (out / "memorisation.png").exists()
    assert (out / "learning_curve.png").is_file()
    assert "Memorisation" not in (out / "report.md").read_text()
    assert not (run / "report.md").exists()


def test_report_rejects_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        main([str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a run folder"):
        main([str(tmp_path / "empty")])


def test_overlay_of_two_runs_and_tables(tmp_path: Path) -> None:
    path = plot_memorisation({"CE": ROWS, "JAL-CE": ROWS[:1]}, tmp_path / "sub" / "memorisation-ce-vs-jal.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="no run"):
        plot_memorisation({}, tmp_path / "x.png")
    assert markdown_table(["a", "b"], [[None, 0.5]]).splitlines()[-1] == "| - | 0.5000 |"
    assert memorisation_table(ROWS).count("\n") == 3  # header, rule, two rows


def test_jal_report_dispatches_here(tmp_path: Path) -> None:
    from jal_trainer.cli import main as jal

    run = fake_run(tmp_path / "run-c")
    assert jal(["report", str(run)]) == 0
    assert (run / "report.md").is_file()
    assert jal(["report", str(tmp_path / "missing")]) == 2  # a ValueError becomes one clear line


def test_compare_overlays_runs_labelled_by_loss(tmp_path: Path) -> None:
    from jal_trainer.report import compare_memorisation

    rows = [{"epoch": 1.0, "test_accuracy": 0.5, "noisy_memorised": 0.1, "noisy_true": 0.8, "clean_fit": 0.9}]
    runs = []
    for loss in ("jal-ce", "ce"):
        run = tmp_path / loss
        run.mkdir()
        (run / "recipe.yaml").write_text(f"loss_type: {loss}\n")
        (run / "memorisation.json").write_text(json.dumps({"rows": rows}))
        runs.append(run)
    out = compare_memorisation(runs, tmp_path / "cmp.png")
    assert out.is_file() and out.stat().st_size > 1000
    with pytest.raises(FileNotFoundError):
        compare_memorisation([runs[0], tmp_path / "missing"], tmp_path / "x.png")
