"""The APL combinations ``alpha * active + beta * passive`` compared in the JAL paper, plus SCE.

Each passive term is the table's formula with its own scale replaced by ``beta`` (NCE+MAE's
passive term is ``beta * (1 - p_y)``). Defaults are the paper's CIFAR-10 values; gamma (NFL,
NNFL) defaults to 0.5 as in the table. Every class has :meth:`~CombinedLoss.parts`, the
weighted terms per sample.

Example:
    >>> import torch
    >>> loss = JALCELoss(alpha=1.0, beta=1.0, a=30.0)
    >>> active, passive = loss.parts(torch.zeros(2, 10), torch.tensor([0, 1]))
    >>> active   # NCE at uniform p is 1/K
    tensor([0.1000, 0.1000])
"""

from __future__ import annotations

from torch import Tensor

from jal_trainer.losses import formulas
from jal_trainer.losses.base import CombinedLoss, Param
from jal_trainer.losses.fused import normalised_amse_terms
from jal_trainer.losses.single import A_AEL, A_AGCE, A_AMSE, A_AUL, GAMMA, Q_AGCE, Q_AUL

ALPHA = Param("alpha", 1.0, minimum=0.0, reason="alpha weighs the active term")
BETA = Param("beta", 1.0, minimum=0.0, reason="beta weighs the passive term")


class SCELoss(CombinedLoss):
    """Symmetric cross entropy: ``alpha * CE + beta * RCE`` (CIFAR-10 default ``(0.1, 1)``)."""

    name = "sce"
    param_specs = (ALPHA.with_default(0.1), BETA)

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.ce(logp, labels), formulas.rce(logp, labels)


class NCEMAELoss(CombinedLoss):
    """``alpha * NCE + beta * (1 - p_y)``."""

    name = "nce+mae"
    param_specs = (ALPHA, BETA)

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nce(logp, labels), formulas.mae(logp, labels, 1.0)


class NCERCELoss(CombinedLoss):
    """``alpha * NCE + beta * RCE``."""

    name = "nce+rce"
    param_specs = (ALPHA, BETA)

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nce(logp, labels), formulas.rce(logp, labels)


class NFLRCELoss(CombinedLoss):
    """``alpha * NFL_gamma + beta * RCE``."""

    name = "nfl+rce"
    param_specs = (ALPHA, BETA, GAMMA)
    gamma: float

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nfl(logp, labels, self.gamma), formulas.rce(logp, labels)


class NCEAGCELoss(CombinedLoss):
    """``alpha * NCE + beta * ((a + 1)^q - (a + p_y)^q) / q`` (CIFAR-10: 1, 4, a 6, q 1.5)."""

    name = "nce+agce"
    param_specs = (ALPHA, BETA.with_default(4.0), A_AGCE, Q_AGCE)
    a: float
    q: float

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nce(logp, labels), formulas.agce(logp, labels, self.a, self.q)


class NCEAULLoss(CombinedLoss):
    """``alpha * NCE + beta * ((a - p_y)^q - (a - 1)^q) / q`` (CIFAR-10: 1, 4, a 6.3, q 1.5)."""

    name = "nce+aul"
    param_specs = (ALPHA, BETA.with_default(4.0), A_AUL, Q_AUL)
    a: float
    q: float

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nce(logp, labels), formulas.aul(logp, labels, self.a, self.q)


class NCEAELLoss(CombinedLoss):
    """``alpha * NCE + beta * exp(-p_y / a)`` (CIFAR-10: 1, 4, a 5)."""

    name = "nce+ael"
    param_specs = (ALPHA, BETA.with_default(4.0), A_AEL)
    a: float

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nce(logp, labels), formulas.ael(logp, labels, self.a)


class ANLCELoss(CombinedLoss):
    """ANL-CE: ``alpha * NCE + beta * NNCE`` (CIFAR-10: 5, 5)."""

    name = "anl-ce"
    param_specs = (ALPHA.with_default(5.0), BETA.with_default(5.0))

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nce(logp, labels), formulas.nnce(logp, labels)


class ANLFLLoss(CombinedLoss):
    """ANL-FL: ``alpha * NFL_gamma + beta * NNFL_gamma`` (CIFAR-10: 5, 5; gamma 0.5)."""

    name = "anl-fl"
    param_specs = (ALPHA.with_default(5.0), BETA.with_default(5.0), GAMMA)
    gamma: float

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nfl(logp, labels, self.gamma), formulas.nnfl(logp, labels, self.gamma)


class JALCELoss(CombinedLoss):
    """JAL-CE: ``alpha * NCE + beta * AMSE_a``, ``AMSE_a = (1/K) sum_k (p_k - a [k = y])^2``.

    CIFAR-10 default ``(1, 1, a 30)``. Fused kernel (one softmax, hand-written backward).
    """

    name = "jal-ce"
    param_specs = (ALPHA, BETA, A_AMSE)
    use_fused_kernel = True
    a: float

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nce(logp, labels), formulas.amse(logp, labels, self.a)

    def logit_terms(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        if not self.use_fused_kernel:
            return super().logit_terms(logits, labels)
        return normalised_amse_terms(logits, labels, a=self.a, gamma=0.0)


class JALFLLoss(CombinedLoss):
    """JAL-FL: ``alpha * NFL_gamma + beta * AMSE_a`` (CIFAR-10 default ``(1, 1, a 30)``, gamma 0.5).

    Fused kernel.
    """

    name = "jal-fl"
    param_specs = (ALPHA, BETA, A_AMSE, GAMMA)
    use_fused_kernel = True
    a: float
    gamma: float

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        return formulas.nfl(logp, labels, self.gamma), formulas.amse(logp, labels, self.a)

    def logit_terms(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        if not self.use_fused_kernel:
            return super().logit_terms(logits, labels)
        return normalised_amse_terms(logits, labels, a=self.a, gamma=self.gamma)
