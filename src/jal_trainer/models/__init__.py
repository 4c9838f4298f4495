"""Vision classifiers trained from scratch in the JAL protocols, as transformers models.

Importing this package registers the configs with ``AutoConfig`` (model types ``jal-cnn8`` and
``jal-resnet``) and the models with ``AutoModelForImageClassification``, so a directory written
by ``save_pretrained`` loads back with the Auto classes while jal-trainer is installed.

Example:
    >>> from jal_trainer.models import build_vision_model
    >>> model = build_vision_model("cnn8", num_labels=10, num_channels=1, image_size=8)
    >>> model.config.model_type
    'jal-cnn8'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import (
    AutoConfig, AutoModelForImageClassification, AutoModelForSequenceClassification, PreTrainedModel)

from jal_trainer.models.cnn import CNN8Config, CNN8ForImageClassification
from jal_trainer.models.resnet import RESNET_DEPTHS, CifarResNetConfig, CifarResNetForImageClassification
from jal_trainer.models.sentence import SentenceClassifierConfig, SentenceClassifierForSequenceClassification

VISION_MODEL_NAMES = ("cnn8", "resnet18", "resnet34")

_PAIRS = ((CNN8Config, CNN8ForImageClassification), (CifarResNetConfig, CifarResNetForImageClassification))

for _config_class, _model_class in _PAIRS:
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModelForImageClassification.register(_config_class, _model_class, exist_ok=True)
# the frozen-encoder text classifier that `jal train --freeze_encoder true` saves
AutoConfig.register(SentenceClassifierConfig.model_type, SentenceClassifierConfig, exist_ok=True)
AutoModelForSequenceClassification.register(SentenceClassifierConfig, SentenceClassifierForSequenceClassification,
                                            exist_ok=True)


def build_vision_model(
    name: str,
    *,
    num_labels: int | None = None,
    label_names: Sequence[str] | None = None,
    num_channels: int = 3,
    image_size: int = 32,
    id2label: dict[int, str] | None = None,
    **config_kwargs: Any,
) -> PreTrainedModel:
    """Build a freshly initialised ``cnn8``, ``resnet18`` or ``resnet34`` classifier.

    Args:
        name: one of :data:`VISION_MODEL_NAMES`.
        num_labels: number of classes; inferred from ``label_names`` or ``id2label`` when omitted.
        label_names: class names in label order (e.g. ``ds.features["label"].names``).
        num_channels: input channels (3 for CIFAR, 1 for digits).
        image_size: input height = width (sets the CNN's flatten size).
        id2label: alternative to ``label_names``.
        **config_kwargs: any other field of :class:`CNN8Config` / :class:`CifarResNetConfig`.

    Example:
        >>> build_vision_model("resnet18", label_names=["cat", "dog"]).config.id2label
        {0: 'cat', 1: 'dog'}
    """
    key = name.lower()
    if key not in VISION_MODEL_NAMES:
        raise ValueError(f"unknown vision model {name!r}; choose one of {', '.join(VISION_MODEL_NAMES)}.")
    if label_names is not None:
        id2label = dict(enumerate(label_names))
    if id2label is not None:
        id2label = {int(k): str(v) for k, v in id2label.items()}
        if num_labels is not None and num_labels != len(id2label):
            raise ValueError(f"num_labels={num_labels} but {len(id2label)} label names were given; pass one of them.")
        num_labels = len(id2label)
        config_kwargs.update(id2label=id2label, label2id={v: k for k, v in id2label.items()})
    if num_labels is None:
        raise ValueError("pass num_labels, label_names or id2label so the classifier head has a size.")
    config_kwargs.update(num_labels=num_labels, num_channels=num_channels, image_size=image_size)
    if key == "cnn8":
        return CNN8ForImageClassification(CNN8Config(**config_kwargs))
    return CifarResNetForImageClassification(CifarResNetConfig(depths=RESNET_DEPTHS[key], **config_kwargs))


def register_for_hub_code() -> None:
    """Make ``save_pretrained`` also write the model code and an ``auto_map`` for a Hub upload.

    After this call, a saved directory holds ``cnn.py`` / ``resnet.py`` and loads with
    ``AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True)`` on a
    machine without jal-trainer. Not needed for local use: importing this package registers the
    Auto classes already.
    """
    for config_class, model_class in _PAIRS:
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModelForImageClassification")


__all__ = [
    "VISION_MODEL_NAMES",
    "CNN8Config",
    "CNN8ForImageClassification",
    "CifarResNetConfig",
    "CifarResNetForImageClassification",
    "SentenceClassifierConfig",
    "SentenceClassifierForSequenceClassification",
    "build_vision_model",
    "register_for_hub_code",
]
