"""Per-sample loss formulas of the JAL reference table, written on log-probabilities.

Every function takes ``logp``, the row-wise ``log_softmax`` of the logits, shape ``(N, K)``,
and ``labels``, class indices of shape ``(N,)`` (int64, all in ``[0, K)``), and returns the
per-sample loss, shape ``(N,)``, in the dtype of ``logp``. Working on ``log_softmax`` output
(which is already shifted by the row maximum) keeps every formula finite for logits of any
size: ``log p`` is never ``log(0)``.

These are the plain, readable forms. The loss classes use them directly, except for NCE, NFL,
AMSE and the JAL losses, which by default go through the fused kernel of
:mod:`jal_trainer.losses.fused` (same values, one softmax pass); the tests check the two agree.

Example:
    >>> import torch
    >>> logp = torch.log_softmax(torch.zeros(2, 10), dim=1)   # uniform p = 0.1
    >>> amse(logp, torch.tensor([0, 3]), a=30.0)
    tensor([89.4100, 89.4100])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: RCE clamps the one-hot target to [1e-4, 1] before its log (Wang et al., ICCV 2019).
RCE_LOG_FLOOR = math.log(1e-4)
#: Probability floor of RCE, GCE, NNCE and NNFL (official code: ``min_prob = 1e-8``).
MIN_PROB = 1e-8
LOG_MIN_PROB = math.log(MIN_PROB)


def pick(values: Tensor, labels: Tensor) -> Tensor:
    """Return ``values[i, labels[i]]`` for every row: ``(N, K), (N,) -> (N,)``."""
    return values.gather(1, labels.unsqueeze(1)).squeeze(1)


def one_hot_mask(labels: Tensor, num_classes: int) -> Tensor:
    """Boolean one-hot matrix ``(N, K)``, True at ``[i, labels[i]]``."""
    mask = torch.zeros(labels.shape[0], num_classes, dtype=torch.bool, device=labels.device)
    return mask.scatter_(1, labels.unsqueeze(1), True)


# ---------------------------------------------------------------- active losses


def ce(logp: Tensor, labels: Tensor) -> Tensor:
    """Cross entropy, ``-log p_y``."""
    return -pick(logp, labels)


def focal(logp: Tensor, labels: Tensor, gamma: float) -> Tensor:
    """Focal loss, ``-(1 - p_y)^gamma * log p_y`` with the factor detached (official code)."""
    logp_y = pick(logp, labels)
    weight = (1.0 - logp_y.detach().exp()).pow(gamma)
    return -weight * logp_y


def nce(logp: Tensor, labels: Tensor) -> Tensor:
    """Normalised cross entropy, ``(-log p_y) / (-sum_k log p_k)``."""
    return pick(logp, labels) / logp.sum(dim=1)


def nfl(logp: Tensor, labels: Tensor, gamma: float) -> Tensor:
    """Normalised focal loss, ``FL_y / sum_k FL_k``, ``FL_k = -(1 - p_k)^gamma log p_k``.

    Every ``(1 - p_k)^gamma`` factor is detached, as in the official code.
    """
    weights = (1.0 - logp.detach().exp()).pow(gamma)
    fl = -weights * logp
    return pick(fl, labels) / fl.sum(dim=1)


def agce(logp: Tensor, labels: Tensor, a: float, q: float) -> Tensor:
    """Asymmetric generalised cross entropy, ``((a + 1)^q - (a + p_y)^q) / q``."""
    p_y = pick(logp, labels).exp()
    return ((a + 1.0) ** q - (a + p_y).pow(q)) / q


def aul(logp: Tensor, labels: Tensor, a: float, q: float) -> Tensor:
    """Asymmetric unhinged loss, ``((a - p_y)^q - (a - 1)^q) / q`` (needs ``a > 1``)."""
    p_y = pick(logp, labels).exp()
    return ((a - p_y).pow(q) - (a - 1.0) ** q) / q


def ael(logp: Tensor, labels: Tensor, a: float) -> Tensor:
    """Asymmetric exponential loss, ``exp(-p_y / a)``."""
    return torch.exp(-pick(logp, labels).exp() / a)


def gce(logp: Tensor, labels: Tensor, q: float) -> Tensor:
    """Generalised cross entropy, ``(1 - clamp(p_y, 1e-8, 1)^q) / q``.

    Written as ``-expm1(q * log p_y) / q`` so that it stays exact as ``q -> 0``, where it
    tends to cross entropy.
    """
    logp_y = pick(logp, labels).clamp(LOG_MIN_PROB, 0.0)
    return -torch.expm1(q * logp_y) / q


# ---------------------------------------------------------------- passive losses


def mae(logp: Tensor, labels: Tensor, scale: float) -> Tensor:
    """Mean absolute error, ``scale * (1 - p_y)`` (``scale = 2`` is ``sum_k |e_k - p_k|``)."""
    return scale * (1.0 - pick(logp, labels).exp())


def rce(logp: Tensor, labels: Tensor) -> Tensor:
    """Reverse cross entropy, ``-log(1e-4) * sum_{k != y} clamp(p_k, 1e-8, 1)``.

    This is the official ``-sum_k clamp(p_k) * log(clamp(e_y, 1e-4, 1))_k``: the log of the
    clamped one-hot is 0 at ``y`` and ``log(1e-4)`` elsewhere.
    """
    probs = logp.exp().clamp(MIN_PROB, 1.0)
    off_label = torch.where(one_hot_mask(labels, logp.shape[1]), 0.0, probs)
    return -RCE_LOG_FLOOR * off_label.sum(dim=1)


def nnce(logp: Tensor, labels: Tensor) -> Tensor:
    """Normalised negative cross entropy, ``1 - (A + log p_y) / sum_k (A + log p_k)``.

    ``A = -log(1e-8)`` and ``p`` clamped to ``>= 1e-8``, so every ``A + log p_k >= 0``.
    """
    big_a = -LOG_MIN_PROB
    clamped = logp.clamp_min(LOG_MIN_PROB)
    return 1.0 - (big_a + pick(clamped, labels)) / (logp.shape[1] * big_a + clamped.sum(dim=1))


def nnfl(logp: Tensor, labels: Tensor, gamma: float) -> Tensor:
    """Normalised negative focal loss, ``1 - (A - FL_y) / (K * A - sum_k FL_k)``.

    ``FL_k = -(1 - p_k)^gamma log p_k`` with ``log p`` clamped to ``>= log(1e-8)``, every
    ``(1 - p_k)^gamma`` detached, and ``A = -(1 - 1e-8)^gamma * log(1e-8)``.
    """
    big_a = -((1.0 - MIN_PROB) ** gamma) * LOG_MIN_PROB
    clamped = logp.clamp_min(LOG_MIN_PROB)
    weights = (1.0 - clamped.detach().exp()).pow(gamma)
    fl = -weights * clamped
    return 1.0 - (big_a - pick(fl, labels)) / (logp.shape[1] * big_a - fl.sum(dim=1))


def amse(logp: Tensor, labels: Tensor, a: float) -> Tensor:
    """Asymmetric mean squared error, ``(1/K) * sum_k (p_k - a * [k = y])^2``.

    The ``1/K`` is the official code's mean over the ``N x K`` matrix.
    """
    probs = logp.exp()
    target = one_hot_mask(labels, logp.shape[1]).to(probs.dtype) * a
    return (probs - target).square().mean(dim=1)
