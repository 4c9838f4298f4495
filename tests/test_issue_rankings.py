"""Rankings of the label issues: the flag margin (same order inside a class, classes interleaved by
their flagged fraction) and the area under the margin."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from jal_trainer.issue_scores import (
    AUTO_MIN_CONFIDENCE, NOISE_MARGIN_POWER, area_under_margin, class_margin_scores, confidence_above_chance,
    confident_joint, flag_margin_scores, issue_report, label_margins, label_scores, noise_margin_scores,
    score_label_issues)
from jal_trainer.label_issues import RANKINGS, find_label_issues


def noisy_problem(n: int = 400, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities of a model confident in the true class (0.55-0.85), 30% of the labels moved."""
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, k, n)
    conf = rng.uniform(0.55, 0.85, n)
    probs = np.tile(((1 - conf) / (k - 1))[:, None], (1, k))
    probs[np.arange(n), clean] = conf
    labels = np.where(rng.random(n) < 0.3, (clean + rng.integers(1, k, n)) % k, clean)
    return probs, labels, clean


def test_margin_by_hand() -> None:
    # class 0: 4 rows, 1 flagged; class 1: 2 rows, 1 flagged
    scores = np.array([0.1, 0.9, 0.3, 0.2, 0.5, 0.4])
    labels = np.array([0, 0, 0, 0, 1, 1])
    issues = np.array([False, True, False, False, True, False])
    margins = flag_margin_scores(scores, labels, issues)
    # class 0 order 1, 2, 3, 0: (1 - r - 0.5) / 4; class 1 order 4, 5: (1 - r - 0.5) / 2
    np.testing.assert_allclose(margins, [-2.5 / 4, 0.5 / 4, -0.5 / 4, -1.5 / 4, 0.25, -0.25])


def test_positive_exactly_for_the_flags_and_same_order_inside_each_class() -> None:
    probs, labels, _ = noisy_problem()
    shortfall, issues = score_label_issues(probs, labels)
    margins, same_issues = score_label_issues(probs, labels, ranking="flag-margin")
    np.testing.assert_array_equal(issues, same_issues)  # the ranking never changes the flags
    np.testing.assert_array_equal(margins > 0, issues)
    for cls in range(probs.shape[1]):
        members = labels == cls
        # a strictly decreasing map inside the class: the order of the shortfall is kept
        order = np.argsort(-shortfall[members], kind="stable")
        assert np.all(np.diff(margins[members][order]) < 0)


def test_interleaves_classes_by_flagged_fraction() -> None:
    # The model is timid on class 1: every row there has a higher shortfall than class 0's suspects.
    # Class 0 has 6 of 10 rows flagged (and wrong), class 1 one of 10: the margin ranks the flags first.
    labels = np.repeat([0, 1], 10)
    scores = np.concatenate([np.linspace(0.35, 0.30, 6), np.linspace(0.10, 0.05, 4), np.linspace(0.50, 0.40, 10)])
    issues = np.zeros(20, dtype=bool)
    issues[:6] = issues[10] = True
    wrong = issues.copy()
    before = issue_report(issues, wrong, scores)["auprc"]
    after = issue_report(issues, wrong, flag_margin_scores(scores, labels, issues))["auprc"]
    assert before < 0.5
    assert after == pytest.approx(1.0)


def test_find_label_issues_with_flag_margin_agrees_with_its_flags_and_cleanlab_columns() -> None:
    probs, labels, clean = noisy_problem(n=200, seed=1)
    data = Dataset.from_dict({"label": labels.tolist(), "clean_label": clean.tolist()})
    found = find_label_issues(probs, data, ranking="flag-margin")
    assert found.ranking == "flag-margin"
    np.testing.assert_array_equal(np.asarray(found.dataset["label_issue_score"]) > 0, found.issues)
    # precision of the top-"flagged" rows equals the flags' precision: ranking and flags agree
    top = np.argsort(-found.scores, kind="stable")[: found.issues.sum()]
    assert found.issues[top].all()
    table = found.to_cleanlab()
    np.testing.assert_array_equal(table["label_score"].to_numpy() < 0.5, table["is_label_issue"].to_numpy())
    assert ((table["label_score"] >= 0) & (table["label_score"] <= 1)).all()


def test_unknown_ranking_is_named() -> None:
    probs, labels, _ = noisy_problem(n=20)
    assert RANKINGS == ("shortfall", "flag-margin", "noise-margin", "auto")
    with pytest.raises(ValueError, match="ranking='margin' is unknown"):
        score_label_issues(probs, labels, ranking="margin")


def test_find_label_issues_names_an_unknown_ranking_before_predicting() -> None:
    import torch

    class NeverPredict(torch.nn.Module):
        def forward(self, **inputs):
            raise AssertionError("predicted before checking the ranking")

    data = Dataset.from_dict({"label": [0, 1], "x": [[0.0], [1.0]]})
    with pytest.raises(ValueError, match="ranking='margin' is unknown"):
        find_label_issues(NeverPredict(), data, ranking="margin")


