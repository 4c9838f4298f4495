"""Defaults that depend on the model a recipe trains: the loss preset, ``auto``'s candidates, and a
frozen encoder's schedule.

`TrainingArguments`' defaults (learning rate 5e-5, 3 epochs) suit fine-tuning a pretrained
encoder. A frozen encoder (``freeze_encoder: true``) trains only a linear head on cached sentence
embeddings, and at 5e-5 that head is still near its random start after 3 epochs: on a clean
3-class toy set it scored 0.675 clean test accuracy and flagged 124 of 480 correct labels as
issues, against 1.000 and 0 at the probe benchmark's values below (and batch 256)
(``recipes/results/finetune_table.md``, probe regime).

Example:
    >>> from jal_trainer import JALConfig
    >>> from jal_trainer.arguments import ModelArguments
    >>> args = probe_defaults(ModelArguments(model="m", freeze_encoder=True), JALConfig(output_dir="o"))
    >>> args.learning_rate, args.num_train_epochs
    (0.01, 20.0)
"""

from __future__ import annotations

from transformers import TrainingArguments
from transformers.utils import logging

from jal_trainer.arguments import VISION_MODELS, ModelArguments
from jal_trainer.config import JALConfig

logger = logging.get_logger(__name__)

# The probe regime of recipes/grids/finetune.yaml: AdamW lr 1e-2, 20 epochs (10 were too few for the
# robust losses on TREC). Its batch of 256 is left to the recipe: the batch also sets how processes and
# accumulation steps split an update, so an explicit 8 (the default's value) must stay 8.
PROBE_SCHEDULE = {"learning_rate": 1e-2, "num_train_epochs": 20.0}


def default_preset(model: ModelArguments, args: JALConfig) -> JALConfig:
    """A recipe on a pretrained checkpoint that names no preset gets ``finetune`` (AdamW values).

    The paper's presets are CIFAR/SGD values; with AdamW on a pretrained encoder JAL's a = 30 drowns
    the active term. Vision models train from scratch and keep the loss's own defaults.
    """
    from jal_trainer.losses import FINETUNE_PRESET, PRESETS

    if args.loss_preset is not None or model.model in VISION_MODELS:
        return args
    if args.loss_type != "auto" and args.loss_type not in PRESETS[FINETUNE_PRESET]:
        return args
    logger.info(f"Pretrained model and no loss_preset: using loss_preset={FINETUNE_PRESET!r}.")
    args.loss_preset = FINETUNE_PRESET
    return args


def default_candidates(model: ModelArguments, args: JALConfig) -> JALConfig:
    """``loss_type: auto`` fine-tuning a pretrained text encoder end to end, with no ``auto_candidates``,
    gets `jal_trainer.auto.FINETUNE_CANDIDATES` (the defaults plus ``jal-ce+clean``).

    The evidence is in `FINETUNE_CANDIDATES`' comment. A frozen encoder (the probe), a vision model
    trained from scratch, or a recipe that names its candidates keeps what it has.

    Example:
        >>> from jal_trainer import JALConfig
        >>> from jal_trainer.arguments import ModelArguments
        >>> default_candidates(ModelArguments(model="m"), JALConfig(output_dir="o", loss_type="auto")).auto_candidates
        ['ce', 'gce', 'sce', 'nce+rce', 'jal-ce', 'jal-ce+clean']
        >>> print(default_candidates(ModelArguments(model="m", freeze_encoder=True),
        ...                          JALConfig(output_dir="o", loss_type="auto")).auto_candidates)
        None
    """
    from jal_trainer.auto import AUTO, FINETUNE_CANDIDATES, check_auto_settings

    if args.loss_type != AUTO or args.auto_candidates or model.freeze_encoder or model.model in VISION_MODELS:
        return args
    args.auto_candidates = list(FINETUNE_CANDIDATES)
    check_auto_settings(args)  # the budget, if one is set, must still cover a training
    logger.info(f"loss_type auto fine-tuning a pretrained encoder: candidates {', '.join(FINETUNE_CANDIDATES)} "
                "(set auto_candidates to choose others).")
    return args


def probe_defaults(model: ModelArguments, args: JALConfig) -> JALConfig:
    """A frozen encoder's head gets the probe schedule wherever ``args`` still holds `TrainingArguments`' default.

    A value that differs from that default was set by the recipe or the command line and is kept;
    a learning rate below 1e-3 for a frozen encoder is kept with a warning.
    """
    if not model.freeze_encoder:
        return args
    changed = []
    for name, value in PROBE_SCHEDULE.items():
        if getattr(args, name) == getattr(TrainingArguments, name):  # the dataclass field's default
            setattr(args, name, value)
            changed.append(f"{name} {value:g}")
    if changed:
        logger.warning(f"freeze_encoder: a linear head on frozen embeddings; using {', '.join(changed)} (the probe "
                       f"benchmark's schedule; set {'them' if len(changed) > 1 else 'it'} to override).")
    elif args.learning_rate < 1e-3:
        logger.warning(f"freeze_encoder with learning_rate {args.learning_rate:g}: a linear head on frozen embeddings "
                       "usually needs about 1e-2 (the probe benchmark's value).")
    return args


__all__ = ["PROBE_SCHEDULE", "default_candidates", "default_preset", "probe_defaults"]
