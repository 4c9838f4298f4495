"""recipes/auto_tie_order.py: robust candidates ranked by clean-slice regret, duplicate slices counted once."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))

import auto_tie_order  # noqa: E402


def write_slice(path: Path, clean: np.ndarray, wrong: dict[str, int], rows_offset: int = 0) -> None:
    """A slice file whose candidate ``name`` predicts the clean label except on its first ``wrong[name]`` rows."""
    probs = {}
    for name, n_wrong in wrong.items():
        pred = clean.copy()
        pred[:n_wrong] = 1 - pred[:n_wrong]
        probs[f"p_{name}"] = np.eye(2, dtype=np.float16)[pred]
    np.savez(path, rows=np.arange(len(clean)) + rows_offset, noisy=clean, clean=clean, **probs)


def test_ranks_by_mean_regret_and_counts_a_repeated_slice_once(tmp_path: Path) -> None:
    clean = np.arange(100) % 2
    write_slice(tmp_path / "a.npz", clean, {"ce": 0, "gce": 10, "jal-ce": 2})
    write_slice(tmp_path / "b.npz", clean, {"ce": 0, "gce": 4, "jal-ce": 5})
    write_slice(tmp_path / "b-again.npz", clean, {"ce": 0, "gce": 4, "jal-ce": 5}, rows_offset=7)  # other column
    np.savez(tmp_path / "no-clean.npz", noisy=clean, p_ce=np.eye(2)[clean], p_gce=np.eye(2)[clean])
    rows = auto_tie_order.collect([tmp_path])
    assert len(rows) == 2
    table = auto_tie_order.summary(rows)
    assert [r["candidate"] for r in table] == ["jal-ce", "gce"]  # CE is never ranked: it keeps ties anyway
    assert table[0]["mean_regret"] == 0.5 and table[1]["mean_regret"] == 4.0 and table[1]["worst_regret"] == 8.0


def test_a_slice_saved_again_with_a_clean_candidate_is_one_slice_and_ce_is_compared(tmp_path: Path) -> None:
    clean = np.arange(100) % 2
    write_slice(tmp_path / "auto.npz", clean, {"ce": 1, "gce": 10, "jal-ce": 3})
    write_slice(tmp_path / "auto-wide.npz", clean, {"ce": 1, "gce": 10, "jal-ce": 3, "jal-ce+clean": 0})
    write_slice(tmp_path / "other.npz", clean, {"ce": 6, "gce": 2, "jal-ce": 4})
    rows = auto_tie_order.collect([tmp_path])
    assert len(rows) == 2
    assert [r["candidate"] for r in auto_tie_order.summary(rows)] == ["jal-ce", "gce"]  # +clean is not a loss
    versus = auto_tie_order.ce_against_robust(rows, "jal-ce")
    # regret against the best of all: CE 0 and 4 pt, JAL-CE 2 and 2 pt
    assert versus["ce_mean_regret"] == 2.0 and versus["robust_mean_regret"] == 2.0
    assert versus["ce_better"] == 1 and versus["robust_better"] == 1
