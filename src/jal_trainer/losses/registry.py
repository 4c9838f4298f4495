"""Loss names, the paper's per-data-set hyper-parameters (presets), and :func:`build_loss`.

Presets hold the values of the JAL paper and its code: JAL ``(alpha, beta, a)`` per data set
from the training protocols (reference section 4), the baselines' values for CIFAR-10 and
CIFAR-100 from section 5. A preset defines a loss when the paper gives its values for that
data set, or when the loss has no parameters (CE, RCE, NCE, NNCE). Parameters a preset leaves
out (gamma of JAL-FL, ANL-FL and NFL+RCE) keep their defaults.

Example:
    >>> loss = build_loss("jal-ce", preset="cifar100")
    >>> loss.hparams
    {'alpha': 5.0, 'beta': 1.0, 'a': 20.0}
    >>> build_loss("jal-ce", preset="cifar100", a=10).hparams["a"]
    10.0
"""

from __future__ import annotations

import difflib

from jal_trainer.losses import combined, single
from jal_trainer.losses.base import RobustLoss

# Losses whose (passive) term is AMSE: Theorem 4.1 bounds their `a` for a given noise matrix.
AMSE_LOSSES = ("amse", "jal-ce", "jal-fl")

_CLASSES: tuple[type[RobustLoss], ...] = (
    single.CELoss, single.FocalLoss, single.MAELoss, single.RCELoss, single.GCELoss, combined.SCELoss,
    single.NCELoss, single.NFLLoss, single.AGCELoss, single.AULLoss, single.AELLoss, single.NNCELoss,
    single.AMSELoss, combined.NCEMAELoss, combined.NCERCELoss, combined.NFLRCELoss, combined.NCEAGCELoss,
    combined.NCEAULLoss, combined.NCEAELLoss, combined.ANLCELoss, combined.ANLFLLoss, combined.JALCELoss,
    combined.JALFLLoss,
)  # fmt: skip
LOSS_CLASSES: dict[str, type[RobustLoss]] = {cls.name: cls for cls in _CLASSES}
#: Every registry name, in the order of the reference table.
LOSS_NAMES: tuple[str, ...] = tuple(LOSS_CLASSES)

_PARAMETERLESS = {name: {} for name, cls in LOSS_CLASSES.items() if not cls.param_specs}


def _baselines(ab: tuple[float, float], agce: tuple[float, ...], aul: tuple[float, ...],
               ael: tuple[float, ...], anl: tuple[float, float], sce: tuple[float, float],
               jal: tuple[float, float, float]) -> dict[str, dict[str, float]]:  # fmt: skip
    """One CIFAR preset from the paper's baseline table (reference section 5)."""
    alpha_beta = {"alpha": ab[0], "beta": ab[1]}
    return {
        **_PARAMETERLESS,
        "gce": {"q": 0.7},
        "sce": {"alpha": sce[0], "beta": sce[1]},
        "nce+rce": dict(alpha_beta),
        "nfl+rce": dict(alpha_beta),
        "nce+mae": dict(alpha_beta),
        "nce+agce": dict(zip(("alpha", "beta", "a", "q"), agce)),
        "nce+aul": dict(zip(("alpha", "beta", "a", "q"), aul)),
        "nce+ael": dict(zip(("alpha", "beta", "a"), ael)),
        "anl-ce": {"alpha": anl[0], "beta": anl[1]},
        "anl-fl": {"alpha": anl[0], "beta": anl[1]},
        **_jal(*jal),
    }


def _jal(alpha: float, beta: float, a: float) -> dict[str, dict[str, float]]:
    """JAL-CE and JAL-FL share the data set's ``(alpha, beta, a)`` (reference section 4)."""
    return {name: {"alpha": alpha, "beta": beta, "a": a} for name in ("jal-ce", "jal-fl")}


