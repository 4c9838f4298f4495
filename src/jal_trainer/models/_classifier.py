"""What the vision classifiers share: ``forward`` (input check, logits, CE loss) and weight init.

Kept free of package imports (only torch, transformers and its sibling ``_initialization.py``,
relatively) so that ``save_pretrained`` can copy it beside the weights together with the model file.

Example:
    >>> class Tiny(VisionClassifierMixin, torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.config, self.head = type("Config", (), {"num_channels": 1})(), torch.nn.Linear(4, 3)
    ...     def _logits(self, pixel_values):
    ...         return self.head(pixel_values.flatten(1))
    >>> Tiny()(torch.zeros(2, 1, 2, 2), labels=torch.tensor([0, 1])).logits.shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers.modeling_outputs import ImageClassifierOutput

from ._initialization import init_vision_weights


class VisionClassifierMixin:
    """``forward`` and ``_init_weights`` of a vision ``PreTrainedModel``; the model defines ``_logits``.

    Put it before ``PreTrainedModel`` in the bases so that its ``_init_weights`` is the one used.
    """

    config: Any

    def _logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, num_labels) logits of checked images (batch, C, H, W)."""
        raise NotImplementedError

    def _init_weights(self, module: nn.Module) -> None:
        init_vision_weights(module)

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: Any
    ) -> ImageClassifierOutput:
        """Logits (batch, num_labels) for images (batch, C, H, W); CE loss when labels are given."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must be (batch, {self.config.num_channels}, H, W), got {tuple(pixel_values.shape)}; "
                "collate images with jal_trainer.data.ImageCollator or set num_channels in the config."
            )
        logits = self._logits(pixel_values)
        loss = F.cross_entropy(logits, labels.long()) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
