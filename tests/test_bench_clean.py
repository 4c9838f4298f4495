"""Detect-then-retrain cells of the benchmark (`<loss>+clean`, recipes/bench_clean.py) on tiny data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))

import bench_clean  # noqa: E402
import benchmark  # noqa: E402


@pytest.fixture(scope="module")
def bench():
    return benchmark  # imported from recipes/, as tests/test_bench_finetune.py does


def test_clean_cell_trains_detects_retrains_and_records(bench, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    grid_path = tmp_path / "grid.yaml"
    grid_path.write_text(yaml.safe_dump({
        "name": "tiny", "seeds": [1], "losses": ["ce", "ce+clean", "ce+relabel"],
        "regimes": {"sgd": {"default": {"l1_weight_decay": 0.0, "weight_decay": 1e-4}}},
        "datasets": [{"name": "digits", "mode": "probe", "config": "quickstart", "regime": "sgd",
                      "overrides": {"train_subset": 300, "test_subset": 100, "num_train_epochs": 4,
                                    "per_device_train_batch_size": 32},
                      "noise": [{"noise_type": "pairflip", "noise_rate": 0.4}]}],
    }))
    grid = bench.load_grid(grid_path)
    (clean_spec,) = [s for s in bench.expand(grid) if s.loss == "ce+clean"]
    assert clean_spec.relpath == "probe/digits/pairflip0.4/ce_clean-seed1.json"
    assert clean_spec.argv[clean_spec.argv.index("--loss_type") + 1] == "ce"  # the detecting run is plain CE

    session = bench.run_grid(grid, tmp_path / "runs", workers=0, log=lambda *_: None)
    assert session["runs_done"] == 3 and session["failures"] == []
    folder = tmp_path / "runs" / "tiny" / "probe" / "digits" / "pairflip0.4"
    plain = json.loads((folder / "ce-seed1.json").read_text())
    cell = json.loads((folder / "ce_clean-seed1.json").read_text())
    # the detecting run is the grid's plain CE run: asking for label issues does not change its training
    assert cell["plain_test_accuracy"] == pytest.approx(plain["test_accuracy"], abs=1e-6)
    assert cell["trainings"] == 2 and cell["action"] == "drop" and cell["detect_rule"] == "class-balanced"
    assert cell["rows"] == 300 and 0 < cell["flagged"] <= cell["dropped"] < 300
    assert cell["wrong_after"] == cell["wrong_before"] - cell["dropped_truly_wrong"]
    # pair-flip 0.4 (4 epochs learn it well enough): the flags are far better than chance, so dropping removes
    # wrong labels
    assert cell["dropped_truly_wrong"] / cell["dropped"] > cell["wrong_before"] / cell["rows"]
    assert 0.0 <= cell["test_accuracy"] <= 1.0 and cell["seconds"] > cell["plain_seconds"] > 0
    assert cell["regime"] == "probe" and cell["realised_noise_rate"] == pytest.approx(plain["realised_noise_rate"])
    relabel = json.loads((folder / "ce_relabel-seed1.json").read_text())
    assert relabel["action"] == "relabel" and relabel["flagged"] == cell["flagged"]  # the same detecting run
    assert relabel["relabelled"] > 0 and relabel["relabelled"] + relabel["dropped"] >= relabel["flagged"]
    assert relabel["wrong_after"] < relabel["wrong_before"]

    # the report: a row beside the losses, and the comparison against the plain and the best loss
    runs = bench.load_runs(tmp_path / "runs", "tiny")
    rows = bench.aggregate(runs)
    assert {r["loss"] for r in rows} == {"ce", "ce+clean", "ce+relabel"}
    comp, _ = bench_clean.comparisons(rows, runs)
    assert comp["vs_plain"] == pytest.approx(cell["test_accuracy"] - plain["test_accuracy"], abs=1e-4)
    assert comp["best"] == "ce" and comp["mean_dropped"] == cell["dropped"] and comp["trainings"] == 2
    text = "\n".join(bench_clean.markdown([comp]))
    assert "| probe | digits | pairflip 0.4 | CE+CLEAN |" in text and "auto" in text


def test_verdict_names_a_clear_win_only_beyond_one_std() -> None:
    def row(loss: str, mean: float, std: float) -> dict:
        return {"regime": "probe", "dataset": "d", "noise_type": "majority-vote", "noise_rate": None, "loss": loss,
                "n_seeds": 3, "mean_accuracy": mean, "std_accuracy": std}

    close = bench_clean.comparisons([row("ce", 0.80, 0.01), row("gce", 0.85, 0.01), row("ce+clean", 0.86, 0.02)], [])
    assert close[0]["vs_plain"] == pytest.approx(0.06) and close[0]["vs_best"] == pytest.approx(0.01)
    assert not close[0]["clear_vs_best"] and "within one std" in bench_clean.verdict(close)
    clear = bench_clean.comparisons([row("ce", 0.80, 0.01), row("gce", 0.85, 0.01), row("ce+clean", 0.90, 0.01)], [])
    assert clear[0]["clear_vs_best"] and "earns a place" in bench_clean.verdict(clear)
    behind = bench_clean.comparisons([row("ce", 0.80, 0.01), row("ce+clean", 0.70, 0.01)], [])
    assert "does not earn a place" in bench_clean.verdict(behind)


def test_probe_reads_a_subset_of_a_cached_split_instead_of_embedding_it(tmp_path: Path, monkeypatch) -> None:
    """`jal clean` on a frozen-encoder run trains on a subset of the rows: no second embedding pass."""
    import numpy as np
    import torch
    from datasets import Dataset, DatasetDict
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from jal_trainer import probe

    words = ["apple", "river", "engine", "question", "about", "number"]
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab_file=str(encoder / "vocab.txt")).save_pretrained(encoder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(encoder)
    texts = [f"{a} {b} {c}" for a in words for b in words for c in words[:2]]  # 72 distinct texts
    full = Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(len(texts))]})
    cache = tmp_path / "cache"
    first = probe.embed_dataset(DatasetDict(train=full), str(encoder), max_length=8, cache_dir=cache)["train"]
    kept = np.array([3, 70, 5, 0, 41])  # any order, as `Dataset.select` leaves it

    def no_embedding(*_args, **_kwargs):
        raise AssertionError("embedded again")

    monkeypatch.setattr(probe, "_embed", no_embedding)
    sub = probe.embed_dataset(DatasetDict(train=full.select(kept)), str(encoder), max_length=8, cache_dir=cache)
    np.testing.assert_array_equal(np.stack(sub["train"]["embeddings"]), np.stack(first["embeddings"])[kept])
    assert sub["train"]["label"] == [full["label"][i] for i in kept]
    # another max_length is another embedding: the subset rule does not cross it
    with pytest.raises(AssertionError, match="embedded again"):
        probe.embed_dataset(DatasetDict(train=full.select(kept)), str(encoder), max_length=6, cache_dir=cache)


def test_finetune_report_keeps_clean_rows_out_of_the_single_losses() -> None:
    import bench_finetune
    import benchmark

    def run(loss: str, seed: int, acc: float, **extra) -> dict:
        return {"regime": "probe", "dataset": "wrench-sms", "noise_type": "majority-vote", "noise_rate": None,
                "loss": loss, "seed": seed, "test_accuracy": acc, "seconds": 1.0, **extra}

    runs = [run("ce", s, 0.80) for s in range(2)] + [run("auto", s, 0.80) for s in range(2)]
    runs += [run("ce+clean", s, 0.90 + s / 100, plain_test_accuracy=0.80, dropped=10 + s, rows=100) for s in range(2)]
    rows = bench_clean.annotate(benchmark.aggregate(runs), runs)
    clean = next(r for r in rows if r["loss"] == "ce+clean")
    assert clean["trainings"] == 2 and clean["mean_dropped"] == 10.5 and clean["plain_mean_accuracy"] == 0.8
    (check,) = bench_finetune.auto_checks(rows)
    assert check["best"] == "ce" and check["passed"]  # a +clean row is not a single loss auto must match
    (comp,) = bench_clean.comparisons(rows, runs)
    assert comp["vs_plain"] == pytest.approx(0.105) and comp["clear_vs_best"]


def test_a_clean_cell_run_first_writes_its_plain_cell(bench, tmp_path: Path, monkeypatch) -> None:
    """The detecting run is the plain cell's training: the grid does not train it a second time."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    grid_path = tmp_path / "grid.yaml"
    grid_path.write_text(yaml.safe_dump({
        "name": "tiny", "seeds": [2], "losses": ["ce+clean", "ce"],
        "regimes": {"sgd": {"default": {"l1_weight_decay": 0.0}}},
        "datasets": [{"name": "digits", "mode": "probe", "config": "quickstart", "regime": "sgd",
                      "overrides": {"train_subset": 300, "test_subset": 60, "num_train_epochs": 2,
                                    "eval_strategy": "epoch"},
                      "noise": [{"noise_type": "pairflip", "noise_rate": 0.4}]}],
    }))
    session = bench.run_grid(bench.load_grid(grid_path), tmp_path / "runs", workers=0, log=lambda *_: None)
    assert session["failures"] == []
    folder = tmp_path / "runs" / "tiny" / "probe" / "digits" / "pairflip0.4"
    cell = json.loads((folder / "ce_clean-seed2.json").read_text())
    plain = json.loads((folder / "ce-seed2.json").read_text())
    assert plain["derived_from"] == "ce+clean" and plain["loss"] == "ce" and plain["regime"] == "probe"
    assert plain["test_accuracy"] == cell["plain_test_accuracy"] and plain["seconds"] == cell["plain_seconds"]
    assert len(plain["curve"]) == 2 and plain["curve"][-1][1] == pytest.approx(plain["test_accuracy"])
    # such a plain cell cannot confirm that the detecting run reproduces the plain one
    rows = [{"regime": "probe", "dataset": "digits", "noise_type": "pairflip", "noise_rate": 0.4, "loss": loss,
             "n_seeds": 1, "mean_accuracy": r["test_accuracy"], "std_accuracy": 0.0}
            for loss, r in (("ce", plain), ("ce+clean", cell))]
    (comp,) = bench_clean.comparisons(rows, [plain, cell])
    assert comp["plain_reproduced"] is None
