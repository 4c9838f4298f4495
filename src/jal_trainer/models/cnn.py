"""The 8-layer CNN of the JAL paper's CIFAR-10 protocol, as a transformers model.

Architecture (reference section 4, the official code's ``CNN``): three stages of
[conv3x3 -> BN -> ReLU] x 2 followed by a 2x2 max-pool, with 64, 128 and 196 channels; then
FC (196 * 4 * 4 = 3136 -> 256) -> BN -> ReLU -> FC (256 -> num_labels). The flatten size follows
``config.image_size`` (``stage_channels[-1] * (image_size // 8) ** 2``), so the same class runs on
32x32 CIFAR images and on 8x8 digits (flatten 196).

This file imports only torch, transformers and its siblings ``_classifier.py`` and ``_initialization.py`` (relatively),
so ``save_pretrained`` can copy the code beside the weights for a Hub upload (see
:func:`jal_trainer.models.register_for_hub_code`).

Example:
    >>> import torch
    >>> config = CNN8Config(num_labels=10, num_channels=3, image_size=32)
    >>> model = CNN8ForImageClassification(config)
    >>> model(torch.randn(2, 3, 32, 32)).logits.shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedConfig, PreTrainedModel

from ._classifier import VisionClassifierMixin


class CNN8Config(PreTrainedConfig):
    """Configuration of :class:`CNN8ForImageClassification`.

    Args:
        num_channels: input channels (3 for CIFAR, 1 for digits).
        image_size: input height = width in pixels; sets the flatten size of the first FC layer.
        stage_channels: output channels of the three conv stages (two convs each).
        convs_per_stage: conv + BN + ReLU layers before each max-pool.
        hidden_size: width of the hidden FC layer.
        conv_bias: give the convolutions a bias, as the official code does (it is redundant
            before BatchNorm but kept so parameter counts and the L1 penalty match).
        num_labels, id2label, label2id: as in every transformers config.

    Example:
        >>> CNN8Config(num_labels=10, num_channels=1, image_size=8).flatten_size
        196
    """

    model_type = "jal-cnn8"

    num_channels: int = 3
    image_size: int = 32
    stage_channels: list[int] | tuple[int, ...] = (64, 128, 196)
    convs_per_stage: int = 2
    hidden_size: int = 256
    conv_bias: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        self.stage_channels = [int(c) for c in self.stage_channels]
        super().__post_init__(**kwargs)
        for name in ("num_channels", "image_size", "convs_per_stage", "hidden_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}; fix the config.")
        if not self.stage_channels or min(self.stage_channels) < 1:
            raise ValueError(f"stage_channels must be non-empty positive ints, got {self.stage_channels}.")
        if self.image_size >> len(self.stage_channels) < 1:
            raise ValueError(
                f"image_size={self.image_size} is too small for {len(self.stage_channels)} 2x2 max-pools; "
                f"use images of at least {2 ** len(self.stage_channels)} pixels or fewer stages."
            )

    @property
    def flatten_size(self) -> int:
        """Features entering the first FC layer: last stage channels x (image_size // 2**stages)**2."""
        side = self.image_size >> len(self.stage_channels)
        return self.stage_channels[-1] * side * side


def _conv_bn_relu(in_channels: int, out_channels: int, bias: bool) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class CNN8ForImageClassification(VisionClassifierMixin, PreTrainedModel):
    """The paper's 8-layer CNN (6 conv + 2 FC) with a classification head.

    ``forward(pixel_values)`` takes normalised float images (batch, num_channels, image_size,
    image_size) and returns :class:`~transformers.modeling_outputs.ImageClassifierOutput` with
    ``logits`` (batch, num_labels); the mean cross-entropy ``loss`` is filled only when ``labels``
    (batch,) are given. Other keyword arguments (extra batch columns such as ``clean_label``) are
    accepted and ignored.
    """

    config_class = CNN8Config
    base_model_prefix = "cnn8"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    # The loss here is a per-batch mean: let the Trainer scale it for gradient accumulation
    # instead of passing num_items_in_batch to forward.
    accepts_loss_kwargs = False

    def __init__(self, config: CNN8Config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        layers: list[nn.Module] = []
        in_channels = config.num_channels
        for out_channels in config.stage_channels:
            for _ in range(config.convs_per_stage):
                layers += _conv_bn_relu(in_channels, out_channels, config.conv_bias)
                in_channels = out_channels
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(config.flatten_size, config.hidden_size)
        self.fc_bn = nn.BatchNorm1d(config.hidden_size)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, num_labels) logits; `VisionClassifierMixin.forward` checks the images and adds the loss."""
        hidden = self.features(pixel_values).flatten(1)
        if hidden.shape[1] != self.fc.in_features:
            raise ValueError(
                f"images of {pixel_values.shape[-2]}x{pixel_values.shape[-1]} pixels give {hidden.shape[1]} features "
                f"but config.image_size={self.config.image_size} expects {self.fc.in_features}; set image_size."
            )
        return self.classifier(F.relu(self.fc_bn(self.fc(hidden))))


__all__ = ["CNN8Config", "CNN8ForImageClassification"]
