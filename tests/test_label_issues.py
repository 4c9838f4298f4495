"""find_label_issues: the numpy scoring core on probabilities whose answer is known, and the data-set API."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from torch import nn

from jal_trainer.label_issues import (
    RULES,
    confident_joint,
    class_balanced_probs,
    column_array,
    find_label_issues,
    issue_report,
    label_scores,
    per_class_thresholds,
    score_label_issues,
    softmax,
    with_columns,
)

sys.path.insert(0, str(Path(__file__).parent))
from known_noise import known_noise_probs  # noqa: E402


def noisy_problem(n: int = 600, k: int = 4, noise: float = 0.3, seed: int = 0):
    """Probabilities of an ideal model that predicts the true class with confidence 0.7 +- noise.

    The given labels are the true ones with a fraction `noise` moved to another class, so the
    right answer of every rule is known: the wrong labels are exactly the rows where the given
    label is not the argmax.
    """
    return known_noise_probs(np.random.default_rng(seed), n, k, noise, confidence=(0.55, 0.85))


def test_score_is_the_class_normalised_shortfall_of_the_given_label() -> None:
    probs, labels, _, _ = noisy_problem()
    scores, _ = score_label_issues(probs, labels)
    # t_i = mean of p[i] over the rows labelled i, computed here by a plain loop
    t = {i: np.mean([probs[r, i] for r in range(len(labels)) if labels[r] == i]) for i in set(labels.tolist())}
    np.testing.assert_allclose(scores, [1 - probs[r, y] / t[y] for r, y in enumerate(labels)])
    assert scores.max() <= 1
    # within a class the ranking is that of 1 - p[given]
    members = labels == labels[0]
    assert (np.argsort(scores[members], kind="stable") == np.argsort(-probs[members, labels[0]], kind="stable")).all()


def test_default_rule_is_class_balanced() -> None:
    probs, labels, _, _ = noisy_problem()
    assert (score_label_issues(probs, labels)[1] == score_label_issues(probs, labels, rule="class-balanced")[1]).all()


def test_class_balanced_rule_by_hand_on_a_timid_class() -> None:
    # The model is timid on class 1: p[1] <= 0.4 even where the label is right. t0 = 0.85, t1 = 0.8 / 3.
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.65, 0.35], [0.95, 0.05], [0.7, 0.3]])
    labels = np.array([0, 0, 1, 1, 1, 1])
    t1 = (0.4 + 0.35 + 0.05 + 0.3) / 4
    np.testing.assert_allclose(class_balanced_probs(probs, labels)[:, 1], probs[:, 1] / t1)
    # balanced prediction argmax(p0 / 0.85, p1 / t1): only row 4 (p1 = 0.05) goes to class 0
    _, issues = score_label_issues(probs, labels, rule="class-balanced")
    assert issues.tolist() == [False, False, False, False, True, False]
    # plain argmax flags every class-1 row
    assert score_label_issues(probs, labels, rule="argmax")[1].tolist() == [False, False, True, True, True, True]


def test_class_balanced_picks_which_rows_by_score_within_the_class() -> None:
    # Class 0 (t0 = 1.7 / 3): the balanced prediction disagrees on row 1 only (0.35 / 0.425 beats
    # 0.45 / t0), so n_0 = 1; but the row flagged is the lowest p[0] of class 0, row 2, whose mass
    # is spread over two confident classes (t2 = t3 = 0.9). Class 1 (t1 = 0.425): row 3 disagrees
    # and is also the lowest p[1].
    probs = np.array([[0.9, 0.1, 0.0, 0.0], [0.45, 0.35, 0.1, 0.1], [0.35, 0.05, 0.3, 0.3],
                      [0.6, 0.4, 0.0, 0.0], [0.2, 0.45, 0.15, 0.2],
                      [0.05, 0.05, 0.9, 0.0], [0.05, 0.05, 0.0, 0.9]])
    labels = np.array([0, 0, 0, 1, 1, 2, 3])
    balanced = class_balanced_probs(probs, labels)
    assert (balanced.argmax(1) != labels).tolist() == [False, True, False, True, False, False, False]
    _, issues = score_label_issues(probs, labels)
    assert issues.tolist() == [False, False, True, True, False, False, False]
    np.testing.assert_allclose(label_scores(probs, labels)[:3], 1 - probs[:3, 0] / (1.7 / 3))


def test_a_class_nobody_is_labelled_with_is_never_predicted() -> None:
    probs = np.array([[0.4, 0.1, 0.5], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    labels = np.array([0, 1, 0])
    assert class_balanced_probs(probs, labels)[:, 2].tolist() == [0.0, 0.0, 0.0]
    assert not score_label_issues(probs, labels)[1][0]


def test_scores_stay_finite_when_a_class_gets_zero_probability() -> None:
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]])
    labels = np.array([0, 1, 1])
    scores, issues = score_label_issues(probs, labels)
    assert np.isfinite(scores).all() and issues.tolist() == [False, True, False]


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_recovers_the_wrong_labels_of_an_ideal_model(rule: str) -> None:
    probs, labels, _, wrong = noisy_problem()
    _, issues = score_label_issues(probs, labels, rule=rule)
    report = issue_report(issues, wrong)
    # the model is right on every example, so the rules should find (almost) exactly the wrong labels
    assert report["precision"] == pytest.approx(1.0)
    assert report["recall"] >= 0.9


def test_thresholds_are_mean_self_confidence_per_given_class() -> None:
    probs = np.array([[0.9, 0.1, 0.0], [0.5, 0.3, 0.2], [0.2, 0.6, 0.2], [0.1, 0.2, 0.7]])
    labels = np.array([0, 0, 1, 1])
    # class 0: (0.9 + 0.5) / 2; class 1: (0.6 + 0.2) / 2; class 2 labels nothing: never cleared
    t = per_class_thresholds(probs, labels)
    np.testing.assert_allclose(t[:2], [0.7, 0.4])
    assert t[2] > 1


def test_per_class_threshold_uses_the_most_probable_class_that_clears_its_threshold() -> None:
    # thresholds: t0 = mean(0.8, 0.3) = 0.55, t1 = mean(0.6, 0.44) = 0.52
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.56, 0.44]])
    labels = np.array([0, 0, 1, 1])
    _, issues = score_label_issues(probs, labels, rule="per-class-threshold")
    # row 1 (label 0): p1 = 0.7 >= t1 -> counted as class 1: issue
    # row 3 (label 1): p0 = 0.56 >= t0 and p1 < t1 -> counted as class 0: issue
    assert issues.tolist() == [False, True, False, True]
    assert confident_joint(probs, labels).tolist() == [[1, 1], [1, 1]]


def test_per_class_threshold_differs_from_argmax_for_an_underconfident_class() -> None:
    # The model is timid on class 1 (self-confidence about 0.4): argmax flags every class-1 row,
    # the per-class threshold (t1 = 0.4) keeps those at or above it.
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.58, 0.42], [0.62, 0.38]])
    labels = np.array([0, 0, 1, 1, 1])
    _, by_argmax = score_label_issues(probs, labels, rule="argmax")
    _, by_threshold = score_label_issues(probs, labels, rule="per-class-threshold")
    assert by_argmax.tolist() == [False, False, True, True, True]
    # t0 = 0.85: no class-1 row has p0 >= 0.85, so no class-1 row is counted as class 0
    assert by_threshold.tolist() == [False, False, False, False, False]


def test_noise_rate_rule_flags_the_highest_scores_per_class() -> None:
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.1, 0.9]])
    labels = np.array([0, 0, 0, 0, 1, 1])
    _, issues = score_label_issues(probs, labels, rule="noise-rate", noise_rate=0.5)
    # class 0 has 4 rows -> 2 flagged (scores 0.8, 0.4 highest); class 1 has 2 -> 1 flagged (0.4)
    assert issues.tolist() == [False, True, True, False, True, False]


def test_bad_inputs_name_the_problem() -> None:
    probs = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="softmax"):
        score_label_issues(np.array([[2.0, -1.0]] * 3), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        score_label_issues(probs, np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="shape"):
        score_label_issues(probs, np.array([0, 1]))
    with pytest.raises(ValueError, match="rule"):
        score_label_issues(probs, np.array([0, 1, 0]), rule="vote")
    with pytest.raises(ValueError, match="noise_rate"):
        score_label_issues(probs, np.array([0, 1, 0]), noise_rate=0.2)


def test_issue_report_against_closed_form() -> None:
    issues = np.array([True, True, True, False, False])
    wrong = np.array([True, False, True, True, False])
    report = issue_report(issues, wrong)
    # 2 hits of 3 flagged, 2 of 3 wrong found
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(2 / 3)
    assert report["f1"] == pytest.approx(2 / 3)
    assert report["noise_rate"] == pytest.approx(3 / 5)
    assert issue_report(np.zeros(3, bool), np.zeros(3, bool))["f1"] == 0.0


class Linear(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(weight)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features)


def test_find_label_issues_with_a_plain_module_adds_columns_and_reports() -> None:
    rng = np.random.default_rng(0)
    n, k = 200, 3
    clean = rng.integers(0, k, n)
    features = np.eye(k)[clean] * 3.0 + rng.normal(0, 0.1, (n, k))
    labels = clean.copy()
    flip = rng.random(n) < 0.25
    labels[flip] = (clean[flip] + 1) % k
    data = Dataset.from_dict({"features": features.tolist(), "label": labels.tolist(), "clean_label": clean.tolist(),
                              "is_noisy": flip.tolist()})
    model = Linear(torch.eye(k))
    result = find_label_issues(model, data, batch_size=64)
    expected = softmax(features)  # the identity model's logits are the features
    np.testing.assert_allclose(result.probs, expected, rtol=1e-5)
    assert result.dataset.column_names[-2:] == ["label_issue_score", "is_label_issue"]
    np.testing.assert_allclose(result.dataset["label_issue_score"], label_scores(expected, labels), rtol=1e-5)
    # the model knows the true class, so the flagged set is the flipped set
    assert result.report["f1"] == pytest.approx(1.0)
    assert result.report["wrong"] == int(flip.sum())


def test_find_label_issues_accepts_probabilities_and_works_without_clean_labels() -> None:
    probs, labels, _, _ = noisy_problem(n=50)
    data = Dataset.from_dict({"label": labels.tolist()})
    result = find_label_issues(probs, data, rule="argmax")
    assert result.report is None
    assert result.dataset["is_label_issue"] == (probs.argmax(1) != labels).tolist()
    with pytest.raises(ValueError, match="label column"):
        find_label_issues(probs, data, label_column="noisy")


class KwargsModel(nn.Module):
    """Takes **kwargs, like transformers models: must get only the numeric input columns."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.seen: set[str] = set()

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        self.seen |= set(inputs)
        return self.fc(inputs["features"])


