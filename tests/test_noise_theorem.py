"""Tests of the NumPy noise core's checks: Theorem 4.1, the noise report, bad input and import hygiene."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from jal_trainer.noise import (
    NOISE_KINDS,
    check_a,
    corrupt_labels,
    min_admissible_a,
    noise_report_from_labels,
    realised_transition_matrix,
    transition_matrix,
)


# ---------------------------------------------------------------------------------------------
# Theorem 4.1
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "eta", "K", "expected"),
    [
        ("symmetric", 0.2, 10, 1.29),
        ("symmetric", 0.4, 10, 1.8),
        ("symmetric", 0.6, 10, 3.0),
        ("symmetric", 0.8, 10, 9.0),
        ("symmetric", 0.8, 100, 5.21),
        ("pairflip", 0.4, 10, 5.0),
    ],
)
def test_bound_values_of_the_reference(kind, eta, K, expected):
    assert min_admissible_a(transition_matrix(kind, eta, K)) == pytest.approx(expected, abs=0.005)


@settings(max_examples=40, deadline=None)
@given(K=st.integers(2, 50), eta=st.floats(0, 0.95))
def test_symmetric_bound_closed_form(K, eta):
    assume(abs(K - 1 - K * eta) > 1e-6)  # on the boundary float rounding decides either way
    if K - 1 - K * eta < 0:  # not clean-dominant
        with pytest.raises(ValueError, match="row 0"):
            min_admissible_a(transition_matrix("symmetric", eta, K))
    else:
        expected = (K - 1) / (K - 1 - K * eta)
        assert min_admissible_a(transition_matrix("symmetric", eta, K)) == pytest.approx(expected, rel=1e-9)


def test_no_admissible_a_names_the_row():
    T = np.eye(4)
    T[2] = [0.1, 0.4, 0.4, 0.1]
    with pytest.raises(ValueError, match=r"row 2 .*0\.4"):
        min_admissible_a(T)
    assert check_a(50.0, T) == (False, math.inf)
    ok, bound = check_a(8.9, transition_matrix("symmetric", 0.8, 10))
    assert not ok and bound == pytest.approx(9.0)
    assert check_a(30.0, transition_matrix("symmetric", 0.8, 10))[0]


def weighted_amse(U: np.ndarray, w: np.ndarray, a: float) -> np.ndarray:
    """sum_i w_i * AMSE(u, i), AMSE(u, i) = (1/K) ||a e_i - u||^2, for each row u of U (N, K)."""
    K = w.size
    diff = a * np.eye(K)[None, :, :] - U[:, None, :]  # (N, K_i, K)
    return (w[None, :] * (diff**2).sum(axis=2) / K).sum(axis=1)


def simplex_candidates(K: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """Vertices, a fine grid on every edge from e_m, and random points of the simplex."""
    eye = np.eye(K)
    t = np.linspace(0, 1, 2001)[1:, None]
    edges = [(1 - t) * eye[m] + t * eye[j] for j in range(K) if j != m]
    near = eye[m] + 0.02 * (rng.dirichlet(np.ones(K), 3000) - eye[m])  # close to e_m
    return np.concatenate([eye, *edges, rng.dirichlet(np.ones(K), 20000), rng.dirichlet(0.2 * np.ones(K), 5000), near])


@pytest.mark.parametrize("trial", range(12))
def test_theorem_4_1_minimiser_is_the_dominant_vertex_exactly_above_the_bound(trial):
    rng = np.random.default_rng(100 + trial)
    K = int(rng.integers(2, 7))
    w = rng.dirichlet(np.ones(K))
    w = np.sort(w)[::-1]
    if w[0] - w[1] < 0.05:  # keep clean-dominant rows with a bound that is not astronomically large
        w[0] += 0.05
        w /= w.sum()
    T = np.eye(K)
    T[0] = w  # row 0 carries the noise; its dominant class is 0
    bound = min_admissible_a(T)
    U = simplex_candidates(K, 0, rng)
    for a in (bound * 1.001, bound * 1.5, bound + 10):
        f = weighted_amse(U, w, a)
        assert np.argmin(f) == 0 and f.min() >= f[0] - 1e-12  # e_0 is the first candidate
    for a in (bound * 0.98, (1 + bound) / 2):
        f = weighted_amse(U, w, a)
        assert f.min() < f[0] - 1e-12  # some point beats e_0: AMSE is not asymmetric
        assert np.all(f[:K] >= f[0])  # ... though e_0 is still the best vertex


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def test_report_against_counts():
    clean = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    noisy = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 0])
    r = noise_report_from_labels(clean, noisy, num_classes=4)
    assert r.noise_rate == 0.3
    np.testing.assert_allclose(r.per_class_rate[:3], [0.25, 0.5, 0.25])
    assert np.isnan(r.per_class_rate[3]) and np.all(np.isnan(r.realised_T[3]))
    np.testing.assert_allclose(r.realised_T[:3], [[0.75, 0.25, 0, 0], [0.5, 0.5, 0, 0], [0.25, 0, 0.75, 0]])
    # realised rows: 1/(0.75-0.25) = 2, row 1 not dominant -> no a
    assert r.min_a is None and r.binding_class == 1 and "no admissible a" in str(r)
    json.dumps(r.to_dict())
    np.testing.assert_allclose(realised_transition_matrix(clean, noisy, 4)[:3], r.realised_T[:3])


def test_report_bound_on_requested_matrix():
    clean = np.repeat(np.arange(10), 5000)
    T = transition_matrix("symmetric", 0.8, 10)
    noisy = corrupt_labels(clean, T, seed=0)
    realised = noise_report_from_labels(clean, noisy)
    assert realised.min_a == pytest.approx(1 / (1004 / 5000 - 444 / 5000))
    requested = noise_report_from_labels(clean, noisy, T=T)
    assert requested.min_a == pytest.approx(9.0) and requested.min_a_source == "requested"
    assert "79.92%" in str(requested)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), "high"])
def test_rate_outside_unit_interval(rate):
    with pytest.raises(ValueError, match=r"rate"):
        transition_matrix("symmetric", rate, 10)


def test_bad_input_messages():
    with pytest.raises(ValueError, match="needs a noise rate"):
        transition_matrix("symmetric", None, 10)
    with pytest.raises(ValueError, match="negative diagonal"):
        transition_matrix({0: {1: 0.7, 2: 0.6}}, None, 3)
    with pytest.raises(ValueError, match="sends class 1 to itself"):
        transition_matrix({1: 1}, 0.2, 3)
    with pytest.raises(ValueError, match="is negative"):
        transition_matrix([[1.2, -0.2], [0, 1]])
    with pytest.raises(ValueError, match="sums to"):
        transition_matrix([[0.5, 0.4], [0, 1]])
    with pytest.raises(ValueError, match="square"):
        transition_matrix(np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="defined for 10 classes"):
        transition_matrix("cifar10-asym", 0.2, 12)
    with pytest.raises(ValueError) as err:
        transition_matrix("gaussian", 0.2, 10)
    assert all(kind in str(err.value) for kind in NOISE_KINDS)
    T = transition_matrix("symmetric", 0.2, 3)
    with pytest.raises(ValueError, match=r"\[0, 3\).*found 3"):
        corrupt_labels([0, 1, 3], T, seed=0)
    with pytest.raises(ValueError, match="integer"):
        corrupt_labels(np.array([0.5, 1.0]), T, seed=0)
    with pytest.raises(ValueError, match="seed"):
        corrupt_labels([0, 1], T, seed=None)
    with pytest.raises(ValueError, match="sampler"):
        corrupt_labels([0, 1], T, seed=0, sampler="poisson")


def test_core_imports_no_framework():
    code = (
        "import sys, jal_trainer.noise; print([m for m in ('torch', 'transformers', 'datasets') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
