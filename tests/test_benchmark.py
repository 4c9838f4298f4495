"""The accuracy benchmark runner (recipes/benchmark.py): a real 2-run grid, resume, and the table."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("jal_benchmark", ROOT / "recipes" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _tiny_grid(path: Path) -> Path:
    grid = {
        "name": "tiny",
        "seeds": [3],
        "losses": ["ce", "jal-ce"],
        "regimes": {"sgd": {"default": {"l1_weight_decay": 0.0, "weight_decay": 1e-4},
                            "jal-ce": {"l1_weight_decay": 5e-5, "weight_decay": 0.0}}},
        "datasets": [{
            "name": "digits",
            "config": "quickstart",
            "regime": "sgd",
            "overrides": {"train_subset": 200, "test_subset": 100, "num_train_epochs": 1},
            "noise": [{"noise_type": "pairflip", "noise_rate": 0.4}],
        }],
    }
    path.write_text(yaml.safe_dump(grid))
    return path


def test_runner_trains_writes_resumes_and_aggregates(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    grid = bench.load_grid(_tiny_grid(tmp_path / "grid.yaml"))
    runs_dir = tmp_path / "runs"

    session = bench.run_grid(grid, runs_dir, workers=0, log=lambda *_: None)
    assert session["runs_done"] == 2 and session["failures"] == []

    files = sorted((runs_dir / "tiny").rglob("*-seed3.json"))
    records = {json.loads(p.read_text())["loss"]: json.loads(p.read_text()) for p in files}
    assert set(records) == {"ce", "jal-ce"}
    for loss, rec in records.items():
        assert 0.0 <= rec["test_accuracy"] <= 1.0 and rec["seconds"] > 0
        assert rec["num_train"] == 200  # the override reached the training run
        # Pair-flip 0.4 flips floor(0.4 * n_c) of each class of about 20: close to 0.4.
        assert abs(rec["realised_noise_rate"] - 0.4) < 0.05
        argv = rec["argv"]
        assert argv[argv.index("--loss_type") + 1] == loss
        assert argv[argv.index("--seed") + 1] == "3" and argv[argv.index("--noise_seed") + 1] == "3"
    # The regime sets the paper's regulariser per loss family.
    jal_argv = records["jal-ce"]["argv"]
    assert jal_argv[jal_argv.index("--l1_weight_decay") + 1] == "5e-05"
    ce_argv = records["ce"]["argv"]
    assert ce_argv[ce_argv.index("--weight_decay") + 1] == "0.0001"

    # Resume: nothing left to do, and the existing files are not rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert bench.run_grid(grid, runs_dir, workers=0, log=lambda *_: None)["runs_done"] == 0
    assert {p: p.stat().st_mtime_ns for p in files} == stamps

    rows = bench.write_report(grid, bench.load_runs(runs_dir, "tiny"), tmp_path / "table")
    assert {(r["loss"], r["n_seeds"], r["noise_type"], r["noise_rate"]) for r in rows} == {
        ("ce", 1, "pairflip", 0.4), ("jal-ce", 1, "pairflip", 0.4)}
    for row in rows:
        assert row["mean_accuracy"] == pytest.approx(records[row["loss"]]["test_accuracy"], abs=5e-5)
        assert row["std_accuracy"] == 0.0
    assert json.loads((tmp_path / "table.json").read_text()) == rows
    assert (tmp_path / "table.png").stat().st_size > 1000
    md = (tmp_path / "table.md").read_text()
    best = max(records, key=lambda k: records[k]["test_accuracy"])
    assert f"| {best.upper()} | **" in md
    assert "Where JAL wins" in md


def test_aggregate_mean_std_bold_and_verdicts(bench):
    accs = {"ce": [0.50, 0.60, 0.70], "jal-ce": [0.80, 0.82, 0.84], "gce": [0.75, 0.75, 0.75]}
    runs = [{"dataset": "d", "noise_type": "symmetric", "noise_rate": 0.8, "loss": loss, "seed": s,
             "test_accuracy": a, "seconds": 1.0} for loss, values in accs.items() for s, a in enumerate(values)]
    rows = {r["loss"]: r for r in bench.aggregate(runs)}
    for loss, values in accs.items():
        assert rows[loss]["n_seeds"] == 3
        assert rows[loss]["mean_accuracy"] == pytest.approx(statistics.mean(values), abs=5e-5)
        assert rows[loss]["std_accuracy"] == pytest.approx(statistics.stdev(values), abs=5e-5)

    table = bench.markdown_table(list(rows.values()), ["ce", "gce", "jal-ce"])
    assert "| JAL-CE | **82.00 ± 2.00** |" in table
    assert "| CE | 60.00 ± 10.00 |" in table

    (verdict,) = bench.jal_verdicts(list(rows.values()))
    assert verdict["baseline"] == "gce" and verdict["gap"] == pytest.approx(0.07)
    assert verdict["clear"]  # 7 points > max(std 2, std 0)
    assert "JAL is ahead in 1 of 1 settings" in bench.verdict_text([verdict])


def test_bad_grid_names_the_fix(bench, tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump({"name": "g", "seeds": [0], "losses": ["ce"],
                                    "datasets": [{"name": "d", "config": "x.yaml", "regime": "nope",
                                                  "noise": [{"noise_type": "symmetric", "noise_rate": 0.2}]}]}))
    with pytest.raises(ValueError, match="regime 'nope'"):
        bench.load_grid(path)


def test_aggregate_without_runs_says_so_and_writes_nothing(bench, tmp_path, capsys):
    grid = _tiny_grid(tmp_path / "tiny.yaml")
    out = tmp_path / "table"
    assert bench.main(["aggregate", str(grid), "--runs-dir", str(tmp_path / "runs"), "--out", str(out)]) == 2
    assert "no finished runs of grid 'tiny'" in capsys.readouterr().err
    assert not list(tmp_path.glob("table*"))


def test_paper_grid_expands_to_the_papers_settings(bench):
    grid = bench.load_grid(ROOT / "recipes" / "grids" / "cifar10_paper.yaml")
    specs = bench.expand(grid)
    # 4 losses x 4 noise settings x 3 seeds, plus CE on clean labels x 3 seeds
    assert len(specs) == 4 * 4 * 3 + 3
    settings = {(s.noise_type, s.noise_rate) for s in specs}
    assert settings == {("symmetric", 0.4), ("symmetric", 0.8), ("cifar10-asym", 0.2), ("cifar10-asym", 0.4),
                        ("clean", None)}
    for spec in specs:
        argv = list(spec.argv)
        assert "--use_cpu" not in argv  # the paper grid trains on the GPU
        l1 = float(argv[argv.index("--l1_weight_decay") + 1])
        assert l1 == (5e-5 if spec.loss.startswith("jal") else 0.0)
    # every published number has a cell of the grid to compare with
    columns = {bench.column_name(t, r) for t, r in settings}
    assert set(grid.reference) <= columns


def test_report_compares_with_the_published_numbers(bench, tmp_path):
    grid = bench.load_grid(ROOT / "recipes" / "grids" / "cifar10_paper.yaml")
    runs = [{"dataset": "cifar10", "noise_type": "symmetric", "noise_rate": 0.4, "loss": "jal-ce", "seed": s,
             "test_accuracy": acc, "seconds": 300.0, "train_seconds": 240.0, "epochs": 120.0,
             "realised_noise_rate": 0.4} for s, acc in [(0, 0.870), (1, 0.880)]]
    runs.append({**runs[0], "loss": "ce", "test_accuracy": 0.60})
    rows = bench.aggregate(runs)
    text = bench.reference_table(rows, runs, grid)
    # JAL-CE: mean 87.50 vs 87.53 -> -0.03, within; CE: 60.00 vs 58.05 -> +1.95, not within
    assert "| cifar10 sym 0.4 | JAL-CE | 87.50 ± 0.71 | 87.53 | -0.03 | yes | 2.00 | 240 |" in text
    assert "| cifar10 sym 0.4 | CE | 60.00 ± 0.00 | 58.05 | +1.95 | no |" in text
    bench.write_report(grid, runs, tmp_path / "paper")
    report = (tmp_path / "paper.md").read_text()
    assert report.startswith("# CIFAR-10 at the paper's protocol") and "## Against the published numbers" in report


def test_paper_grid_cell_runs_on_cpu_for_a_few_steps(bench, tmp_path, monkeypatch):
    """One real cell of each kind (asymmetric noise, clean labels), shortened: the recipes and flags work."""
    from jal_trainer.paths import shared_dir

    if not (shared_dir() / "data" / "cifar10_jpeg").is_dir():
        pytest.skip("../shared/data is not here")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    grid = bench.load_grid(ROOT / "recipes" / "grids" / "cifar10_paper.yaml")
    short = ["--train_subset", "128", "--test_subset", "64", "--max_steps", "2", "--use_cpu", "true",
             "--per_device_eval_batch_size", "64"]
    first = {}
    for spec in bench.expand(grid):
        first.setdefault(spec.noise_type, spec)
    for spec in (first["cifar10-asym"], first["clean"]):
        spec = bench.RunSpec(**{**spec.__dict__, "argv": (*spec.argv, *short)})
        record = bench.run_one(spec, str(tmp_path / spec.relpath))
        assert 0.0 <= record["test_accuracy"] <= 1.0 and record["train_seconds"] > 0 and record["epochs"] > 0


def test_losses_and_seeds_select_a_slice_of_the_grid(bench, tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump({
        "name": "g", "seeds": [0, 1, 2], "losses": ["ce", "gce", "jal-ce"],
        "datasets": [{"name": "digits", "config": "quickstart",
                      "noise": [{"noise_type": "symmetric", "noise_rate": 0.2}]}],
    }))
    assert bench.main(["run", str(grid), "--runs-dir", str(tmp_path / "runs"), "--losses", "jal-ce,ce",
                       "--seeds", "1", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert {line.split("--loss_type ")[1].split()[0] for line in lines} == {"ce", "jal-ce"}
    assert all("--seed 1" in line for line in lines)


def test_bf16_cells_are_refused_where_the_cpu_only_emulates_bf16(bench, tmp_path, monkeypatch, capsys):
    """Emulated bf16 is about 14x slower: a bf16 grid must not start hours of such runs unasked."""
    from jal_trainer import run_summary

    path = tmp_path / "grid.yaml"
    grid = yaml.safe_load(_tiny_grid(path).read_text())
    grid["datasets"][0]["overrides"]["bf16"] = True
    path.write_text(yaml.safe_dump(grid))
    monkeypatch.setattr(bench, "run_device", lambda argv: "cpu")
    monkeypatch.setattr(run_summary, "cpu_has_native_bf16", lambda: False)
    argv = ["run", str(path), "--runs-dir", str(tmp_path / "runs"), "--workers", "0"]
    assert bench.main(argv) == 2
    assert "--allow-emulated-bf16" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before anything ran
    assert len(bench.emulated_bf16(bench.expand(bench.load_grid(path), None))) == 2
    monkeypatch.setattr(run_summary, "cpu_has_native_bf16", lambda: True)
    assert bench.emulated_bf16(bench.expand(bench.load_grid(path), None)) == []
