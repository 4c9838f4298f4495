"""The loss plumbing of `JALTrainer`: logits from any output, exact reduction, the logged floor, L1 scope.

These are plain functions so that a plain `transformers.Trainer` (``compute_loss_func``) and a
hand-written loop can use them too.

Example:
    >>> import torch
    >>> normalise_loss(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]), 4)
    tensor(1.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

IGNORE_INDEX = -100


def logits_of(outputs: Any) -> torch.Tensor:
    """Return the logits (N, K) from a model output: a tensor, a `ModelOutput`/dict or a tuple."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        if "logits" not in outputs:
            raise ValueError(
                f"The model output has no 'logits' (keys: {sorted(outputs)}). Return the class scores as a "
                "tensor of shape (batch, num_classes) or under the key 'logits'."
            )
        return outputs["logits"]
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    raise ValueError(
        f"Cannot find logits in a model output of type {type(outputs).__name__}: return a tensor of shape "
        "(batch, num_classes), a dict/ModelOutput with 'logits', or a tuple whose first item is the logits."
    )


def normalise_loss(
    per_sample: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None,
    num_processes: int = 1,
) -> torch.Tensor:
    """Reduce per-sample losses so that any split of the batch gives the same gradient.

    Args:
        per_sample: (N,) float32 losses of this micro-batch, 0 at ignored positions.
        labels: (N,) int64 labels; ``-100`` marks ignored positions.
        num_items_in_batch: non-ignored samples over the whole optimiser step (all accumulation
            steps; all processes when the Trainer counted them globally), or ``None`` for a
            plain mean over this micro-batch.
        num_processes: factor that undoes DDP's gradient averaging when the count is global.

    Returns:
        A scalar: ``per_sample.sum() / num_items_in_batch * num_processes``.
    """
    if num_items_in_batch is None:
        return per_sample.sum() / labels.ne(IGNORE_INDEX).sum().clamp(min=1)
    return per_sample.sum() / num_items_in_batch * num_processes


class LossFunction:
    """A robust loss as a ``compute_loss_func`` for the plain `transformers.Trainer`.

    The plain Trainer gives it the model output, the labels and ``num_items_in_batch``, and then
    multiplies by the process count when ``average_tokens_across_devices`` is on, so this returns
    ``sum / num_items_in_batch``. (No L1 penalty and no part logging: use `JALTrainer` for those.)

    Example:
        >>> from transformers import Trainer
        >>> trainer = Trainer(model, args,
        ...                   compute_loss_func=make_compute_loss_func("jal-ce", preset="cifar10"))  # doctest: +SKIP
    """

    def __init__(self, loss: nn.Module) -> None:
        self.loss = loss

    def __call__(
        self, outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        logits = logits_of(outputs)
        per_sample, _ = above_minimum(self.loss, per_sample_loss(self.loss, logits, labels), None, labels,
                                      logits.shape[-1])
        return clamp_logged(normalise_loss(per_sample, labels, num_items_in_batch))


def make_compute_loss_func(name: str = "jal-ce", *, preset: str | None = None, **params: float) -> LossFunction:
    """Build a ``compute_loss_func`` for `transformers.Trainer` from a loss name (see `build_loss`)."""
    from jal_trainer.losses import build_loss

    return LossFunction(build_loss(name, preset=preset, reduction="none", **params))


def per_sample_loss(loss: nn.Module, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) float32 per-sample loss, computed outside autocast so that bf16/fp16 runs stay exact."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return loss(logits.float(), labels)


def above_minimum(
    loss: nn.Module, active: torch.Tensor, passive: torch.Tensor | None, labels: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample parts ``(N,)`` minus the loss's value at a perfect fit (0 at ignored samples).

    What the Trainer logs then reads 0 at a perfect fit and never below (AMSE's constant
    ``(a - 1)^2 / K`` would otherwise dominate: 420.5 for JAL-CE, a = 30, K = 2), so it compares
    across epochs and works as ``metric_for_best_model``. Subtracting a constant leaves the
    gradient, hence training, unchanged. A loss without ``minimum_parts`` is left as it is.
    """
    floors = getattr(loss, "minimum_parts", None)
    if floors is None:
        return active, passive
    low_active, low_passive = floors(num_classes)
    counted = labels.ne(IGNORE_INDEX).to(active.dtype)
    if passive is None:  # `active` is the whole per-sample loss
        return active - (low_active + low_passive) * counted, None
    return active - low_active * counted, passive - low_passive * counted


def clamp_logged(loss: torch.Tensor) -> torch.Tensor:
    """``max(loss, 0)`` in value, with the gradient of ``loss``: rounding cannot log a negative loss."""
    return loss + (loss.detach().clamp(min=0.0) - loss.detach())


def l1_parameters(model: nn.Module, scope: str = "head") -> list[nn.Parameter]:
    """The trainable parameters the L1 penalty covers.

    ``"all"``: every one (the paper, training from scratch). ``"head"``: those outside the
    model's pretrained body, ``model.base_model`` (``bert`` of a BertForSequenceClassification:
    only the new classifier is penalised); a model without a separate body (the paper's CNN, a
    probe head, a plain module) has no pretrained weights to protect, so every parameter counts.

    Example:
        >>> from torch import nn
        >>> len(l1_parameters(nn.Linear(2, 2), "head"))   # no body: weight and bias
        2
    """
    body = getattr(model, "base_model", model)
    if scope == "all" or body is model or not isinstance(body, nn.Module):
        return [p for p in model.parameters() if p.requires_grad]
    in_body = {id(p) for p in body.parameters()}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in in_body]


class _SmoothedCE(nn.Module):
    """Per-sample cross entropy with label smoothing (``F.cross_entropy(label_smoothing=eps)``), float32."""

    name = "ce"

    def __init__(self, epsilon: float) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.hparams = {"label_smoothing": epsilon}

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.float(), labels, reduction="none", ignore_index=IGNORE_INDEX,
                                           label_smoothing=self.epsilon)


def _smoothed_ce(epsilon: float, loss: nn.Module | None) -> nn.Module:
    if loss is not None:
        raise ValueError(
            f"label_smoothing_factor={epsilon} cannot be applied to a loss= module. Set label_smoothing_factor to 0, "
            "or drop loss= and use loss_type='ce'."
        )
    return _SmoothedCE(epsilon)
