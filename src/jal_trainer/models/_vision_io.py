"""The input check and the output shared by the vision models (kept free of package imports so
that ``save_pretrained`` can copy it beside the weights together with the model file)."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from transformers.modeling_outputs import ImageClassifierOutput


def check_pixel_values(pixel_values: torch.Tensor, num_channels: int) -> None:
    """Refuse images that are not ``(batch, num_channels, H, W)``, naming the collator that makes them.

    Example:
        >>> check_pixel_values(torch.zeros(2, 3, 32, 32), 3)
    """
    if pixel_values.ndim != 4 or pixel_values.shape[1] != num_channels:
        raise ValueError(
            f"pixel_values must be (batch, {num_channels}, H, W), got {tuple(pixel_values.shape)}; "
            "collate images with jal_trainer.data.ImageCollator or set num_channels in the config."
        )


def classifier_output(logits: torch.Tensor, labels: torch.Tensor | None) -> ImageClassifierOutput:
    """The model output: ``logits`` (batch, num_labels), and the batch-mean CE loss when ``labels`` (batch,) are given.

    Example:
        >>> classifier_output(torch.zeros(2, 3), torch.tensor([0, 1])).loss
        tensor(1.0986)
    """
    loss = F.cross_entropy(logits, labels.long()) if labels is not None else None
    return ImageClassifierOutput(loss=loss, logits=logits)
