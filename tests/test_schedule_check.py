"""The schedule check says which losses are still climbing at the end of each schedule."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))

import schedule_check  # noqa: E402


def _run(folder: Path, loss: str, seed: int, curve: list[list[float]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    run = {"loss": loss, "seed": seed, "test_accuracy": curve[-1][1], "curve": curve}
    (folder / f"{loss.replace('+', '_')}-seed{seed}.json").write_text(json.dumps(run))


def test_late_gain_compares_the_end_with_three_quarters_of_the_schedule() -> None:
    flat = [[e, 0.8] for e in range(1, 21)]
    assert schedule_check.late_gain(flat) == 0.0
    rising = [[e, 0.5 + 0.01 * e] for e in range(1, 41)]
    assert schedule_check.late_gain(rising) == pytest.approx(10.0)  # epoch 40 against epoch 30


def test_check_and_markdown_mark_a_loss_still_climbing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule_check, "RUNS", tmp_path)
    short, longer = schedule_check.CELLS["trec pair-flip 0.4"]
    _run(tmp_path / short, "sce", 0, [[e, 0.5 + 0.01 * e] for e in range(1, 21)])   # +5 pt in the last quarter
    _run(tmp_path / short, "nce+rce", 0, [[e, 0.6] for e in range(1, 21)])
    _run(tmp_path / short, "ce+clean", 0, [[e, 0.9] for e in range(1, 21)])         # detect-then-retrain: left out
    _run(tmp_path / longer.format(n=40), "sce", 0, [[e, 0.7] for e in range(1, 41)])
    result = schedule_check.check()
    table = result["cells"]["trec pair-flip 0.4"]
    assert set(table) == {"sce", "nce+rce"}
    assert table["sce"]["20"] == {"seeds": [0], "accuracy": 70.0, "late_gain": 5.0}
    assert table["sce"]["40"]["late_gain"] == 0.0 and "60" not in table["sce"]
    text = schedule_check.markdown(result)
    assert "| SCE | 70.0 (**+5.0**; seeds 0) | 70.0 (+0.0; seeds 0) | n/a |" in text
    assert schedule_check.check(seeds=[1])["cells"]["trec pair-flip 0.4"] == {}
