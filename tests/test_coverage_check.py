"""The coverage check splits a run's test accuracy by whether a labelling function voted on the row."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))

import coverage_check  # noqa: E402


def test_covered_rows_read_weak_votes_in_file_order(tmp_path: Path) -> None:
    rows = {"7": {"label": 1, "weak_labels": [-1, -1]}, "2": {"label": 0, "weak_labels": [-1, 0]},
            "5": {"label": 1, "weak_labels": [1, 1]}}
    split = tmp_path / "test.json"
    split.write_text(json.dumps(rows))
    labels, covered = coverage_check.covered_rows(split)
    assert labels.tolist() == [1, 0, 1]
    assert covered.tolist() == [False, True, True]


def test_split_accuracy_and_the_reading_count_rows() -> None:
    labels, covered = np.array([0, 1, 1, 0, 1]), np.array([True, True, False, False, False])
    assert coverage_check.split_accuracy(labels, np.array([0, 0, 1, 0, 0]), covered) == (0.6, 0.5, 2 / 3)
    result = {"dataset": "wrench-x", "noise_type": "mv", "seeds": [0], "python": "3", "command": "c",
              "n_covered": 100, "n_uncovered": 300, "rows": [
                  {"loss": "ce", "seed": 0, "test_accuracy": 0.9, "committed_test_accuracy": 0.9,
                   "covered_accuracy": 0.95, "uncovered_accuracy": 0.88},
                  {"loss": "jal-ce", "seed": 0, "test_accuracy": 0.93, "committed_test_accuracy": 0.93,
                   "covered_accuracy": 0.96, "uncovered_accuracy": 0.92}]}
    text = coverage_check.markdown(result)
    assert "| JAL-CE | 93.00 | 93.00 | 96.00 | 92.00 |" in text
    # 1 pt of 100 covered rows is 1 row; 4 pt of 300 uncovered rows is 12
    assert "by 1.0 pt on the covered test rows (1.0 rows)" in text and "(12.0 rows)" in text