def test_class_margin_by_hand_at_both_ends_of_the_power() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.4])
    labels = np.array([0, 0, 0, 0, 1, 1])
    counts = np.array([2, 1])  # class 0: rate 2/4; class 1: rate 1/2
    # power 0: (c - r - 0.5) / N; class 0 order 0, 2, 3, 1; class 1 order 5, 4
    np.testing.assert_allclose(class_margin_scores(scores, labels, counts), [1.5 / 4, -1.5 / 4, 0.5 / 4, -0.5 / 4,
                                                                            -0.25, 0.25])
    # power 1: (c - r - 0.5) / c, the place among the class's estimated wrong rows
    np.testing.assert_allclose(class_margin_scores(scores, labels, counts, power=1.0),
                               [0.75, -0.75, 0.25, -0.25, -0.5, 0.5])
    with pytest.raises(ValueError, match="power must be in"):
        class_margin_scores(scores, labels, counts, power=2.0)


def test_noise_margin_counts_the_confident_joint_and_keeps_the_flags() -> None:
    probs, labels, _ = noisy_problem(seed=3)
    joint = confident_joint(probs, labels)
    margins = noise_margin_scores(probs, labels)
    for cls in range(probs.shape[1]):  # > 0 for as many rows as the joint counts wrong in the class
        assert (margins[labels == cls] > 0).sum() == joint[cls].sum() - joint[cls, cls]
    expected = class_margin_scores(label_scores(probs, labels), labels, joint.sum(1) - np.diag(joint),
                                   power=NOISE_MARGIN_POWER)
    np.testing.assert_allclose(margins, expected)
    scores, issues = score_label_issues(probs, labels, ranking="noise-margin")
    np.testing.assert_allclose(scores, margins)
    np.testing.assert_array_equal(issues, score_label_issues(probs, labels)[1])


def test_confidence_above_chance_by_hand() -> None:
    # one-hot rows count 1, uniform rows 0, and K does not move the scale: (0.7 - 1/3) / (2/3) = 0.55
    assert confidence_above_chance(np.array([[0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])) == pytest.approx(0.5)
    assert confidence_above_chance(np.array([[0.7, 0.2, 0.1]])) == pytest.approx(0.55)
    assert confidence_above_chance(np.array([[0.775, 0.225]])) == pytest.approx(0.55)


@pytest.mark.parametrize("softened", [False, True])
def test_auto_ranking_is_the_noise_margin_for_a_confident_model_and_the_shortfall_otherwise(softened: bool) -> None:
    probs, labels, clean = noisy_problem(seed=4)
    if softened:  # the same order of rows, half-way to uniform: a model too unsure for confident learning's counts
        probs = 0.5 * probs + 0.5 / probs.shape[1]
    expected = "shortfall" if softened else "noise-margin"
    assert (confidence_above_chance(probs) < AUTO_MIN_CONFIDENCE) == softened
    scores, issues = score_label_issues(probs, labels, ranking="auto")
    same, flags = score_label_issues(probs, labels, ranking=expected)
    np.testing.assert_allclose(scores, same)
    np.testing.assert_array_equal(issues, flags)
    np.testing.assert_array_equal(issues, score_label_issues(probs, labels)[1])  # the ranking never changes the flags
    data = Dataset.from_dict({"label": labels.tolist(), "clean_label": clean.tolist()})
    found = find_label_issues(probs, data, ranking="auto")
    assert found.ranking == expected  # the result says which ranking "auto" took
    np.testing.assert_allclose(found.scores, same)


def test_area_under_margin_is_the_mean_margin_over_epochs() -> None:
    rng = np.random.default_rng(0)
    passes = rng.normal(size=(5, 30, 4))
    labels = rng.integers(0, 4, 30)
    expected = [np.mean([p[i, labels[i]] - np.delete(p[i], labels[i]).max() for p in passes]) for i in range(30)]
    np.testing.assert_allclose(area_under_margin(passes, labels), expected)
    np.testing.assert_allclose(area_under_margin(list(passes), labels), expected)  # a list of passes too


def test_negative_area_under_margin_finds_the_labels_the_model_never_agreed_with() -> None:
    probs, labels, clean = noisy_problem(n=300, seed=2)
    logits = np.log(probs)
    passes = [logits + np.random.default_rng(e).normal(scale=0.05, size=logits.shape) for e in range(3)]
    aum = area_under_margin(passes, labels)
    np.testing.assert_array_equal(aum < 0, labels != clean)
    assert issue_report(aum < 0, labels != clean, -aum)["auprc"] == pytest.approx(1.0)


def test_margin_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="logits must be"):
        label_margins(np.zeros((3, 2)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="empty"):
        area_under_margin([], np.zeros(3, dtype=int))
