"""The two-regime report: rows keep regimes apart and auto is checked against the issue's bar."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))

import bench_clean  # noqa: E402
import bench_finetune  # noqa: E402
import benchmark  # noqa: E402


def run(regime: str, loss: str, seed: int, acc: float, noise: str = "majority-vote") -> dict:
    return {"regime": regime, "dataset": "wrench-trec", "noise_type": noise, "noise_rate": None, "loss": loss,
            "seed": seed, "test_accuracy": acc, "seconds": 1.0}


def test_regimes_stay_apart_and_auto_is_checked() -> None:
    runs = [run("probe", "ce", s, 0.50) for s in range(2)] + [run("probe", "gce", s, 0.60) for s in range(2)]
    runs += [run("probe", "auto", s, 0.595) for s in range(2)]
    runs += [run("finetune", "ce", s, 0.70) for s in range(2)] + [run("finetune", "auto", s, 0.60) for s in range(2)]
    rows = benchmark.aggregate(runs)
    assert {(r["regime"], r["loss"]) for r in rows} == {("probe", "ce"), ("probe", "gce"), ("probe", "auto"),
                                                        ("finetune", "ce"), ("finetune", "auto")}
    assert all({"regime", "dataset", "noise_type", "loss", "n_seeds", "mean_accuracy", "std_accuracy"} <= set(r)
               for r in rows)
    checks = {c["regime"]: c for c in bench_finetune.auto_checks(rows)}
    assert checks["probe"]["passed"] and checks["probe"]["best"] == "gce"
    assert not checks["finetune"]["passed"]  # 10 pt below CE on real noise


def test_runs_of_a_mode_live_in_their_own_folder() -> None:
    grid = benchmark.load_grid(ROOT / "recipes" / "grids" / "finetune.yaml")
    probe = benchmark.expand(grid, ["probe"])
    tuned = benchmark.expand(grid, ["finetune"])
    assert probe and tuned and all(s.relpath.startswith("probe/") for s in probe)
    assert all(s.relpath.startswith("finetune/") for s in tuned)
    assert all("--train_subset" not in s.argv or s.argv[s.argv.index("--train_subset") + 1] == "2000" for s in tuned)
    assert {s.loss for s in tuned} == {"ce", "gce", "nce+rce", "jal-ce", "auto", "ce+clean", "jal-ce+clean",
                                       "auto-wide", "auto-wide-rare"}
    # the rare-class variant only where a class can have fewer than 4 rows
    assert {s.dataset for s in tuned if s.loss == "auto-wide-rare"} == {"wrench-trec", "wrench-chemprot"}
    (rare,) = [s for s in tuned if s.loss == "auto-wide-rare" and s.dataset == "wrench-trec" and s.seed == 0
               and s.noise_type == "majority-vote"]
    assert rare.argv[rare.argv.index("--auto_rare_classes") + 1] == "train"


def test_a_loss_variant_label_trains_the_loss_its_regime_names() -> None:
    grid = benchmark.load_grid(ROOT / "recipes" / "grids" / "finetune.yaml")
    (wide,) = [s for s in benchmark.expand(grid, ["finetune:trec:pairflip"]) if s.loss == "auto-wide" and s.seed == 0]
    argv = list(wide.argv)
    assert argv[argv.index("--loss_type") + 1] == "auto"  # the label is not a loss name
    assert "jal-ce+clean" in argv[argv.index("--auto_candidates") + 1].split(",")
    assert wide.relpath.endswith("auto-wide-seed0.json")  # its own run files, beside auto's


def test_an_auto_variant_is_neither_auto_nor_the_best_single_loss() -> None:
    runs = [run("finetune", "ce", s, 0.60) for s in range(2)] + [run("finetune", "auto", s, 0.60) for s in range(2)]
    runs += [run("finetune", "auto-wide", s, 0.90) for s in range(2)]
    auto, wide = bench_finetune.auto_checks(benchmark.aggregate(runs), runs)
    assert auto["auto_label"] == "auto" and auto["best"] == "ce" and auto["passed"]  # auto-wide does not raise the bar
    assert wide["auto_label"] == "auto-wide" and wide["auto"] == 0.90 and wide["best"] == "ce"
    assert wide["same_seeds"]["auto"] == 0.90  # checked on its own seeds as auto is
    assert not bench_clean.is_single("auto-wide") and not bench_clean.is_single("auto")


def test_gpu_runs_are_counted_apart_from_cpu_runs() -> None:
    import bench_report

    runs = [run("finetune", "ce", s, 0.7) for s in range(3)]
    assert bench_report.gpu_runs_line(runs) == []  # CPU-only grids say nothing more
    runs[0]["device"] = "cuda: NVIDIA H200"
    runs[1]["device"] = "cpu"
    line = bench_report.gpu_runs_line(runs)
    assert line == ["- On a GPU: 1 runs on one NVIDIA H200; the other 2 on the CPU of the line above."]
    assert benchmark.run_device(["--use_cpu", "true"]) == "cpu"


def test_auto_slice_is_kept_in_a_column_folder_that_does_not_exist_yet(tmp_path: Path) -> None:
    import numpy as np
    from jal_trainer.auto_search import SLICE_FILE

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    np.savez(run_dir / SLICE_FILE, rows=np.arange(3))
    out = tmp_path / "runs" / "wrench-sms" / "mv-no-coin-flips" / "auto-seed0.json"  # no folder yet
    benchmark._keep_slice(run_dir, out)
    assert np.load(out.with_suffix(".slice.npz"))["rows"].tolist() == [0, 1, 2]


def test_auto_is_also_checked_on_its_own_seeds_and_mv_columns_count_as_real() -> None:
    runs = [run("finetune", "ce", s, acc, "mv-no-coin-flips") for s, acc in enumerate([0.60, 0.70, 0.80])]
    runs += [run("finetune", "gce", s, acc, "mv-no-coin-flips") for s, acc in enumerate([0.58, 0.68, 0.78])]
    runs += [run("finetune", "auto", 0, 0.62, "mv-no-coin-flips")]  # seed 0 only: on its seed it is the best
    (check,) = bench_finetune.auto_checks(benchmark.aggregate(runs), runs)
    assert not check["passed"]  # 62 against CE's 3-seed mean of 70
    same = check["same_seeds"]
    assert same["passed"] and same["ce"] == 0.60 and same["best"] == "ce"
    runs.append(run("finetune", "auto", 1, 0.672, "mv-no-coin-flips"))  # mean 64.6 on seeds 0-1, CE 65.0
    (check,) = bench_finetune.auto_checks(benchmark.aggregate(runs), runs)
    assert not check["same_seeds"]["passed"]  # real noise: CE - 0.3 pt is the floor (CE - 1.5 would pass)


def test_replays_stand_in_for_auto_wide_only_where_the_choice_is_the_same(tmp_path: Path) -> None:
    import json

    import auto_wide_check

    report = tmp_path / "auto_wide_check.json"
    report.write_text(json.dumps([
        {"slice": "wrench-trec-majority-vote-0", "defaults": "ce", "wide": "ce"},            # same: replayed
        {"slice": "wrench-trec-majority-vote-1", "defaults": "ce", "wide": "jal-ce+clean"},  # changed: not
        {"slice": "wrench-trec-majority-vote-2", "defaults": "ce", "wide": "ce"},            # real run exists
        {"slice": "wrench-trec-majority-vote-3", "defaults": "gce", "wide": "gce"}]))       # run chose otherwise
    runs = [{**run("finetune", "auto", s, 0.6 + s / 100), "auto": {"chosen": "ce"}} for s in range(4)]
    runs += [run("finetune", "auto-wide", 2, 0.9), run("probe", "auto", 0, 0.5)]
    replayed = auto_wide_check.replayed_runs(runs, report)
    assert [(r["seed"], r["loss"], r["test_accuracy"]) for r in replayed] == [(0, "auto-wide", 0.6)]
    rows = bench_finetune.mark_replayed(benchmark.aggregate(runs + replayed), runs + replayed)
    wide = next(r for r in rows if r["loss"] == "auto-wide")
    assert wide["n_seeds"] == 2 and wide["n_replayed"] == 1
    assert "n_replayed" not in next(r for r in rows if r["loss"] == "auto" and r["regime"] == "finetune")
    assert auto_wide_check.replayed_runs(runs, tmp_path / "none.json") == []  # no replays yet: nothing added



def test_rare_classes_variant_takes_auto_wides_seeds_and_the_glance_row() -> None:
    runs = [run("finetune", "ce", s, 0.60, noise="mv") for s in range(3)]
    runs += [{**run("finetune", "auto-wide", 0, 0.62, noise="mv"), "auto": {"coin_flips": "at most 0.2"}},
             run("finetune", "auto-wide-rare", 1, 0.64, noise="mv"),
             run("finetune", "auto-wide-rare", 2, 0.66, noise="mv")]
    extra = bench_finetune.rare_equivalents(runs)
    assert [(r["seed"], r["loss"], r["replayed_from"]) for r in extra] == [(0, "auto-wide-rare", "auto-wide")]
    rows = benchmark.aggregate(runs + extra)
    line = next(x for x in bench_finetune.glance(rows) if x.startswith("| finetune"))
    assert line.endswith("| auto-wide-rare 64.0 +- 2.0 |"), line  # 3 seeds against auto-wide's 1


def test_a_run_that_kept_coin_flips_for_a_rare_class_is_not_carried_over() -> None:
    runs = [{**run("finetune", "auto-wide", 0, 0.5, noise="mv"), "auto": {"coin_flips": "kept: without them ..."}},
            run("finetune", "auto-wide-rare", 1, 0.6, noise="mv")]
    assert bench_finetune.rare_equivalents(runs) == []  # the option would have left the coin flips out