def test_model_with_kwargs_gets_numeric_inputs_only() -> None:
    data = Dataset.from_dict({"features": [[0.0, 1.0], [1.0, 0.0]], "text": ["a", "b"], "index": [0, 1],
                              "label": [0, 1], "clean_label": [0, 0], "is_noisy": [False, True]})
    model = KwargsModel()
    result = find_label_issues(model, data)
    assert model.seen == {"features"}
    assert result.probs.shape == (2, 2) and result.report["wrong"] == 1


@pytest.mark.parametrize("view", ["shuffle", "subset", "filter", "torch format", "some columns formatted"])
def test_new_columns_on_an_indices_mapping_equal_add_column(view: str) -> None:
    """with_columns keeps the mapping (no copy of the other columns) and gives what add_column gives."""
    rng = np.random.default_rng(0)
    base = Dataset.from_dict({"x": rng.normal(size=(300, 4)).astype(np.float32), "label": rng.integers(0, 3, 300)})
    ds = {"shuffle": lambda: base.shuffle(seed=1), "subset": lambda: base.select(rng.permutation(300)[:120]),
          "filter": lambda: base.filter(lambda row: row["label"] == 1),
          "torch format": lambda: base.shuffle(seed=2).with_format("torch"),
          "some columns formatted": lambda: base.shuffle(seed=3).with_format("numpy", columns=["label"])}[view]()
    scores, flags = rng.random(len(ds)), rng.random(len(ds)) < 0.3
    got = with_columns(ds, {"score": scores, "flag": flags})
    want = ds.add_column("score", scores).add_column("flag", flags)
    assert got._indices is not None and len(got.data) == 300  # the table was not flattened or copied
    assert got.column_names == want.column_names and got.features == want.features and got.format == want.format
    for column in want.column_names:
        np.testing.assert_array_equal(got.with_format("numpy")[column], want.with_format("numpy")[column])
    assert str(got[:3]) == str(want[:3])  # formatted rows too


