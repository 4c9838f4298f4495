"""Loss values and gradients against the closed forms of tests/loss_closed_forms.py: limits, reduction, ignore_index."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from jal_trainer.losses import LOSS_NAMES, build_loss, normalised_amse_terms

sys.path.insert(0, str(Path(__file__).parent))
from loss_closed_forms import FUSED, PARAMS, closed_form, make_batch  # noqa: E402


# --------------------------------------------------------------------- values and gradients


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_values_and_gradients_match_closed_form_float64(name: str, k: int) -> None:
    z, y = make_batch(16, k, seed=k)
    weights = torch.rand(16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z_lib = z.clone().requires_grad_()
    got = build_loss(name, reduction="none", **PARAMS[name])(z_lib, y)
    z_ref = z.clone().requires_grad_()
    want = closed_form(name, z_ref, y, PARAMS[name])
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-12)
    assert got.dtype == torch.float64
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    torch.testing.assert_close(z_lib.grad, z_ref.grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", FUSED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_kernel_matches_plain_formula(name: str, dtype: torch.dtype) -> None:
    z, y = make_batch(64, 37, seed=3, dtype=dtype)
    fused = build_loss(name, reduction="none", **PARAMS[name])
    plain = build_loss(name, reduction="none", **PARAMS[name])
    plain.use_fused_kernel = False
    assert fused.use_fused_kernel
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    v1, v2 = fused(z1, y), plain(z2, y)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-13}
    torch.testing.assert_close(v1, v2, **tol)
    weights = torch.linspace(-1.0, 2.0, 64, dtype=dtype)
    (v1 * weights).sum().backward()
    (v2 * weights).sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, **tol)


@pytest.mark.parametrize(("a", "gamma"), [(30.0, 0.0), (3.0, None), (None, 0.0), (5.0, 0.0)])
def test_fused_kernel_gradcheck_float64(a: float | None, gamma: float | None) -> None:
    # gamma > 0 detaches its weights, so its analytic gradient is not the numerical one; it is
    # covered by the closed-form comparisons above.
    z, y = make_batch(6, 5, seed=11)
    z.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: normalised_amse_terms(t, y, a=a, gamma=gamma), (z,))


# --------------------------------------------------------------------- limit cases


@pytest.mark.parametrize("fused", [True, False])
def test_amse_check_value_uniform_p(fused: bool) -> None:
    loss = build_loss("amse", a=30)
    loss.use_fused_kernel = fused
    value = loss(torch.full((3, 10), 2.5), torch.tensor([0, 4, 9]))
    assert value.item() == pytest.approx(89.41, rel=1e-6)  # (29.9^2 + 9 * 0.01) / 10


def test_gce_tends_to_ce_as_q_goes_to_zero() -> None:
    z, y = make_batch(32, 10, seed=5)
    ce = F.cross_entropy(z, y, reduction="none")
    gaps = [
        (build_loss("gce", q=q, reduction="none")(z, y) - ce).abs().max().item() for q in (1e-1, 1e-3, 1e-6)
    ]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-4


def test_sce_with_beta_zero_is_alpha_times_ce() -> None:
    z, y = make_batch(32, 10, seed=6)
    got = build_loss("sce", alpha=0.7, beta=0.0, reduction="none")(z, y)
    torch.testing.assert_close(got, 0.7 * F.cross_entropy(z, y, reduction="none"))


def test_mae_default_scale_is_l1_distance_to_one_hot() -> None:
    z, y = make_batch(32, 10, seed=7)
    l1 = (torch.softmax(z, 1) - F.one_hot(y, 10)).abs().sum(1)
    torch.testing.assert_close(build_loss("mae", reduction="none")(z, y), l1)


def test_nce_mae_passive_term_uses_beta_not_beta_times_two() -> None:
    z, y = make_batch(8, 10, seed=8)
    _, passive = build_loss("nce+mae", alpha=1.0, beta=0.5).parts(z, y)
    torch.testing.assert_close(passive, 0.5 * (1 - torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)))


# --------------------------------------------------------------------- reduction and ignore_index


def test_ce_matches_f_cross_entropy_with_ignore_index() -> None:
    z, y = make_batch(20, 7, seed=9)
    y[[1, 4, 5]] = -100
    for reduction in ("mean", "sum", "none"):
        z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
        got = build_loss("ce", reduction=reduction)(z1, y)
        want = F.cross_entropy(z2, y, reduction=reduction)
        torch.testing.assert_close(got, want)
        got.sum().backward()
        want.sum().backward()
        torch.testing.assert_close(z1.grad, z2.grad)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_reduction_and_ignore_semantics(name: str) -> None:
    z, y = make_batch(12, 6, seed=10)
    ignored = torch.tensor([0, 3, 7])
    y_ign = y.clone()
    y_ign[ignored] = -100
    per = closed_form(name, z, y, PARAMS[name])
    keep = torch.ones(12, dtype=torch.bool)
    keep[ignored] = False
    none = build_loss(name, reduction="none", **PARAMS[name])(z, y_ign)
    torch.testing.assert_close(none[keep], per[keep], rtol=1e-6, atol=1e-12)
    assert torch.all(none[ignored] == 0)
    total = build_loss(name, reduction="sum", **PARAMS[name])(z, y_ign)
    torch.testing.assert_close(total, per[keep].sum(), rtol=1e-6, atol=1e-12)
    zg = z.clone().requires_grad_()
    mean = build_loss(name, reduction="mean", **PARAMS[name])(zg, y_ign)
    torch.testing.assert_close(mean, per[keep].mean(), rtol=1e-6, atol=1e-12)
    mean.backward()
    assert torch.all(zg.grad[ignored] == 0)
    assert torch.all(zg.grad[keep].abs().sum(1) > 0)


@pytest.mark.parametrize("name", ["ce", "jal-ce", "nce+rce"])
def test_all_ignored_batch_mirrors_f_cross_entropy(name: str) -> None:
    z = torch.randn(4, 5, requires_grad=True)
    y = torch.full((4,), -100)
    assert math.isnan(F.cross_entropy(z, y).item())  # the behaviour being mirrored
    mean = build_loss(name)(z, y)
    assert math.isnan(mean.item())
    mean.backward()
    assert torch.all(z.grad == 0)
    assert build_loss(name, reduction="sum")(z, y).item() == 0.0
    assert torch.all(build_loss(name, reduction="none")(z, y) == 0)


def test_custom_ignore_index_inside_class_range() -> None:
    z, y = make_batch(10, 5, seed=12)
    y[:3] = 2
    got = build_loss("jal-ce", ignore_index=2, reduction="none")(z, y)
    want = closed_form("jal-ce", z, y, {"alpha": 1.0, "beta": 1.0, "a": 30.0})
    keep = y != 2
    assert torch.all(got[~keep] == 0)
    torch.testing.assert_close(got[keep], want[keep])


def test_empty_batch() -> None:
    z, y = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    assert math.isnan(build_loss("jal-ce")(z, y).item()) and math.isnan(F.cross_entropy(z, y).item())
    assert build_loss("jal-ce", reduction="sum")(z, y).item() == 0.0
