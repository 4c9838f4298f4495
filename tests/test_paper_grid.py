"""recipes/gpu/paper_grid.{sh,py}: the paper's CIFAR-10 grid within a budget, rehearsed on the CPU.

The whole script runs end to end on a 400-image subset for one epoch with two concurrent
processes: smoke check, priority order after the cells an earlier call returned, the budget that
stops new cells, the tar of finished cells, and the merge of both returns into the table with the
published numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from argparse import Namespace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT / "recipes" / "gpu"))

import benchmark  # noqa: E402
import paper_grid  # noqa: E402

REHEARSAL = ["--workers", "2", "--train-subset", "400", "--test-subset", "100", "--epochs", "1"]


def _env(out: Path) -> dict[str, str]:
    return {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "JAL_NO_MPS": "1", "OMP_NUM_THREADS": "1",
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _cells(tar_path: Path) -> list[str]:
    with tarfile.open(tar_path) as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


@pytest.mark.slow
def test_the_grid_script_runs_end_to_end_and_merges(tmp_path: Path) -> None:
    from jal_trainer.paths import shared_dir

    if not (shared_dir() / "data" / "cifar10_jpeg").is_dir():
        pytest.skip("../shared/data is not here")
    runs = tmp_path / "runs"
    # An earlier call returned the first cell in priority order (JAL-CE, symmetric 0.8): merged
    # into the runs folder, it is skipped, so this call goes on with the next cells.
    earlier = tmp_path / "earlier"
    done = earlier / "cifar10-paper" / "cifar10" / "symmetric0.8" / "jal-ce-seed0.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"grid": "cifar10-paper", "dataset": "cifar10", "noise_type": "symmetric",
                                "noise_rate": 0.8, "loss": "jal-ce", "seed": 0, "test_accuracy": 0.5,
                                "seconds": 1.0, "train_seconds": 1.0, "epochs": 1.0}))
    assert paper_grid.merge([str(earlier)], runs) == 1
    # Three cells wanted, two workers; the budget (3 s) lets the first wave start but no further
    # cell, so the third is reported as not started and the tar holds the two that finished.
    result = subprocess.run(["bash", "recipes/gpu/paper_grid.sh", "--runs-dir", str(runs), "--scratch",
                             str(tmp_path / "s1"), *REHEARSAL, "--max-cells", "3", "--budget-minutes", "0.05",
                             "--hard-minutes", "8"],
                            cwd=ROOT, env=_env(tmp_path / "out"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "smoke" in result.stdout and (tmp_path / "out" / "smoke-fp32.log").is_file()
    log = (tmp_path / "out" / "grid.log").read_text()
    assert "budget: 1 cells not started" in log
    assert _cells(tmp_path / "out" / "cells.tar") == [
        "cifar10-paper/cifar10/cifar10-asym0.4/jal-ce-seed0.json", "cifar10-paper/cifar10/symmetric0.8/ce-seed0.json"]

    # Both returns, merged in any order, give the table with the published numbers beside ours.
    table = tmp_path / "cifar10_paper"
    assert benchmark.main(["aggregate", "recipes/grids/cifar10_paper.yaml", "--runs-dir", str(tmp_path / "runs2"),
                           "--merge", str(tmp_path / "out" / "cells.tar"), str(earlier), "--out", str(table)]) == 0
    rows = json.loads(table.with_suffix(".json").read_text())
    assert {(r["noise_type"], r["noise_rate"], r["loss"]) for r in rows} == {
        ("symmetric", 0.8, "jal-ce"), ("symmetric", 0.8, "ce"), ("cifar10-asym", 0.4, "jal-ce")}
    report = table.with_suffix(".md").read_text()
    assert "| cifar10 sym 0.8 | JAL-CE |" in report and "| 65.43 |" in report
    record = json.loads((tmp_path / "runs2" / "cifar10-paper/cifar10/symmetric0.8/ce-seed0.json").read_text())
    assert record["seconds_per_epoch"] > 0 and record["device"] == "cpu" and record["num_train"] == 400


def test_cells_run_in_the_issues_priority_order() -> None:
    grid = benchmark.load_grid(ROOT / "recipes" / "grids" / "cifar10_paper.yaml")
    order = [(s.loss, paper_grid.noise_key(s), s.seed) for s in sorted(benchmark.expand(grid), key=paper_grid.priority)]
    assert order[:2] == [("jal-ce", "symmetric0.8", 0), ("ce", "symmetric0.8", 0)]
    assert order[2:8] == [(loss, noise, 0) for noise in ("cifar10-asym0.4", "symmetric0.4", "cifar10-asym0.2")
                          for loss in ("jal-ce", "ce")]
    assert {loss for loss, _, seed in order[8:16]} == {"jal-fl", "nce+rce"} and all(s == 0 for *_, s in order[8:16])
    assert order[16] == ("ce", "clean", 0)
    assert all(seed > 0 for *_, seed in order[17:]) and len(order) == 51


def test_merge_takes_only_json_inside_the_runs_folder(tmp_path: Path) -> None:
    import io

    tar_path = tmp_path / "cells.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, data in [("g/a.json", b'{"x": 1}'), ("../escape.json", b"{}"), ("g/notes.txt", b"hi")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert paper_grid.merge([str(tar_path)], tmp_path / "runs") == 1
    assert (tmp_path / "runs" / "g" / "a.json").is_file() and not (tmp_path / "escape.json").exists()


def test_the_mode_and_worker_count_that_finish_most_cells_win(tmp_path: Path) -> None:
    """Measured ms/step decide: the faster mode, then the worker count with more cells in the budget."""
    speeds = {("trainer bf16 + channels_last graph", 12): 5.0, ("trainer fp32 graph", 12): 6.0,
              ("trainer bf16 + channels_last graph", 6): 2.0}
    args = Namespace(workers=12, budget_minutes=9.0, scratch=str(tmp_path), out=str(tmp_path))
    mode, workers = paper_grid.choose_mode(args, 46_920, log=lambda _: None,
                                           measure=lambda variant, w, out: speeds[(variant, w)])
    # 12 workers at 5 ms: 286 s per cell, 1 wave = 12 cells; 6 workers at 2 ms: 139 s, 3 waves = 18 cells
    assert (mode, workers) == ("bf16-graph", 6)
    assert json.loads((tmp_path / "probe.json").read_text())["chosen"] == "bf16-graph x6"
    failing = paper_grid.choose_mode(args, 46_920, log=lambda _: None, measure=lambda *a: None)
    assert failing == ("fp32", 12)