def test_find_label_issues_on_a_shuffled_set_keeps_rows_in_order() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 200)
    probs = rng.dirichlet(np.ones(3), size=200)
    ds = Dataset.from_dict({"label": labels, "x": rng.normal(size=(200, 2))}).shuffle(seed=0)
    order = np.asarray(ds._indices.column(0))
    found = find_label_issues(probs[order], ds)
    expected_scores, expected_flags = score_label_issues(probs[order], labels[order])
    np.testing.assert_allclose(found.dataset.with_format("numpy")["label_issue_score"], expected_scores)
    np.testing.assert_array_equal(found.dataset.with_format("numpy")["is_label_issue"], expected_flags)
    np.testing.assert_array_equal(found.dataset.with_format("numpy")["label"], labels[order])


@pytest.mark.parametrize("view", ["plain", "shuffled", "selected"])
def test_column_array_reads_rows_in_order_as_writable_numpy(view: str) -> None:
    ds = Dataset.from_dict({"label": [3, 1, 2, 0], "flag": [True, False, True, False],
                            "x": [[1.0], [2.0], [3.0], [4.0]]})
    order = {"plain": [0, 1, 2, 3], "shuffled": [2, 0, 3, 1], "selected": [3, 1]}[view]
    view_ds = ds if view == "plain" else ds.select(order)
    labels = column_array(view_ds, "label")
    assert labels.tolist() == [[3, 1, 2, 0][i] for i in order] and labels.dtype == np.int64
    assert column_array(view_ds, "flag").tolist() == [[True, False, True, False][i] for i in order]
    assert column_array(view_ds, "x").tolist() == [[float(i + 1)] for i in order]  # nested: numpy format
    labels[0] = 9  # callers may write into it
