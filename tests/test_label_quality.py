"""Rank metrics of label-issue scores, the flag-everything floor, and cleanlab-compatible columns."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value

from jal_trainer.cleanlab_format import CLEANLAB_COLUMNS, cleanlab_columns, label_score_from_issue_score
from jal_trainer.label_issues import find_label_issues, score_label_issues
from jal_trainer.label_quality import (
    auprc,
    auroc,
    flag_everything_report,
    precision_at_wrong,
    quality_report,
    rank_report,
)

sys.path.insert(0, str(Path(__file__).parent))
from known_noise import known_noise_probs  # noqa: E402


def test_rank_metrics_match_scikit_learn_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    wrong = rng.random(500) < 0.3
    # rounded scores: many ties, which both metrics must treat as sklearn does
    scores = np.round(wrong * 0.4 + rng.random(500), 1)
    assert auroc(scores, wrong) == pytest.approx(metrics.roc_auc_score(wrong, scores), abs=1e-12)
    assert auprc(scores, wrong) == pytest.approx(metrics.average_precision_score(wrong, scores), abs=1e-12)


def test_rank_metrics_at_the_extremes() -> None:
    wrong = np.array([False, True, False, True, False])
    perfect = np.array([0.1, 0.9, 0.2, 0.8, 0.3])
    assert rank_report(perfect, wrong) == {"auroc": 1.0, "auprc": 1.0, "precision_at_wrong": 1.0}
    assert rank_report(-perfect, wrong) == {"auroc": 0.0, "auprc": pytest.approx((1 / 4 + 2 / 5) / 2),
                                            "precision_at_wrong": 0.0}
    assert auroc(np.zeros(5), wrong) == 0.5  # all tied: random
    assert rank_report(perfect, np.zeros(5, bool)) == {"auroc": None, "auprc": None, "precision_at_wrong": None}
    assert precision_at_wrong(np.array([0.9, 0.8, 0.1]), np.array([True, False, True])) == 0.5
    with pytest.raises(ValueError, match="finite"):
        rank_report(np.array([np.nan, 0.1]), np.array([True, False]))


def test_flag_everything_is_the_floor_of_a_real_flagging() -> None:
    wrong = np.random.default_rng(1).random(1000) < 0.4
    everything = quality_report(np.ones(1000, bool), wrong)
    floor = flag_everything_report(float(wrong.mean()))
    assert everything["f1"] == pytest.approx(floor["f1"]) == pytest.approx(2 * wrong.mean() / (1 + wrong.mean()))
    assert floor["auroc"] == 0.5 and floor["auprc"] == pytest.approx(wrong.mean())
    with pytest.raises(ValueError, match="fraction"):
        flag_everything_report(40.0)


def known_noise_dataset(n: int = 400, k: int = 3, noise: float = 0.25, seed: int = 0):
    """Probabilities of a model that knows the true class (p = 0.6-0.9 on it), labels with known wrong rows."""
    rng = np.random.default_rng(seed)
    probs, labels, clean, wrong = known_noise_probs(rng, n, k, noise, confidence=(0.6, 0.9))
    names = ClassLabel(names=[f"c{i}" for i in range(k)])
    data = Dataset.from_dict({"x": rng.normal(size=n), "label": labels, "clean_label": clean},
                             features=Features({"x": Value("float32"), "label": names, "clean_label": names}))
    return probs, data, clean, wrong


def test_cleanlab_columns_on_a_set_with_known_wrong_rows() -> None:
    probs, data, clean, wrong = known_noise_dataset()
    found = find_label_issues(probs, data)
    table = found.to_cleanlab()
    assert tuple(table.columns) == CLEANLAB_COLUMNS and len(table) == len(data)
    assert (table["is_label_issue"].dtype == bool
            and table["is_label_issue"].to_numpy().tolist() == found.issues.tolist())
    assert np.array_equal(table["given_label"].to_numpy(), data["label"][:])
    # the model knows the truth: its (class-balanced) prediction is the clean label on every row
    assert np.array_equal(table["predicted_label"].to_numpy(), clean)
    score = table["label_score"].to_numpy()
    assert score.min() >= 0.0 and score.max() <= 1.0
    # low label_score = likely wrong: every wrong row scores below every right row here
    assert score[wrong].max() < score[~wrong].min()
    assert table["is_label_issue"].to_numpy()[wrong].all() and not table["is_label_issue"].to_numpy()[~wrong].any()
    # same ranking as label_issue_score, reversed; the report carries the ranking metrics
    assert rank_report(-score, wrong) == rank_report(found.scores, wrong)
    assert found.report["auroc"] == 1.0 and found.report["auprc"] == 1.0 and found.report["f1"] == 1.0


def test_cleanlab_columns_from_arrays_and_the_score_mapping() -> None:
    probs, data, _, _ = known_noise_dataset(n=50, seed=3)
    labels = data["label"][:]
    scores, issues = score_label_issues(probs, labels)
    table = cleanlab_columns(probs, labels)
    assert table["is_label_issue"].tolist() == issues.tolist()
    assert np.allclose(table["label_score"], label_score_from_issue_score(scores))
    # the typical confidence of the class (score 0) maps to 0.5, no probability (score 1) to 0
    assert label_score_from_issue_score(np.array([0.0, 1.0])).tolist() == [0.5, 0.0]


def test_find_label_issues_averages_a_list_of_sources() -> None:
    probs, data, _, _ = known_noise_dataset(n=60, seed=4)
    flat = np.full_like(probs, 1 / probs.shape[1])
    both = find_label_issues([probs, flat], data)
    assert np.allclose(both.probs, (probs + flat) / 2)
    with pytest.raises(ValueError, match="empty"):
        find_label_issues([], data)
