"""Loss numerics: weighted parts, half precision and autocast, extreme logits, and properties over random cases."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jal_trainer.losses import LOSS_NAMES, build_loss

sys.path.insert(0, str(Path(__file__).parent))
from loss_closed_forms import COMBINATIONS, PARAMS, closed_form, combination_terms, make_batch  # noqa: E402


# --------------------------------------------------------------------- parts, flags, dtypes


@pytest.mark.parametrize("name", sorted(COMBINATIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_parts_are_weighted_terms_and_sum_to_forward(name: str, dtype: torch.dtype) -> None:
    loss = build_loss(name, reduction="none", **PARAMS[name])
    assert loss.is_combination
    z, y = make_batch(9, 8, seed=13)
    y[2] = -100
    active, passive = loss.parts(z.to(dtype), y)
    assert active.shape == passive.shape == (9,)
    assert active.dtype == passive.dtype == torch.float32
    assert active[2] == 0 and passive[2] == 0
    torch.testing.assert_close(active + passive, loss(z.to(dtype), y), rtol=0, atol=0)
    keep = y != -100
    want_active, want_passive = combination_terms(name, z.to(dtype).double(), y.clamp(min=0), PARAMS[name])
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
    z, y = make_batch(16, 10, seed=14)
    half = z.to(dtype)
    got = build_loss(name, reduction="none", **PARAMS[name])(half, y)
    assert got.dtype == torch.float32
    want = closed_form(name, half.double(), y, PARAMS[name])
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_autocast_does_not_lower_the_loss_precision() -> None:
    z, y = make_batch(16, 10, seed=15, dtype=torch.float32)
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


# --------------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(LOSS_NAMES),
    k=st.integers(2, 12),
    shift=st.floats(-50, 50),
    seed=st.integers(0, 2**16),
)
def test_every_loss_is_invariant_to_a_per_row_logit_shift(name: str, k: int, shift: float, seed: int) -> None:
    z, y = make_batch(6, k, seed=seed)
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
    z, y = make_batch(8, k, seed=seed, dtype=torch.float32)
    value = build_loss("amse", a=a, reduction="none")(scale * z, y)
    assert torch.all(value >= (a - 1) ** 2 / k * (1 - 1e-5))
    assert torch.all(value <= (a * a + 1) / k * (1 + 1e-5))
