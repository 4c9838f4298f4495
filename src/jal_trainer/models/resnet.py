"""ResNet-18 / ResNet-34 with the CIFAR stem, as a transformers model.

The CIFAR variant (He et al. 2016, as in the JAL and most noisy-label code): a 3x3 stride-1
stem convolution with no max-pool, four stages of BasicBlocks (widths 64, 128, 256, 512; the
first stage keeps the resolution, each later one halves it), global average pooling, one FC
layer. Shortcuts are 1x1 conv + BN where the shape changes ("option B"). ResNet-18 has depths
(2, 2, 2, 2) and 11.17M parameters for 10 classes; ResNet-34 has (3, 4, 6, 3) and 21.28M.

Example:
    >>> import torch
    >>> model = CifarResNetForImageClassification(CifarResNetConfig.resnet18(num_labels=10))
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

RESNET_DEPTHS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


class CifarResNetConfig(PreTrainedConfig):
    """Configuration of :class:`CifarResNetForImageClassification`.

    Args:
        num_channels: input channels (3 for CIFAR, 1 for grey images).
        depths: BasicBlocks per stage: (2, 2, 2, 2) is ResNet-18, (3, 4, 6, 3) ResNet-34.
        hidden_sizes: channels of each stage; the stem has ``hidden_sizes[0]``.
        image_size: nominal input size, recorded for model cards and processors (the global
            average pool makes the network itself size-agnostic).
        num_labels, id2label, label2id: as in every transformers config.

    Example:
        >>> CifarResNetConfig.resnet34(num_labels=100).depths
        [3, 4, 6, 3]
    """

    model_type = "jal-resnet"

    num_channels: int = 3
    depths: list[int] | tuple[int, ...] = (2, 2, 2, 2)
    hidden_sizes: list[int] | tuple[int, ...] = (64, 128, 256, 512)
    image_size: int = 32

    def __post_init__(self, **kwargs: Any) -> None:
        self.depths = [int(d) for d in self.depths]
        self.hidden_sizes = [int(h) for h in self.hidden_sizes]
        super().__post_init__(**kwargs)
        if len(self.depths) != len(self.hidden_sizes) or not self.depths:
            raise ValueError(
                f"depths {self.depths} and hidden_sizes {self.hidden_sizes} must be non-empty and of equal length "
                "(one entry per stage)."
            )
        if min(self.depths) < 1 or min(self.hidden_sizes) < 1 or self.num_channels < 1:
            raise ValueError("depths, hidden_sizes and num_channels must be positive integers; fix the config.")

    @classmethod
    def resnet18(cls, **kwargs: Any) -> CifarResNetConfig:
        """ResNet-18 (BasicBlock depths 2, 2, 2, 2)."""
        return cls(depths=RESNET_DEPTHS["resnet18"], **kwargs)

    @classmethod
    def resnet34(cls, **kwargs: Any) -> CifarResNetConfig:
        """ResNet-34 (BasicBlock depths 3, 4, 6, 3)."""
        return cls(depths=RESNET_DEPTHS["resnet34"], **kwargs)


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity (or 1x1 conv + BN) shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNetForImageClassification(VisionClassifierMixin, PreTrainedModel):
    """ResNet with the CIFAR stem and a linear classification head.

    ``forward(pixel_values)`` takes normalised float images (batch, num_channels, H, W) and
    returns :class:`~transformers.modeling_outputs.ImageClassifierOutput` with ``logits``
    (batch, num_labels); the mean cross-entropy ``loss`` is filled only when ``labels`` (batch,)
    are given. Other keyword arguments (extra batch columns) are accepted and ignored.
    """

    config_class = CifarResNetConfig
    base_model_prefix = "resnet"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["BasicBlock"]
    # The loss here is a per-batch mean: the Trainer scales it for gradient accumulation.
    accepts_loss_kwargs = False

    def __init__(self, config: CifarResNetConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        width = config.hidden_sizes[0]
        self.stem = nn.Sequential(
            nn.Conv2d(config.num_channels, width, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages = []
        for index, (depth, out_channels) in enumerate(zip(config.depths, config.hidden_sizes)):
            blocks = []
            for block in range(depth):
                stride = 2 if index > 0 and block == 0 else 1
                blocks.append(BasicBlock(width, out_channels, stride))
                width = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def _logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, num_labels) logits; `VisionClassifierMixin.forward` checks the images and adds the loss."""
        hidden = self.stages(self.stem(pixel_values))
        return self.classifier(hidden.mean(dim=(2, 3)))


__all__ = ["CifarResNetConfig", "CifarResNetForImageClassification", "RESNET_DEPTHS"]
