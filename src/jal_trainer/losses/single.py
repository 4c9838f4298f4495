"""The single losses of the JAL reference table (section 1), one class each.

``p = softmax(z)``, ``y`` the given label, ``K`` the number of classes. Defaults are the
table's where it gives one, otherwise the paper's CIFAR-10 value (AMSE ``a = 30`` is the
CIFAR-10 JAL value; AGCE, AUL and AEL take the CIFAR-10 values of NCE+AGCE, NCE+AUL, NCE+AEL).

Example:
    >>> import torch
    >>> loss = AMSELoss(a=30.0)
    >>> loss(torch.zeros(2, 10), torch.tensor([0, 1]))   # uniform p: (29.9^2 + 9 * 0.01) / 10
    tensor(89.4100)
"""

from __future__ import annotations

from torch import Tensor

from jal_trainer.losses import formulas
from jal_trainer.losses.base import Param, RobustLoss
from jal_trainer.losses.fused import normalised_amse_terms

GAMMA = Param("gamma", 0.5, minimum=0.0, reason="the focal exponent of (1 - p)^gamma")
SCALE = Param("scale", 2.0, minimum=0.0, reason="a negative scale turns the loss into a gain")
Q = Param("q", 0.7, minimum=0.0, exclusive=True, reason="the formula divides by q")
A_AMSE = Param("a", 30.0, minimum=1.0, exclusive=True, reason="AMSE is asymmetric only for a > 1; a = 1 is MSE")
A_AGCE = Param("a", 6.0, minimum=0.0, exclusive=True, reason="(a + p_y)^q needs a + p_y > 0 at p_y = 0")
A_AUL = Param("a", 6.3, minimum=1.0, exclusive=True, reason="(a - p_y)^q needs a - p_y > 0 at p_y = 1")
A_AEL = Param("a", 5.0, minimum=0.0, exclusive=True, reason="exp(-p_y / a) divides by a")
Q_AGCE = Q.with_default(1.5)
Q_AUL = Q.with_default(1.5)


class CELoss(RobustLoss):
    """Cross entropy: ``-log p_y``."""

    name = "ce"

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.ce(logp, labels)


class FocalLoss(RobustLoss):
    """Focal loss: ``-(1 - p_y)^gamma * log p_y``, the factor ``(1 - p_y)^gamma`` detached."""

    name = "focal"
    param_specs = (GAMMA,)
    gamma: float

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.focal(logp, labels, self.gamma)


class MAELoss(RobustLoss):
    """Mean absolute error: ``scale * (1 - p_y)``; ``scale = 2`` equals ``sum_k |e_k - p_k|``."""

    name = "mae"
    param_specs = (SCALE,)
    scale: float

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.mae(logp, labels, self.scale)


class RCELoss(RobustLoss):
    """Reverse cross entropy: ``-log(1e-4) * sum_{k != y} clamp(p_k, 1e-8, 1)``."""

    name = "rce"

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.rce(logp, labels)


class GCELoss(RobustLoss):
    """Generalised cross entropy: ``(1 - clamp(p_y, 1e-8, 1)^q) / q``; CE as ``q -> 0``."""

    name = "gce"
    param_specs = (Q,)
    q: float

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.gce(logp, labels, self.q)


class NCELoss(RobustLoss):
    """Normalised cross entropy: ``(-log p_y) / (-sum_k log p_k)``. Fused kernel."""

    name = "nce"
    use_fused_kernel = True

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.nce(logp, labels)

    def per_sample(self, logits: Tensor, labels: Tensor) -> Tensor:
        if not self.use_fused_kernel:
            return super().per_sample(logits, labels)
        return normalised_amse_terms(logits, labels, a=None, gamma=0.0)[0]


class NFLLoss(RobustLoss):
    """Normalised focal loss: ``FL_y / sum_k FL_k``, ``FL_k = -(1 - p_k)^gamma log p_k``.

    Every ``(1 - p_k)^gamma`` factor is detached. Fused kernel.
    """

    name = "nfl"
    param_specs = (GAMMA,)
    use_fused_kernel = True
    gamma: float

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.nfl(logp, labels, self.gamma)

    def per_sample(self, logits: Tensor, labels: Tensor) -> Tensor:
        if not self.use_fused_kernel:
            return super().per_sample(logits, labels)
        return normalised_amse_terms(logits, labels, a=None, gamma=self.gamma)[0]


class AGCELoss(RobustLoss):
    """Asymmetric generalised cross entropy: ``((a + 1)^q - (a + p_y)^q) / q``, ``a > 0, q > 0``."""

    name = "agce"
    param_specs = (A_AGCE, Q_AGCE)
    a: float
    q: float

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.agce(logp, labels, self.a, self.q)


class AULLoss(RobustLoss):
    """Asymmetric unhinged loss: ``((a - p_y)^q - (a - 1)^q) / q``, ``a > 1, q > 0``."""

    name = "aul"
    param_specs = (A_AUL, Q_AUL)
    a: float
    q: float

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.aul(logp, labels, self.a, self.q)


class AELLoss(RobustLoss):
    """Asymmetric exponential loss: ``exp(-p_y / a)``, ``a > 0``."""

    name = "ael"
    param_specs = (A_AEL,)
    a: float

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.ael(logp, labels, self.a)


class NNCELoss(RobustLoss):
    """Normalised negative CE: ``1 - (A + log p_y) / sum_k (A + log p_k)``, ``A = -log(1e-8)``.

    ``p`` is clamped to ``>= 1e-8``.
    """

    name = "nnce"

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.nnce(logp, labels)


class NNFLLoss(RobustLoss):
    """Normalised negative focal loss: ``1 - (A - FL_y) / (K * A - sum_k FL_k)``.

    ``FL_k = -(1 - p_k)^gamma log p_k`` with ``log p >= log(1e-8)`` and detached factors,
    ``A = -(1 - 1e-8)^gamma * log(1e-8)``. The passive half of ANL-FL (not in the registry).
    """

    name = "nnfl"
    param_specs = (GAMMA,)
    gamma: float

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.nnfl(logp, labels, self.gamma)


class AMSELoss(RobustLoss):
    """Asymmetric MSE: ``(1/K) * sum_k (p_k - a * [k = y])^2``, ``a > 1``. Fused kernel.

    ``a`` defaults to 30, the CIFAR-10 JAL value (the paper's best range is 20 to 30); the
    smallest ``a`` that keeps AMSE noise tolerant depends on the noise (reference section 2).
    """

    name = "amse"
    param_specs = (A_AMSE,)
    use_fused_kernel = True
    a: float

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        return formulas.amse(logp, labels, self.a)

    def per_sample(self, logits: Tensor, labels: Tensor) -> Tensor:
        if not self.use_fused_kernel:
            return super().per_sample(logits, labels)
        return normalised_amse_terms(logits, labels, a=self.a, gamma=None)[1]
