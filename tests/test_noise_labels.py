"""Tests of the NumPy noise core that makes noisy labels: matrices, samplers, instance noise, majority vote."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jal_trainer.noise import (
    CIFAR100_FINE_LABELS,
    CIFAR100_SUPERCLASSES,
    cifar100_superclass_groups,
    corrupt_labels,
    instance_dependent_labels,
    majority_vote,
    make_noisy_labels,
    transition_matrix,
)

# The standard CIFAR-100 fine -> coarse label array (as shipped in the CIFAR-100 python meta
# data and widely copied as "sparse2coarse"): an independent source for the super-class table.
CIFAR100_COARSE_OF_FINE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]  # fmt: skip


def pair_counts(clean: np.ndarray, noisy: np.ndarray, K: int) -> np.ndarray:
    """C[i, j] = number of samples of clean class i with noisy label j (plain loop, independent)."""
    C = np.zeros((K, K), dtype=np.int64)
    for c, z in zip(clean.tolist(), noisy.tolist(), strict=True):
        C[c, z] += 1
    return C


# ---------------------------------------------------------------------------------------------
# transition matrices
# ---------------------------------------------------------------------------------------------


def test_symmetric_and_pairflip_closed_forms():
    K, eta = 7, 0.35
    expected = np.full((K, K), eta / (K - 1))
    np.fill_diagonal(expected, 1 - eta)
    np.testing.assert_allclose(transition_matrix("symmetric", eta, K), expected)
    P = transition_matrix("pairflip", eta, K)
    for i in range(K):
        row = np.zeros(K)
        row[i], row[(i + 1) % K] = 1 - eta, eta
        np.testing.assert_allclose(P[i], row)


def test_cifar10_asym_map():
    T = transition_matrix("cifar10-asym", 0.4)
    flips = {9: 1, 2: 0, 3: 5, 5: 3, 4: 7}  # truck->automobile, bird->airplane, cat<->dog, deer->horse
    for i in range(10):
        expected = np.zeros(10)
        if i in flips:
            expected[i], expected[flips[i]] = 0.6, 0.4
        else:
            expected[i] = 1.0
        np.testing.assert_allclose(T[i], expected)
    clean = np.repeat(np.arange(10), 1000)
    noisy = corrupt_labels(clean, T, seed=3)
    C = pair_counts(clean, noisy, 10)
    assert C[9, 1] == C[2, 0] == C[3, 5] == C[5, 3] == C[4, 7] == 400
    assert (noisy != clean).mean() == pytest.approx(0.2)  # overall eta / 2


def test_cifar100_asym_blocks_of_five():
    T = transition_matrix("cifar100-asym", 0.2)
    for j in range(100):
        target = 5 * (j // 5) + (j % 5 + 1) % 5
        assert T[j, target] == pytest.approx(0.2) and T[j, j] == pytest.approx(0.8)
    assert T[4, 0] == pytest.approx(0.2) and T[99, 95] == pytest.approx(0.2)


def test_cifar100_fine_labels_and_superclasses_table():
    assert len(CIFAR100_FINE_LABELS) == 100 == len(set(CIFAR100_FINE_LABELS))
    assert list(CIFAR100_FINE_LABELS) == sorted(CIFAR100_FINE_LABELS)
    members = [name for group in CIFAR100_SUPERCLASSES.values() for name in group]
    assert len(CIFAR100_SUPERCLASSES) == 20 and sorted(members) == sorted(CIFAR100_FINE_LABELS)
    # each super-class equals one coarse label of the standard fine -> coarse array
    for coarse, group in enumerate(cifar100_superclass_groups()):
        assert group == [f for f in range(100) if CIFAR100_COARSE_OF_FINE[f] == coarse]


def test_cifar100_superclass_flips_to_next_in_true_superclass():
    T = transition_matrix("cifar100-superclass", 0.3)
    coarse = np.array(CIFAR100_COARSE_OF_FINE)
    for f in range(100):
        same = np.flatnonzero(coarse == coarse[f])
        target = same[(np.searchsorted(same, f) + 1) % 5]
        assert T[f, target] == pytest.approx(0.3) and T[f, f] == pytest.approx(0.7)
    name = CIFAR100_FINE_LABELS.index
    assert T[name("beaver"), name("dolphin")] == pytest.approx(0.3)
    assert T[name("whale"), name("beaver")] == pytest.approx(0.3)  # wraps within aquatic mammals
    assert not np.allclose(T, transition_matrix("cifar100-asym", 0.3))


def test_class_maps_and_matrices():
    T = transition_matrix({0: 2, 1: 0}, 0.3, 3)
    np.testing.assert_allclose(T, [[0.7, 0, 0.3], [0.3, 0.7, 0], [0, 0, 1]])
    T = transition_matrix({0: {1: 0.1, 2: 0.2}}, None, 3)
    np.testing.assert_allclose(T[0], [0.7, 0.1, 0.2])
    M = np.array([[0.9, 0.1], [0.25, 0.75]])
    np.testing.assert_array_equal(transition_matrix(M), M)
    np.testing.assert_array_equal(transition_matrix(M.tolist()), M)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["symmetric", "pairflip", "cifar10-asym", "cifar100-asym", "cifar100-superclass"]),
    rate=st.floats(0, 1),
    K=st.integers(2, 30),
)
def test_rows_sum_to_one_and_are_nonnegative(kind, rate, K):
    T = transition_matrix(kind, rate, None if kind.startswith("cifar") else K)
    assert np.all(T >= 0)
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-12)
    assert np.trace(T) / T.shape[0] <= 1.0


# ---------------------------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------------------------


def test_exact_symmetric_realised_rate_of_the_paper():
    clean = np.repeat(np.arange(10), 5000)
    noisy = corrupt_labels(clean, transition_matrix("symmetric", 0.8, 10), seed=0)
    assert (noisy != clean).mean() == 0.7992
    C = pair_counts(clean, noisy, 10)
    off = C[~np.eye(10, dtype=bool)]
    assert np.all(off == 444)  # floor(0.8 / 9 * 5000)
    assert np.all(np.diagonal(C) == 5000 - 9 * 444)


def test_exact_counts_survive_float_rounding():
    # 0.29 * 100 == 28.999999999999996 in floating point; the exact sampler must still move 29
    clean = np.zeros(100, dtype=int)
    noisy = corrupt_labels(clean, [[0.71, 0.29], [0.0, 1.0]], seed=0)
    assert (noisy == 1).sum() == 29


@st.composite
def labels_and_matrix(draw):
    K = draw(st.integers(2, 6))
    weights = draw(st.lists(st.lists(st.integers(0, 6), min_size=K, max_size=K), min_size=K, max_size=K))
    W = np.array(weights, dtype=float)
    W[np.arange(K), np.arange(K)] += 1  # no empty row
    sizes = draw(st.lists(st.integers(0, 40), min_size=K, max_size=K))
    labels = np.repeat(np.arange(K), sizes)
    order = draw(st.permutations(range(labels.size)))
    seed = draw(st.integers(0, 2**32 - 1))
    return labels[list(order)], W / W.sum(axis=1, keepdims=True), seed


@settings(max_examples=150, deadline=None)
@given(labels_and_matrix())
def test_exact_sampler_pair_counts_are_floor_T_n(case):
    labels, T, seed = case
    K = T.shape[0]
    noisy = corrupt_labels(labels, T, seed=seed)
    C = pair_counts(labels, noisy, K)
    sizes = np.bincount(labels, minlength=K)
    for i in range(K):
        for j in range(K):
            if i != j:  # floor of T * n, reading values within 1e-9 of an integer as that integer
                assert C[i, j] == math.floor(round(T[i, j] * sizes[i], 9)), (i, j)
    np.testing.assert_array_equal(C.sum(axis=1), sizes)


def test_exact_sampler_picks_flipped_samples_uniformly():
    clean = np.zeros(10, dtype=int)
    T = [[0.7, 0.3], [0.0, 1.0]]
    hits = np.zeros(10)
    runs = 3000
    for seed in range(runs):
        hits += corrupt_labels(clean, T, seed=seed) == 1
    # each of the 10 samples is one of the 3 flipped ones with probability 0.3 (sd ~ 0.008)
    np.testing.assert_allclose(hits / runs, 0.3, atol=0.04)


def test_iid_sampler_matches_rows_and_never_draws_zero_probability_classes():
    K, n = 5, 40000
    clean = np.repeat(np.arange(K), n // K)
    T = transition_matrix("pairflip", 0.3, K)
    noisy = corrupt_labels(clean, T, seed=1, sampler="iid")
    C = pair_counts(clean, noisy, K)
    assert np.all(C[T == 0] == 0)
    # binomial(8000, 0.3): sd ~ 41 -> within 5 sd
    assert np.all(np.abs(C[T > 0] - T[T > 0] * (n // K)) < 5 * math.sqrt(n // K * 0.21))


def test_determinism_and_no_global_state():
    clean = np.random.default_rng(0).integers(0, 10, 2000)
    T = transition_matrix("symmetric", 0.5, 10)
    state = np.random.get_state()
    for sampler in ("exact", "iid"):
        a = corrupt_labels(clean, T, seed=7, sampler=sampler)
        np.testing.assert_array_equal(a, corrupt_labels(clean, T, seed=7, sampler=sampler))
        np.testing.assert_array_equal(a, corrupt_labels(clean, T, seed=np.random.default_rng(7), sampler=sampler))
        assert not np.array_equal(a, corrupt_labels(clean, T, seed=8, sampler=sampler))
    rng = np.random.default_rng(3)
    assert not np.array_equal(corrupt_labels(clean, T, seed=rng), corrupt_labels(clean, T, seed=rng))
    assert np.array_equal(np.random.get_state()[1], state[1])


def test_make_noisy_labels_dispatches_on_kind():
    clean = np.repeat(np.arange(10), 100)
    noisy, T = make_noisy_labels(clean, "cifar10-asym", 0.4, seed=0)
    np.testing.assert_array_equal(T, transition_matrix("cifar10-asym", 0.4))
    np.testing.assert_array_equal(noisy, corrupt_labels(clean, T, seed=0))
    noisy, T = make_noisy_labels(clean, {0: 1}, 0.5, seed=0)
    assert T.shape == (10, 10) and ((clean == 0) & (noisy == 1)).sum() == 50


# ---------------------------------------------------------------------------------------------
# instance-dependent noise
# ---------------------------------------------------------------------------------------------


def test_instance_noise_average_rate_and_determinism():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 20000)
    x = rng.normal(size=(20000, 16))
    noisy = instance_dependent_labels(y, x, 0.4, seed=1)
    assert abs((noisy != y).mean() - 0.4) < 0.015
    np.testing.assert_array_equal(noisy, instance_dependent_labels(y, x, 0.4, seed=1))
    assert not np.array_equal(noisy, instance_dependent_labels(y, x, 0.4, seed=2))
    assert np.all(instance_dependent_labels(y, x, 0.0, seed=1, std=0.0) == y)
    # with the default spread a rate of 0 still flips: E[q] of N(0, 0.1^2) cut to [0, 1] is 0.1 * sqrt(2 / pi)
    assert abs((instance_dependent_labels(y, x, 0.0, seed=1) != y).mean() - 0.1 * math.sqrt(2 / math.pi)) < 0.01
    per_class = [(noisy[y == k] != k).mean() for k in range(10)]
    assert max(per_class) - min(per_class) < 0.06


def test_instance_noise_flip_target_depends_on_the_features():
    # 40 distinct (feature, label) prototypes, each repeated 50 times. With large features the
    # softmax is one-hot, so all flipped copies of one prototype go to the same class; the
    # flip target is a function of the instance, unlike class-conditional noise.
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(40, 8)) * 1e4
    proto_labels = rng.integers(0, 5, 40)
    idx = np.repeat(np.arange(40), 50)
    noisy = instance_dependent_labels(proto_labels[idx], protos[idx], 0.5, seed=0, num_classes=5, std=0.0)
    targets_per_proto = [set(noisy[(idx == p) & (noisy != proto_labels[p])].tolist()) for p in range(40)]
    assert all(len(t) == 1 for t in targets_per_proto)
    assert len({t.pop() for t in targets_per_proto}) > 1


def test_instance_noise_needs_matching_features():
    with pytest.raises(ValueError, match=r"one row per label.*\(100, \.\.\.\)"):
        instance_dependent_labels(np.zeros(100, int), np.zeros((99, 3)), 0.2, seed=0, num_classes=3)
    with pytest.raises(ValueError, match="needs features"):
        make_noisy_labels(np.zeros(10, int), "instance", 0.2, seed=0, num_classes=3)


# ---------------------------------------------------------------------------------------------
# majority vote
# ---------------------------------------------------------------------------------------------


def test_majority_vote_rules_on_handmade_rows():
    votes = np.array(
        [
            [0, 0, 1, -1],  # clear majority: 0
            [-1, 2, -1, -1],  # single vote: 2
            [0, 1, -1, -1],  # tie 0 / 1
            [2, 2, 1, 1],  # tie 1 / 2
            [-1, -1, -1, -1],  # all abstain
        ]
    )
    labels, covered = majority_vote(votes, 3, seed=0, tie_break="lowest")
    assert labels[:4].tolist() == [0, 2, 0, 1]
    assert covered.tolist() == [True, True, True, True, False]
    many = np.repeat(votes, 2000, axis=0)
    labels, covered = majority_vote(many, 3, seed=0)
    rows = labels.reshape(5, 2000)
    assert set(rows[0]) == {0} and set(rows[1]) == {2}
    assert set(rows[2]) == {0, 1} and abs(rows[2].mean() - 0.5) < 0.05
    assert set(rows[3]) == {1, 2} and abs(rows[3].mean() - 1.5) < 0.05
    np.testing.assert_allclose(np.bincount(rows[4], minlength=3) / 2000, 1 / 3, atol=0.04)
    again, _ = majority_vote(many, 3, seed=0)
    np.testing.assert_array_equal(labels, again)


def test_majority_vote_bad_votes():
    with pytest.raises(ValueError, match="neither a class"):
        majority_vote([[0, 3]], 3, seed=0)
    with pytest.raises(ValueError, match="tie_break"):
        majority_vote([[0, 1]], 3, seed=0, tie_break="first")
