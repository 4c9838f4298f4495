"""Closed forms of every loss, written straight from the reference table, for the loss tests.

The closed forms below use ``p = softmax(z)`` and ``log(p)`` and one-hot vectors exactly as
docs/jal-reference.md section 1 and the official code write them; they share no code with the
library (which works on log_softmax and, for NCE/NFL/AMSE/JAL, a fused kernel).

Example:
    >>> z, y = make_batch(4, 3, seed=0)
    >>> closed_form("jal-ce", z, y, PARAMS["jal-ce"]).shape
    torch.Size([4])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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



def combination_terms(name: str, z: torch.Tensor, y: torch.Tensor,
                      prm: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(active, passive)`` of a combination, unweighted, from the table."""
    active_name, passive_name = {
        "sce": ("ce", "rce"), "nce+mae": ("nce", "mae1"), "nce+rce": ("nce", "rce"),
        "nfl+rce": ("nfl", "rce"), "nce+agce": ("nce", "agce"), "nce+aul": ("nce", "aul"),
        "nce+ael": ("nce", "ael"), "anl-ce": ("nce", "nnce"), "anl-fl": ("nfl", "nnfl"),
        "jal-ce": ("nce", "amse"), "jal-fl": ("nfl", "amse"),
    }[name]  # fmt: skip
    return single_loss(active_name, z, y, prm), single_loss(passive_name, z, y, prm)


def single_loss(name: str, z: torch.Tensor, y: torch.Tensor, prm: dict[str, float]) -> torch.Tensor:
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
        active, passive = combination_terms(name, z, y, prm)
        return prm["alpha"] * active + prm["beta"] * passive
    return single_loss(name, z, y, prm)


def make_batch(n: int, k: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = (3.0 * torch.randn(n, k, generator=gen, dtype=torch.float64)).to(dtype)
    y = torch.randint(0, k, (n,), generator=gen)
    return z, y

