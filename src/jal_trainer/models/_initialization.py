"""Weight initialisation shared by the vision models (kept free of package imports so that
``save_pretrained`` can copy it beside the weights together with the model file)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init


@torch.no_grad()
def init_vision_weights(module: nn.Module) -> None:
    """Kaiming (fan-out, ReLU) convolutions, PyTorch-default Linear layers, identity BatchNorm.

    The ``transformers.initialization`` functions skip tensors already loaded from a checkpoint,
    which is what ``PreTrainedModel._init_weights`` must do in transformers 5.

    Example:
        >>> conv = nn.Conv2d(3, 8, 3)
        >>> init_vision_weights(conv)
    """
    if isinstance(module, nn.Conv2d):
        init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        # torch.nn.Linear.reset_parameters, spelled with the checkpoint-aware functions
        init.kaiming_uniform_(module.weight, a=5**0.5)
        if module.bias is not None:
            bound = 1.0 / module.weight.shape[1] ** 0.5
            init.uniform_(module.bias, -bound, bound)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        init.ones_(module.weight)
        init.zeros_(module.bias)
        init.zeros_(module.running_mean)
        init.ones_(module.running_var)
        init.zeros_(module.num_batches_tracked)
