"""Tests of jal_trainer.losses against closed forms written here, straight from the reference table.

The closed forms below use ``p = softmax(z)`` and ``log(p)`` and one-hot vectors exactly as
docs/jal-reference.md section 1 and the official code write them; they share no code with the
library (which works on log_softmax and, for NCE/NFL/AMSE/JAL, a fused kernel).
"""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from jal_trainer.losses import LOSS_NAMES, PRESETS, build_loss, normalised_amse_terms

ROOT = Path(__file__).resolve().parents[1]

COMBINATIONS = {
    "sce", "nce+mae", "nce+rce", "nfl+rce", "nce+agce", "nce+aul", "nce+ael",
    "anl-ce", "anl-fl", "jal-ce", "jal-fl",
}  # fmt: skip
FUSED = ("nce", "nfl", "amse", "jal-ce", "jal-fl")

# Non-default parameters for every loss, so that a formula test cannot pass on defaults alone.
PARAMS: dict[str, dict[str, float]] = {
    "ce": {},
    "focal": {"gamma": 1.5},
    "mae": {"scale": 1.7},
    "rce": {},
    "gce": {"q": 0.4},
    "sce": {"alpha": 0.6, "beta": 1.3},
    "nce": {},
    "nfl": {"gamma": 0.8},
    "agce": {"a": 2.5, "q": 1.2},
    "aul": {"a": 3.5, "q": 2.2},
    "ael": {"a": 2.0},
    "nnce": {},
    "amse": {"a": 7.0},
    "nce+mae": {"alpha": 2.0, "beta": 0.3},
    "nce+rce": {"alpha": 1.5, "beta": 0.7},
    "nfl+rce": {"alpha": 1.5, "beta": 0.7, "gamma": 1.0},
    "nce+agce": {"alpha": 1.2, "beta": 3.0, "a": 1.8, "q": 2.5},
    "nce+aul": {"alpha": 1.2, "beta": 3.0, "a": 4.0, "q": 1.5},
    "nce+ael": {"alpha": 1.2, "beta": 3.0, "a": 2.5},
    "anl-ce": {"alpha": 4.0, "beta": 6.0},
    "anl-fl": {"alpha": 4.0, "beta": 6.0, "gamma": 0.7},
    "jal-ce": {"alpha": 2.0, "beta": 0.5, "a": 12.0},
    "jal-fl": {"alpha": 2.0, "beta": 0.5, "a": 12.0, "gamma": 0.9},
}


# --------------------------------------------------------------------- closed forms (float64)