#: preset -> loss name -> parameters. See the module docstring for where each value comes from.
PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "cifar10": _baselines(
        ab=(1.0, 1.0), agce=(1.0, 4.0, 6.0, 1.5), aul=(1.0, 4.0, 6.3, 1.5), ael=(1.0, 4.0, 5.0),
        anl=(5.0, 5.0), sce=(0.1, 1.0), jal=(1.0, 1.0, 30.0),
    ),
    "cifar100": _baselines(
        ab=(10.0, 0.1), agce=(10.0, 0.1, 1.8, 3.0), aul=(10.0, 0.015, 6.0, 3.0),
        ael=(10.0, 0.1, 1.5), anl=(10.0, 1.0), sce=(6.0, 0.1), jal=(5.0, 1.0, 20.0),
    ),
    "webvision": {**_PARAMETERLESS, **_jal(50.0, 1.0, 30.0)},
    "clothing1m": {**_PARAMETERLESS, **_jal(5.0, 0.1, 5.0)},
}

#: The preset of pretrained models trained with AdamW (fine-tuned or as a frozen-encoder probe).
FINETUNE_PRESET = "finetune"
# Chosen by recipes/choose_presets.py without test labels: per loss, the candidate with the best mean
# estimated clean accuracy on held-out noisy rows over four text sets (WRENCH youtube, sms, trec;
# TREC symmetric 0.4; frozen all-MiniLM-L6-v2 head, AdamW); the numbers are in
# recipes/results/finetune_preset_choice.json and the README. Only JAL-CE / JAL-FL and NCE+RCE were
# swept; the other losses keep the CIFAR-10 values.
# <finetune-preset> (written by `python recipes/choose_presets.py --apply`)
PRESETS[FINETUNE_PRESET] = {
    **PRESETS["cifar10"],
    "nce+rce": {"alpha": 10.0, "beta": 0.1},
    **_jal(10.0, 1.0, 5.0),
}
# </finetune-preset>


def _unknown(kind: str, value: object, choices: tuple[str, ...] | list[str]) -> ValueError:
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown {kind} {value!r}; valid {kind}s: {', '.join(choices)}.{hint}")


def preset_params(name: str, preset: str) -> dict[str, float]:
    """The parameters ``preset`` gives loss ``name``; ValueError if it gives none.

    Example:
        >>> preset_params("nce+agce", "cifar100")
        {'alpha': 10.0, 'beta': 0.1, 'a': 1.8, 'q': 3.0}
    """
    if name not in LOSS_CLASSES:
        raise _unknown("loss name", name, LOSS_NAMES)
    if preset not in PRESETS:
        raise _unknown("preset", preset, list(PRESETS))
    if name not in PRESETS[preset]:
        defining = [key for key, losses in PRESETS.items() if name in losses]
        params = ", ".join(spec.name for spec in LOSS_CLASSES[name].param_specs)
        fix = f"build it without a preset and pass its parameters ({params})"
        where = (
            f"presets that define it: {', '.join(defining)}; use one of those, or {fix}"
            if defining
            else f"no preset defines it; {fix}"
        )
        raise ValueError(f"preset {preset!r} has no values for loss {name!r}: {where}.")
    return dict(PRESETS[preset][name])


def build_loss(
    name: str,
    *,
    preset: str | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    **params: float,
) -> RobustLoss:
    """Build the loss ``name`` (one of :data:`LOSS_NAMES`).

    Parameters come from, in increasing priority: the loss's defaults, ``preset`` (one of
    :data:`PRESETS`), then ``params``. The returned module maps logits ``(N, K)`` and labels
    ``(N,)`` to the reduced loss; ``loss.hparams`` holds the resolved parameters.

    Raises:
        ValueError: unknown name, preset or parameter; a preset without values for this
            loss; a parameter out of range; a bad ``reduction`` or ``ignore_index``.

    Example:
        >>> loss = build_loss("jal-ce", preset="cifar10", beta=2.0)
        >>> loss.hparams, loss.is_combination
        ({'alpha': 1.0, 'beta': 2.0, 'a': 30.0}, True)
    """
    if name not in LOSS_CLASSES:
        raise _unknown("loss name", name, LOSS_NAMES)
    resolved = preset_params(name, preset) if preset is not None else {}
    resolved.update(params)
    loss = LOSS_CLASSES[name](reduction=reduction, ignore_index=ignore_index, **resolved)
    loss.preset = preset
    return loss
