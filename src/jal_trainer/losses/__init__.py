"""Robust classification losses for noisy labels: JAL (ICCV 2025) and the losses it compares to.

Imports only torch. Every loss is an ``nn.Module`` mapping logits ``(N, K)`` and integer labels
``(N,)`` to a loss, with ``reduction`` ("mean", "sum", "none") and ``ignore_index`` (-100) as
in ``torch.nn.functional.cross_entropy``, computed in float32 whatever the logits' dtype
(float64 stays float64). The formulas are those of ``docs/jal-reference.md`` section 1 and the
official code; :data:`PRESETS` holds the paper's hyper-parameters per data set.

Names (:data:`LOSS_NAMES`): ce, focal, mae, rce, gce, sce, nce, nfl, agce, aul, ael, nnce,
amse, nce+mae, nce+rce, nfl+rce, nce+agce, nce+aul, nce+ael, anl-ce, anl-fl, jal-ce, jal-fl.
Combinations (``loss.is_combination``) are ``alpha * active + beta * passive`` and give both
weighted terms per sample with ``loss.parts(logits, labels)``.

Example:
    >>> import torch
    >>> from jal_trainer.losses import build_loss
    >>> loss = build_loss("jal-ce", preset="cifar10")       # alpha 1, beta 1, a 30
    >>> logits = torch.randn(8, 10, requires_grad=True)
    >>> labels = torch.randint(0, 10, (8,))
    >>> value = loss(logits, labels)
    >>> value.backward()
    >>> loss.hparams
    {'alpha': 1.0, 'beta': 1.0, 'a': 30.0}
    >>> with torch.no_grad():
    ...     nce_part, amse_part = loss.parts(logits, labels)   # (8,) each, alpha / beta applied
"""

from __future__ import annotations

from jal_trainer.losses.base import CombinedLoss, Param, RobustLoss
from jal_trainer.losses.combined import (
    ANLCELoss,
    ANLFLLoss,
    JALCELoss,
    JALFLLoss,
    NCEAELLoss,
    NCEAGCELoss,
    NCEAULLoss,
    NCEMAELoss,
    NCERCELoss,
    NFLRCELoss,
    SCELoss,
)
from jal_trainer.losses.fused import normalised_amse_terms
from jal_trainer.losses.registry import (
    AMSE_LOSSES,
    FINETUNE_PRESET,
    LOSS_CLASSES,
    LOSS_NAMES,
    PRESETS,
    build_loss,
    preset_params,
)
from jal_trainer.losses.single import (
    AELLoss,
    AGCELoss,
    AMSELoss,
    AULLoss,
    CELoss,
    FocalLoss,
    GCELoss,
    MAELoss,
    NCELoss,
    NFLLoss,
    NNCELoss,
    NNFLLoss,
    RCELoss,
)

__all__ = [
    "AMSE_LOSSES",
    "FINETUNE_PRESET",
    "LOSS_CLASSES",
    "LOSS_NAMES",
    "PRESETS",
    "build_loss",
    "preset_params",
    "normalised_amse_terms",
    "Param",
    "RobustLoss",
    "CombinedLoss",
    "CELoss",
    "FocalLoss",
    "MAELoss",
    "RCELoss",
    "GCELoss",
    "SCELoss",
    "NCELoss",
    "NFLLoss",
    "AGCELoss",
    "AULLoss",
    "AELLoss",
    "NNCELoss",
    "NNFLLoss",
    "AMSELoss",
    "NCEMAELoss",
    "NCERCELoss",
    "NFLRCELoss",
    "NCEAGCELoss",
    "NCEAULLoss",
    "NCEAELLoss",
    "ANLCELoss",
    "ANLFLLoss",
    "JALCELoss",
    "JALFLLoss",
]
