"""Fused kernel for the normalised active losses (NCE, NFL) and AMSE: one softmax, one backward pass.

JAL-CE is ``alpha * NCE + beta * AMSE``. Written plainly it takes a ``log_softmax`` for NCE and
a second ``softmax`` and a one-hot matrix for AMSE, and autograd then walks back through a
dozen ``(N, K)`` intermediates. Both terms only need a few per-row statistics of
``p = softmax(z)``, with ``z' = z - max(z)`` and ``lse = log sum_k exp(z'_k)``:

* NCE: ``-log p_y = lse - z'_y`` and ``-sum_k log p_k = K * lse - sum_k z'_k``;
* AMSE: ``K * AMSE = (a - p_y)^2 + sum_k p_k^2 - p_y^2``;
* NFL: the same, with the detached weights ``w_k = (1 - p_k)^gamma``:
  ``sum_k w_k (-log p_k) = sum_k w_k (max z - z_k) + lse * sum_k w_k``.

``lse`` comes for free from the softmax itself: ``max_k p_k = 1 / sum_k exp(z'_k)``.

The hand-derived gradient, per row, with upstream gradients ``g_a`` (active) and ``g_p``
(passive), ``D = sum_k w_k (-log p_k)``, ``W = sum_k w_k``, ``L = w_y (-log p_y) / D`` the
active value and ``T = sum_k p_k^2``::

    d/dz_j = p_j * (c2 * p_j + c1) + cw * w_j + cy * [j = y]
    c2 = 2 g_p / K
    c1 = g_a (w_y - L W) / D + (2 g_p / K) (a p_y - T)
    cw = g_a L / D
    cy = -g_a w_y / D - (2 g_p / K) a p_y

(NCE is the case ``gamma = 0``: ``w = 1``, ``W = K``.) The forward is one softmax and four
row reductions; the backward writes the gradient in one fresh ``(N, K)`` buffer with three
elementwise passes. The plain composition materialises and walks back through about ten
``(N, K)`` tensors. ``tests/test_losses_parity.py`` checks the kernel with
``torch.autograd.gradcheck`` in float64 and against the plain formulas of
:mod:`jal_trainer.losses.formulas`.

Precision note: ``sum_k z'_k`` is taken as ``sum_k z_k - K * max z`` (and NFL's
``sum_k w_k z'_k`` likewise) in the input dtype, which saves a pass over ``(N, K)``. A large
common offset ``c`` on the logits of a row then costs precision in the normaliser: in float32,
about ``1e-7 * |c| / spread`` relative, with ``spread`` the typical ``max z - z_k`` (measured
for NCE on logits of standard deviation 3: at most 4e-6 at ``c = 100``, 4e-5 at ``c = 1000``,
4e-4 at ``c = 1e4``; at ``c = 0`` it is as precise as the plain formula). Summing in float64
instead would cost more than the rest of the forward. Values stay finite for any finite logits.

Example:
    >>> import torch
    >>> z, y = torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
    >>> nce, amse = normalised_amse_terms(z, y, a=30.0, gamma=0.0)
    >>> nce.shape, amse.shape
    (torch.Size([4]), torch.Size([4]))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def _row_dot(x: Tensor, y: Tensor) -> Tensor:
    """``sum_k x[i, k] * y[i, k]`` as ``(N, 1)``."""
    return torch.linalg.vecdot(x, y, dim=1).unsqueeze(1)


def _softmax(logits: Tensor, row_max: Tensor) -> Tensor:
    """``softmax(logits, dim=1)`` given the row maxima ``(N, 1)``.

    With fewer than 16 classes on CPU, ATen's last-dimension softmax kernel runs below its
    vector width and is about 4x slower than a subtraction, an exp, a row sum and a division
    (measured with torch 2.13 at K = 2 and K = 10; from K = 16 on the kernel wins), so
    CIFAR-10-sized outputs take that path. The formula is the same: shift by the maximum,
    exp, normalise.
    """
    if logits.shape[1] >= 16 or logits.device.type != "cpu":
        return torch.softmax(logits, dim=1)
    unnormalised = (logits - row_max).exp_()
    return unnormalised.div_(unnormalised.sum(dim=1, keepdim=True))


class _NormalisedAMSE(torch.autograd.Function):
    """Per-sample ``(NFL_gamma, AMSE_a)``; ``gamma=None`` or ``a=None`` skips that term.

    Per-row statistics are kept as ``(N, 1)`` columns so that they broadcast against
    ``(N, K)``; the op count matters as much as the passes for small batches.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, logits: Tensor, labels: Tensor, a: float | None, gamma: float | None
    ) -> tuple[Tensor, Tensor]:
        num_classes = logits.shape[1]
        row_max = logits.amax(dim=1, keepdim=True)
        probs = _softmax(logits, row_max)
        idx = labels.unsqueeze(1)
        p_y = probs.gather(1, idx)
        active = passive = weights = None
        # backward coefficients, per row: see the module docstring
        inv_norm = slope_active = slope_passive = w_y = a_p_y = None

        if gamma is not None:
            # lse = log sum_k exp(z_k - max z) = -log(max_k p_k), in [0, log K]; kept apart
            # from max z so that a small -log p_y keeps its precision.
            neg_lse = probs.amax(dim=1, keepdim=True).log_()
            nll = (row_max - logits.gather(1, idx)).sub_(neg_lse)  # -log p_y
            if gamma == 0.0:  # NCE: every weight is 1, W = K, no (N, K) weight matrix
                # -sum_k log p_k = K max z - sum_k z_k + K lse
                norm = (row_max * num_classes).sub_(logits.sum(dim=1, keepdim=True))
                inv_norm = norm.sub_(neg_lse, alpha=num_classes).reciprocal_()
                active = nll.mul_(inv_norm)
                slope_active = torch.rsub(active, 1.0, alpha=num_classes)  # w_y - L W = 1 - K L
            else:
                weights = (1.0 - probs).pow_(gamma)  # detached focal weights (1 - p_k)^gamma
                w_y = weights.gather(1, idx)
                w_sum = weights.sum(dim=1, keepdim=True)
                # sum_k w_k (-log p_k) = max z * W - sum_k w_k z_k + lse * W
                norm = (row_max * w_sum).sub_(_row_dot(weights, logits))
                inv_norm = norm.addcmul_(neg_lse, w_sum, value=-1.0).reciprocal_()
                active = nll.mul_(w_y).mul_(inv_norm)
                slope_active = w_y - active * w_sum

        if a is not None:
            # sum_k p_k^2 as a squared norm: one reduction, no (N, K) product materialised
            sq_sum = torch.linalg.vector_norm(probs, dim=1, keepdim=True).square_()
            passive = (sq_sum + a * a).sub_(p_y, alpha=2.0 * a).div_(num_classes)
            a_p_y = p_y.mul_(a)
            slope_passive = a_p_y - sq_sum

        ctx.num_classes = num_classes
        ctx.save_for_backward(
            probs, idx, weights, active, inv_norm, slope_active, w_y, slope_passive, a_p_y
        )
        if active is None or passive is None:
            zeros = logits.new_zeros(logits.shape[0], 1)
            active, passive = (zeros, passive) if active is None else (active, zeros)
        return active.squeeze(1), passive.squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_active: Tensor, grad_passive: Tensor) -> tuple[Tensor | None, ...]:
        probs, idx, weights, active, inv_norm, slope_active, w_y, slope_passive, a_p_y = (
            ctx.saved_tensors
        )
        c1 = c2 = cw = cy = None  # d/dz_j = p_j (c2 p_j + c1) + cw w_j + cy [j = y]
        if active is not None:
            g_a = grad_active.unsqueeze(1) * inv_norm
            c1 = g_a * slope_active
            cw = g_a * active
            cy = -g_a if w_y is None else -g_a * w_y
        if a_p_y is not None:
            c2 = grad_passive.unsqueeze(1) * (2.0 / ctx.num_classes)
            c1 = c2 * slope_passive if c1 is None else c1.addcmul_(c2, slope_passive)
            cy = -c2 * a_p_y if cy is None else cy.addcmul_(c2, a_p_y, value=-1.0)

        if c2 is None:  # active term only: p_j c1 + cw w_j
            grad = (probs * c1).add_(cw) if weights is None else (probs * c1).addcmul_(weights, cw)
        else:
            # One fresh (N, K) buffer, then in place. Each op broadcasts at most one (N, 1)
            # column: ATen's CPU kernels only vectorise that case (addcmul(c1, p, c2) is 2x slower).
            grad = (probs * c2).add_(c1)
            if cw is None:
                grad.mul_(probs)
            elif weights is None:  # NCE: w = 1
                grad = torch.addcmul(cw, grad, probs, out=grad)
            else:
                grad.mul_(probs).addcmul_(weights, cw)
        grad.scatter_add_(1, idx, cy)
        return grad, None, None, None


def normalised_amse_terms(
    logits: Tensor, labels: Tensor, *, a: float | None, gamma: float | None
) -> tuple[Tensor, Tensor]:
    """Per-sample ``(NFL_gamma, AMSE_a)`` of ``logits`` ``(N, K)`` and ``labels`` ``(N,)``.

    ``gamma=0`` gives NCE; ``gamma=None`` skips the active term and ``a=None`` the passive
    one (the skipped output is zeros). Inputs must already be validated: floating logits,
    int64 labels in ``[0, K)``. Both outputs have shape ``(N,)`` and the dtype of ``logits``.
    Differentiable once (no double backward).

    Example:
        >>> z, y = torch.zeros(2, 10), torch.tensor([0, 1])
        >>> normalised_amse_terms(z, y, a=30.0, gamma=None)[1]
        tensor([89.4100, 89.4100])
    """
    return _NormalisedAMSE.apply(logits, labels, a, gamma)