def _terms(name: str, z: torch.Tensor, y: torch.Tensor, prm: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(active, passive)`` of a combination, unweighted, from the table."""
    active_name, passive_name = {
        "sce": ("ce", "rce"), "nce+mae": ("nce", "mae1"), "nce+rce": ("nce", "rce"),
        "nfl+rce": ("nfl", "rce"), "nce+agce": ("nce", "agce"), "nce+aul": ("nce", "aul"),
        "nce+ael": ("nce", "ael"), "anl-ce": ("nce", "nnce"), "anl-fl": ("nfl", "nnfl"),
        "jal-ce": ("nce", "amse"), "jal-fl": ("nfl", "amse"),
    }[name]  # fmt: skip
    return _single(active_name, z, y, prm), _single(passive_name, z, y, prm)


def _single(name: str, z: torch.Tensor, y: torch.Tensor, prm: dict[str, float]) -> torch.Tensor:
    k = z.shape[1]
    p = torch.softmax(z, dim=1)
    e = F.one_hot(y, k).to(z.dtype)
    p_y = (p * e).sum(1)
    log_p = torch.log(p)
    gamma = prm.get("gamma", 0.5)
    if name == "ce":
        return -torch.log(p_y)
    if name == "focal":
        return -((1 - p_y).detach() ** gamma) * torch.log(p_y)
    if name == "mae":
        return prm["scale"] * (1 - p_y)
    if name == "mae1":
        return 1 - p_y
    if name == "rce":
        return -(p.clamp(1e-8, 1) * torch.log(e.clamp(1e-4, 1))).sum(1)
    if name == "gce":
        return (1 - p_y.clamp(1e-8, 1) ** prm["q"]) / prm["q"]
    if name == "nce":
        return -torch.log(p_y) / -log_p.sum(1)
    if name == "nfl":
        fl = -((1 - p).detach() ** gamma) * log_p
        return (fl * e).sum(1) / fl.sum(1)
    if name == "agce":
        a, q = prm["a"], prm["q"]
        return ((a + 1) ** q - (a + p_y) ** q) / q
    if name == "aul":
        a, q = prm["a"], prm["q"]
        return ((a - p_y) ** q - (a - 1) ** q) / q
    if name == "ael":
        return torch.exp(-p_y / prm["a"])
    if name == "nnce":
        big_a = -math.log(1e-8)
        shifted = big_a + torch.log(p.clamp(1e-8, 1))
        return 1 - (shifted * e).sum(1) / shifted.sum(1)
    if name == "nnfl":
        big_a = -((1 - 1e-8) ** gamma) * math.log(1e-8)
        log_pc = log_p.clamp(min=math.log(1e-8))
        fl = -((1 - log_pc.detach().exp()) ** gamma) * log_pc
        return 1 - (big_a - (fl * e).sum(1)) / (k * big_a - fl.sum(1))
    if name == "amse":
        return ((p - prm["a"] * e) ** 2).sum(1) / k
    raise KeyError(name)


def closed_form(name: str, z: torch.Tensor, y: torch.Tensor, prm: dict[str, float]) -> torch.Tensor:
    if name in COMBINATIONS:
        active, passive = _terms(name, z, y, prm)
        return prm["alpha"] * active + prm["beta"] * passive
    return _single(name, z, y, prm)


def _data(n: int, k: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = (3.0 * torch.randn(n, k, generator=gen, dtype=torch.float64)).to(dtype)
    y = torch.randint(0, k, (n,), generator=gen)
    return z, y


# --------------------------------------------------------------------- values and gradients


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_values_and_gradients_match_closed_form_float64(name: str, k: int) -> None:
    z, y = _data(16, k, seed=k)
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
    z, y = _data(64, 37, seed=3, dtype=dtype)
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
    z, y = _data(6, 5, seed=11)
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
    z, y = _data(32, 10, seed=5)
    ce = F.cross_entropy(z, y, reduction="none")
    gaps = [
        (build_loss("gce", q=q, reduction="none")(z, y) - ce).abs().max().item() for q in (1e-1, 1e-3, 1e-6)
    ]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-4


def test_sce_with_beta_zero_is_alpha_times_ce() -> None:
    z, y = _data(32, 10, seed=6)
    got = build_loss("sce", alpha=0.7, beta=0.0, reduction="none")(z, y)
    torch.testing.assert_close(got, 0.7 * F.cross_entropy(z, y, reduction="none"))


def test_mae_default_scale_is_l1_distance_to_one_hot() -> None:
    z, y = _data(32, 10, seed=7)
    l1 = (torch.softmax(z, 1) - F.one_hot(y, 10)).abs().sum(1)
    torch.testing.assert_close(build_loss("mae", reduction="none")(z, y), l1)


def test_nce_mae_passive_term_uses_beta_not_beta_times_two() -> None:
    z, y = _data(8, 10, seed=8)
    _, passive = build_loss("nce+mae", alpha=1.0, beta=0.5).parts(z, y)
    torch.testing.assert_close(passive, 0.5 * (1 - torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)))


# --------------------------------------------------------------------- reduction and ignore_index


def test_ce_matches_f_cross_entropy_with_ignore_index() -> None:
    z, y = _data(20, 7, seed=9)
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
    z, y = _data(12, 6, seed=10)
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
    z, y = _data(10, 5, seed=12)
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


# --------------------------------------------------------------------- parts, flags, dtypes


@pytest.mark.parametrize("name", sorted(COMBINATIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_parts_are_weighted_terms_and_sum_to_forward(name: str, dtype: torch.dtype) -> None:
    loss = build_loss(name, reduction="none", **PARAMS[name])
    assert loss.is_combination
    z, y = _data(9, 8, seed=13)
    y[2] = -100
    active, passive = loss.parts(z.to(dtype), y)
    assert active.shape == passive.shape == (9,)
    assert active.dtype == passive.dtype == torch.float32
    assert active[2] == 0 and passive[2] == 0
    torch.testing.assert_close(active + passive, loss(z.to(dtype), y), rtol=0, atol=0)
    keep = y != -100
    want_active, want_passive = _terms(name, z.to(dtype).double(), y.clamp(min=0), PARAMS[name])
    prm = PARAMS[name]
    torch.testing.assert_close(active[keep].double(), prm["alpha"] * want_active[keep], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(passive[keep].double(), prm["beta"] * want_passive[keep], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_is_combination_flag(name: str) -> None:
    loss = build_loss(name)
    assert loss.is_combination is (name in COMBINATIONS)
    assert hasattr(loss, "parts") is (name in COMBINATIONS)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_half_inputs_give_float32_close_to_float32_result(name: str, dtype: torch.dtype) -> None:
    z, y = _data(16, 10, seed=14)
    half = z.to(dtype)
    got = build_loss(name, reduction="none", **PARAMS[name])(half, y)
    assert got.dtype == torch.float32
    want = closed_form(name, half.double(), y, PARAMS[name])
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_autocast_does_not_lower_the_loss_precision() -> None:
    z, y = _data(16, 10, seed=15, dtype=torch.float32)
    loss = build_loss("jal-ce", reduction="none")
    plain = loss(z, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = loss(z, y)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, plain)


# --------------------------------------------------------------------- numerics at +-1e4


def _extreme_logits(dtype: torch.dtype) -> torch.Tensor:
    gen = torch.Generator().manual_seed(16)
    signs = torch.randint(0, 2, (8, 10), generator=gen) * 2.0 - 1.0
    z = signs * 1e4
    z[0] = 1e4  # all equal and huge: uniform p
    z[1] = -1e4
    z[2] = torch.linspace(-1e4, 1e4, 10)
    z[3, :] = -1e4
    z[3, 4] = 1e4  # one-hot p, label elsewhere below
    return z.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_no_nan_or_inf_at_extreme_logits(name: str, dtype: torch.dtype) -> None:
    z = _extreme_logits(dtype).requires_grad_()
    y = torch.tensor([0, 9, 9, 2, 4, 5, 6, 7])  # row 2: label at the max; row 3: p_y = 0
    loss = build_loss(name)
    per = build_loss(name, reduction="none")(z, y)
    value = loss(z, y)
    value.backward()
    assert torch.isfinite(per).all() and torch.isfinite(value)
    assert torch.isfinite(z.grad).all()
    if loss.use_fused_kernel:
        plain = build_loss(name, reduction="none")
        plain.use_fused_kernel = False
        torch.testing.assert_close(per, plain(z.detach(), y), rtol=1e-4, atol=1e-3)


# --------------------------------------------------------------------- presets and parameters


def test_registry_names_exactly() -> None:
    assert LOSS_NAMES == (
        "ce", "focal", "mae", "rce", "gce", "sce", "nce", "nfl", "agce", "aul", "ael", "nnce",
        "amse", "nce+mae", "nce+rce", "nfl+rce", "nce+agce", "nce+aul", "nce+ael", "anl-ce",
        "anl-fl", "jal-ce", "jal-fl",
    )  # fmt: skip
    assert set(PRESETS) == {"cifar10", "cifar100", "webvision", "clothing1m", "finetune"}


# JAL (alpha, beta, a) from reference section 4.
@pytest.mark.parametrize(
    ("preset", "expected"),
    [("cifar10", (1, 1, 30)), ("cifar100", (5, 1, 20)), ("webvision", (50, 1, 30)), ("clothing1m", (5, 0.1, 5))],
)
@pytest.mark.parametrize("name", ["jal-ce", "jal-fl"])
def test_jal_presets(name: str, preset: str, expected: tuple[float, float, float]) -> None:
    hp = build_loss(name, preset=preset).hparams
    assert (hp["alpha"], hp["beta"], hp["a"]) == expected
    if name == "jal-fl":
        assert hp["gamma"] == 0.5


# Baselines from reference section 5 (CIFAR-10 / CIFAR-100).
@pytest.mark.parametrize(
    ("name", "cifar10", "cifar100"),
    [
        ("gce", {"q": 0.7}, {"q": 0.7}),
        ("sce", {"alpha": 0.1, "beta": 1}, {"alpha": 6, "beta": 0.1}),
        ("nce+rce", {"alpha": 1, "beta": 1}, {"alpha": 10, "beta": 0.1}),
        ("nfl+rce", {"alpha": 1, "beta": 1}, {"alpha": 10, "beta": 0.1}),
        ("nce+mae", {"alpha": 1, "beta": 1}, {"alpha": 10, "beta": 0.1}),
        ("nce+agce", {"alpha": 1, "beta": 4, "a": 6, "q": 1.5}, {"alpha": 10, "beta": 0.1, "a": 1.8, "q": 3}),
        ("nce+aul", {"alpha": 1, "beta": 4, "a": 6.3, "q": 1.5}, {"alpha": 10, "beta": 0.015, "a": 6, "q": 3}),
        ("nce+ael", {"alpha": 1, "beta": 4, "a": 5}, {"alpha": 10, "beta": 0.1, "a": 1.5}),
        ("anl-ce", {"alpha": 5, "beta": 5}, {"alpha": 10, "beta": 1}),
        ("anl-fl", {"alpha": 5, "beta": 5}, {"alpha": 10, "beta": 1}),
    ],
)
def test_baseline_presets(name: str, cifar10: dict[str, float], cifar100: dict[str, float]) -> None:
    for preset, expected in (("cifar10", cifar10), ("cifar100", cifar100)):
        hp = build_loss(name, preset=preset).hparams
        assert {key: hp[key] for key in expected} == expected


def test_explicit_params_override_preset_and_spec_records_them() -> None:
    loss = build_loss("jal-ce", preset="cifar100", a=10, reduction="sum")
    assert loss.hparams == {"alpha": 5.0, "beta": 1.0, "a": 10.0}
    assert loss.spec == {
        "name": "jal-ce", "preset": "cifar100", "reduction": "sum", "ignore_index": -100,
        "params": {"alpha": 5.0, "beta": 1.0, "a": 10.0},
    }  # fmt: skip
    rebuilt = build_loss(loss.spec["name"], reduction=loss.spec["reduction"], **loss.spec["params"])
    z, y = _data(5, 10, seed=17)
    torch.testing.assert_close(rebuilt(z, y), loss(z, y))
    assert "a=10" in repr(loss)


def test_parameterless_losses_accept_every_preset() -> None:
    for preset in PRESETS:
        for name in ("ce", "rce", "nce", "nnce"):
            assert build_loss(name, preset=preset).hparams == {}


def test_defaults() -> None:
    assert build_loss("focal").hparams == {"gamma": 0.5}
    assert build_loss("nfl").hparams == {"gamma": 0.5}
    assert build_loss("gce").hparams == {"q": 0.7}
    assert build_loss("mae").hparams == {"scale": 2.0}
    assert build_loss("amse").hparams == {"a": 30.0}
    assert build_loss("jal-ce").hparams == {"alpha": 1.0, "beta": 1.0, "a": 30.0}


# --------------------------------------------------------------------- errors


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown loss name 'jal_ce'.*jal-ce.*Did you mean 'jal-ce'"):
        build_loss("jal_ce")


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ValueError, match=r"unknown preset 'cifar-10'.*cifar10, cifar100, webvision, clothing1m"):
        build_loss("jal-ce", preset="cifar-10")


def test_preset_without_values_says_which_presets_define_the_loss() -> None:
    with pytest.raises(ValueError, match=r"'webvision' has no values for loss 'nce\+rce'.*cifar10, cifar100"):
        build_loss("nce+rce", preset="webvision")
    with pytest.raises(ValueError, match=r"no preset defines it.*\(gamma\)"):
        build_loss("focal", preset="cifar10")


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("ce", {"q": 0.5}, r"ce has no parameter 'q': it takes no parameters"),
        ("jal-ce", {"gamma": 0.5}, r"its parameters are alpha, beta, a"),
        ("gce", {"a": 2.0, "q": 0.5}, r"gce has no parameter 'a': its parameters are q"),
    ],
)
def test_unknown_parameter_lists_the_loss_parameters(name: str, params: dict[str, float], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build_loss(name, **params)


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("amse", {"a": 1.0}, r"a > 1"),
        ("jal-ce", {"a": 0.5}, r"a > 1"),
        ("jal-fl", {"a": 1.0}, r"a > 1"),
        ("gce", {"q": 0.0}, r"q > 0"),
        ("agce", {"q": -1.0}, r"q > 0"),
        ("nce+aul", {"q": 0.0}, r"q > 0"),
        ("jal-ce", {"alpha": -1.0}, r"alpha >= 0"),
        ("sce", {"beta": -0.1}, r"beta >= 0"),
        ("mae", {"scale": -2.0}, r"scale >= 0"),
        ("focal", {"gamma": -0.5}, r"gamma >= 0"),
        ("nfl+rce", {"gamma": -1.0}, r"gamma >= 0"),
        ("agce", {"a": 0.0}, r"a > 0"),
        ("nce+agce", {"a": -1.0}, r"a > 0"),
        ("aul", {"a": 1.0}, r"a > 1"),
        ("nce+aul", {"a": 0.5}, r"a > 1"),
        ("ael", {"a": 0.0}, r"a > 0"),
        ("nce+ael", {"a": -2.0}, r"a > 0"),
        ("jal-ce", {"a": float("nan")}, r"a > 1"),
        ("jal-ce", {"beta": float("inf")}, r"beta >= 0"),
    ],
)
def test_out_of_range_parameters(name: str, params: dict[str, float], pattern: str) -> None:
    with pytest.raises(ValueError, match=f"{re.escape(name)}: parameter .*out of range.*{pattern}"):
        build_loss(name, **params)


@pytest.mark.parametrize("value", [True, "30", None])
def test_non_numeric_parameter(value: object) -> None:
    with pytest.raises(ValueError, match=r"must be a real number"):
        build_loss("jal-ce", a=value)


def test_bad_reduction_and_ignore_index() -> None:
    with pytest.raises(ValueError, match=r"reduction must be one of mean, sum, none"):
        build_loss("ce", reduction="avg")
    with pytest.raises(ValueError, match=r"ignore_index must be an int"):
        build_loss("ce", ignore_index=-100.0)


@pytest.mark.parametrize("name", ["ce", "jal-ce", "nce+rce"])
def test_labels_out_of_range(name: str) -> None:
    z = torch.randn(4, 5)
    loss = build_loss(name)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\).*from 0 to 5"):
        loss(z, torch.tensor([0, 1, 5, 2]))
    with pytest.raises(ValueError, match=r"from -1 to 2"):
        loss(z, torch.tensor([0, -1, -100, 2]))
    if loss.is_combination:
        with pytest.raises(ValueError, match=r"labels must lie"):
            loss.parts(z, torch.tensor([0, 1, 7, 2]))


@pytest.mark.parametrize(
    ("logits", "labels", "pattern"),
    [
        (torch.randn(5), torch.zeros(5, dtype=torch.long), r"shape \(N, K\)"),
        (torch.randn(2, 3, 4), torch.zeros(2, dtype=torch.long), r"shape \(N, K\)"),
        (torch.randn(4, 1), torch.zeros(4, dtype=torch.long), r"at least 2 classes"),
        (torch.randint(0, 3, (4, 3)), torch.zeros(4, dtype=torch.long), r"floating point"),
        (torch.randn(4, 3), torch.zeros(3, dtype=torch.long), r"labels must have shape \(N,\) = \(4,\)"),
        (torch.randn(4, 3), torch.zeros(4), r"integer class indices"),
    ],
)
def test_bad_inputs(logits: torch.Tensor, labels: torch.Tensor, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build_loss("jal-ce")(logits, labels)


# --------------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(LOSS_NAMES),
    k=st.integers(2, 12),
    shift=st.floats(-50, 50),
    seed=st.integers(0, 2**16),
)
def test_every_loss_is_invariant_to_a_per_row_logit_shift(name: str, k: int, shift: float, seed: int) -> None:
    z, y = _data(6, k, seed=seed)
    loss = build_loss(name, reduction="none")
    torch.testing.assert_close(loss(z + shift, y), loss(z, y), rtol=1e-6, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(2, 30),
    a=st.floats(1.01, 50),
    scale=st.floats(0.01, 20),
    seed=st.integers(0, 2**16),
)
def test_amse_lies_between_its_bounds(k: int, a: float, scale: float, seed: int) -> None:
    # (a - p_y)^2 + sum_{k != y} p_k^2 lies in [(a - 1)^2, a^2 + 1]; the passive part is beta * that / K
    z, y = _data(8, k, seed=seed, dtype=torch.float32)
    value = build_loss("amse", a=a, reduction="none")(scale * z, y)
    assert torch.all(value >= (a - 1) ** 2 / k * (1 - 1e-5))
    assert torch.all(value <= (a * a + 1) / k * (1 + 1e-5))


# --------------------------------------------------------------------- import hygiene and benchmark


def test_losses_import_neither_transformers_nor_datasets() -> None:
    code = "import sys, jal_trainer.losses; print(sorted(m for m in ('transformers', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_benchmark_reference_composition_is_jal_ce() -> None:
    spec = importlib.util.spec_from_file_location("bench_losses", ROOT / "recipes" / "bench_losses.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    z, y = _data(32, 10, seed=18, dtype=torch.float32)
    want = build_loss("jal-ce", alpha=2.0, beta=0.5, a=12.0)(z, y)
    torch.testing.assert_close(bench.reference_jal_ce(z, y, 2.0, 0.5, 12.0), want)
