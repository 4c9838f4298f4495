"""Base classes of the loss library: input checks, dtype, ``ignore_index``, reduction, parameters.

A loss subclass declares its name, its parameters (:class:`Param`) and its per-sample formula;
:class:`RobustLoss` does the rest, identically for every loss:

* logits ``(N, K)`` of any floating dtype are computed in float32 (float16 and bfloat16 are
  upcast; float64 stays float64), with autocast switched off inside the loss;
* labels ``(N,)`` are integer class indices; ``ignore_index`` marks samples to skip;
* token logits ``(N, L, K)`` with labels ``(N, L)`` (a token-classification head) are read as
  ``N * L`` samples, so ``-100`` at padding and non-first sub-tokens is skipped; ``"none"`` then
  returns ``(N, L)``;
* ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"`` with the semantics of
  ``torch.nn.functional.cross_entropy``: ``"none"`` gives 0 at ignored samples, ``"sum"`` adds
  the others (0 for an all-ignored batch), ``"mean"`` divides that sum by the number of
  non-ignored samples, so an all-ignored (or empty) batch gives NaN, exactly as
  ``F.cross_entropy`` does (its gradient is still 0 everywhere).

:class:`CombinedLoss` adds the APL structure ``alpha * active + beta * passive`` and
:meth:`CombinedLoss.parts`, the two weighted terms per sample for logging.

Example:
    >>> import torch
    >>> from jal_trainer.losses import build_loss
    >>> loss = build_loss("nce+rce", alpha=1.0, beta=1.0, reduction="none")
    >>> logits, labels = torch.randn(4, 10), torch.tensor([0, 1, -100, 3])
    >>> loss(logits, labels)[2].item()   # ignored sample
    0.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REDUCTIONS = ("mean", "sum", "none")


@dataclasses.dataclass(frozen=True)
class Param:
    """One hyper-parameter of a loss: name, default and valid range ``[minimum, inf)``.

    ``exclusive=True`` makes the range open, ``(minimum, inf)``. ``reason`` says why the range
    is what it is; it goes into the error message.

    Example:
        >>> Param("q", 0.7, minimum=0.0, exclusive=True).check("gce", 0.5)
        0.5
    """

    name: str
    default: float
    minimum: float = 0.0
    exclusive: bool = False
    reason: str = ""

    def with_default(self, default: float) -> Param:
        """The same parameter with another default value."""
        return dataclasses.replace(self, default=default)

    def range_text(self) -> str:
        """The valid range as text, e.g. ``"a > 1"``."""
        return f"{self.name} {'>' if self.exclusive else '>='} {self.minimum:g}"

    def check(self, loss_name: str, value: Any) -> float:
        """Return ``value`` as a float, or raise ``ValueError`` if it is not a number in range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"{loss_name}: parameter {self.name} must be a real number, got {value!r} "
                f"({type(value).__name__}); pass a float with {self.range_text()}."
            )
        value = float(value)
        below = value <= self.minimum if self.exclusive else value < self.minimum
        if not math.isfinite(value) or below:
            why = f" ({self.reason})" if self.reason else ""
            raise ValueError(
                f"{loss_name}: parameter {self.name}={value:g} is out of range; it needs "
                f"{self.range_text()}{why}. Default: {self.name}={self.default:g}."
            )
        return value


def resolve_params(loss_name: str, specs: tuple[Param, ...], given: Mapping[str, Any]) -> dict[str, float]:
    """Fill defaults, reject unknown names, check ranges; return ``{name: value}`` in spec order."""
    known = [spec.name for spec in specs]
    unknown = sorted(set(given) - set(known))
    if unknown:
        accepted = (
            f"its parameters are {', '.join(known)}" if known else "it takes no parameters"
        )
        raise ValueError(
            f"{loss_name} has no parameter {', '.join(map(repr, unknown))}: {accepted}. "
            "Remove or rename the argument."
        )
    return {spec.name: spec.check(loss_name, given.get(spec.name, spec.default)) for spec in specs}


def flatten_tokens(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, tuple[int, ...] | None]:
    """Token logits ``(N, L, K)`` and labels ``(N, L)`` as ``(N * L, K)`` and ``(N * L,)``.

    Returns ``(logits, labels, shape)`` where ``shape`` is ``(N, L)`` for token inputs (to give
    ``reduction="none"`` its shape back) and None for anything else, passed through unchanged.

    Example:
        >>> z, y, shape = flatten_tokens(torch.zeros(2, 3, 5), torch.zeros(2, 3, dtype=torch.long))
        >>> tuple(z.shape), tuple(y.shape), shape
        ((6, 5), (6,), (2, 3))
    """
    if not (isinstance(logits, Tensor) and isinstance(labels, Tensor) and logits.ndim == 3 and labels.ndim == 2):
        return logits, labels, None
    if tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"token labels must have shape (N, L) = {tuple(logits.shape[:2])} to match logits (N, L, K) = "
            f"{tuple(logits.shape)}, got {tuple(labels.shape)}; pad labels with -100 to the logits' length."
        )
    return logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), tuple(labels.shape)


def prepare_inputs(
    logits: Tensor, labels: Tensor, ignore_index: int
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Check shapes and labels; return ``(z, y, valid)``.

    ``z`` is ``logits`` as float32 (float64 kept), ``(N, K)``; ``y`` the int64 labels with
    ignored positions replaced by class 0 (so that they index safely), ``(N,)``; ``valid`` the
    boolean mask of non-ignored samples ``(N,)``, or None when no sample is ignored (the
    common case, which then skips all masking). The label range is checked with one min/max,
    a single device sync on GPU (two when the batch has ignored samples).
    """
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"logits must be a tensor of shape (N, K), or (N, L, K) with labels (N, L), got {shape}; "
            "flatten extra dimensions first, e.g. logits.reshape(-1, logits.shape[-1])."
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}; pass logits.float().")
    num, num_classes = logits.shape
    if num_classes < 2:
        raise ValueError(f"logits need at least 2 classes (K >= 2), got K = {num_classes}.")
    if not isinstance(labels, Tensor) or tuple(labels.shape) != (num,):
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must have shape (N,) = ({num},) to match logits, got {shape}.")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be integer class indices, got dtype {labels.dtype}; pass labels.long()."
        )
    z = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    y = labels.long()
    if num == 0:
        return z, y, None
    if y.is_cuda and torch.cuda.is_current_stream_capturing():
        # Inside a CUDA graph there is no host sync: mask every batch (the same values) and leave
        # the range check to the caller, which checks the training labels once before capture.
        valid = y != ignore_index
        return z, y.masked_fill(~valid, 0), valid
    low, high = torch.stack(torch.aminmax(y)).tolist()
    ignore_is_a_class = 0 <= ignore_index < num_classes
    if 0 <= low and high < num_classes and not ignore_is_a_class:
        return z, y, None
    valid = y != ignore_index
    y = y.masked_fill(~valid, 0)
    low, high = torch.stack(torch.aminmax(y)).tolist()
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}) or equal ignore_index={ignore_index}; "
            f"found values from {low} to {high}. Check that the model's number of classes "
            "matches the data, or map unusable labels to ignore_index."
        )
    return z, y, valid


def reduce_loss(per_sample: Tensor, valid: Tensor | None, reduction: str) -> Tensor:
    """Zero the ignored samples of ``per_sample`` ``(N,)``, then reduce like ``F.cross_entropy``.

    ``valid`` is the mask of non-ignored samples, None when all count.
    """
    if valid is not None:
        per_sample = torch.where(valid, per_sample, 0.0)
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    if valid is None:
        return per_sample.mean()  # NaN for an empty batch, as in F.cross_entropy
    return per_sample.sum() / valid.sum()  # 0 / 0 = NaN when all are ignored, as F.cross_entropy


def perfect_fit_logits(num_classes: int) -> Tensor:
    """Float64 logits ``(1, K)`` of a perfect fit to class 0: ``p_0 = 1`` and ``p_k = 0`` in float64."""
    logits = torch.zeros(1, num_classes, dtype=torch.float64)
    logits[0, 0] = 1e4  # exp(-1e4) underflows to 0: the one-hot itself, not an approximation
    return logits


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Disable autocast on ``device`` (it would run reductions such as vecdot in half precision)."""
    if torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


class RobustLoss(nn.Module):
    """Base of every loss: ``forward(logits (N, K), labels (N,)) -> Tensor``.

    Subclasses set ``name`` and ``param_specs`` and implement :meth:`formula` on
    log-probabilities; a subclass with a fused kernel also overrides :meth:`per_sample`.

    Args:
        reduction: ``"mean"`` (over non-ignored samples), ``"sum"`` or ``"none"``.
        ignore_index: label value whose samples contribute 0 (default -100, as in PyTorch).
        **params: the loss's hyper-parameters (see ``param_specs``); defaults fill the rest.

    Attributes:
        hparams: resolved hyper-parameters, ``{name: float}``.
        preset: the preset :func:`~jal_trainer.losses.build_loss` used, or None.
        use_fused_kernel: True on losses computed by the fused kernel; set it to False on an
            instance to use the plain formula instead (same values, slower).
    """

    name: ClassVar[str] = ""
    param_specs: ClassVar[tuple[Param, ...]] = ()
    is_combination: ClassVar[bool] = False
    use_fused_kernel: bool = False

    def __init__(self, *, reduction: str = "mean", ignore_index: int = -100, **params: float) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}.")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise ValueError(f"ignore_index must be an int (e.g. -100), got {ignore_index!r}.")
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.preset: str | None = None
        self._hparams = resolve_params(self.name, self.param_specs, params)
        for key, value in self._hparams.items():
            setattr(self, key, value)

    @property
    def hparams(self) -> dict[str, float]:
        """Resolved hyper-parameters, e.g. ``{"alpha": 1.0, "beta": 1.0, "a": 30.0}``."""
        return dict(self._hparams)

    @property
    def spec(self) -> dict[str, Any]:
        """Everything needed to rebuild this loss with ``build_loss(spec["name"], ...)``."""
        return {
            "name": self.name,
            "preset": self.preset,
            "reduction": self.reduction,
            "ignore_index": self.ignore_index,
            "params": self.hparams,
        }

    def extra_repr(self) -> str:
        params = ", ".join(f"{key}={value:g}" for key, value in self._hparams.items())
        return ", ".join(filter(None, [params, f"reduction={self.reduction!r}"]))

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        """Per-sample loss ``(N,)`` from log-probabilities ``(N, K)`` and labels ``(N,)``."""
        raise NotImplementedError

    def per_sample(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Per-sample loss ``(N,)`` from checked float logits ``(N, K)`` and in-range labels."""
        return self.formula(F.log_softmax(logits, dim=1), labels)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Loss of ``logits`` ``(N, K)`` for ``labels`` ``(N,)`` (or ``(N, L, K)``, ``(N, L)``), reduced."""
        logits, labels, shape = flatten_tokens(logits, labels)
        z, y, valid = prepare_inputs(logits, labels, self.ignore_index)
        with _autocast_off(z.device):
            out = reduce_loss(self.per_sample(z, y), valid, self.reduction)
        return out.reshape(shape) if shape is not None and self.reduction == "none" else out

    def minimum(self, num_classes: int) -> float:
        """The loss's smallest per-sample value for ``K = num_classes``: its value at a perfect fit.

        Every loss of the library is smallest when ``p`` is the one-hot of the label (AMSE:
        ``(a - 1)^2 / K``; RCE: ``(K - 1) * 1e-8 * -log(1e-4)`` from its clamp; CE, NCE, GCE: 0).
        Trainers subtract it from what they log, so a logged loss reads 0 at a perfect fit;
        ``forward`` itself keeps the paper's values.

        Example:
            >>> from jal_trainer.losses import build_loss
            >>> round(build_loss("amse", a=30.0).minimum(2), 2)
            420.5
        """
        return float(sum(self.minimum_parts(num_classes)))

    def minimum_parts(self, num_classes: int) -> tuple[float, float]:
        """``(minimum of the weighted active term, minimum of the weighted passive term)``.

        A single loss has no passive term: ``(minimum, 0.0)``. Cached per ``K`` and parameters.
        """
        cache = self.__dict__.setdefault("_minimum_cache", {})
        key = (num_classes, *(getattr(self, name) for name in self._hparams))
        if key not in cache:
            with torch.no_grad(), _autocast_off(torch.device("cpu")):
                cache[key] = self._parts_at_perfect_fit(perfect_fit_logits(num_classes))
        return cache[key]

    def _parts_at_perfect_fit(self, logits: Tensor) -> tuple[float, float]:
        return float(self.per_sample(logits, torch.zeros(1, dtype=torch.long))), 0.0


class CombinedLoss(RobustLoss):
    """``alpha * active + beta * passive``; subclasses implement :meth:`terms`.

    ``alpha`` and ``beta`` always replace the terms' own scales: in NCE+MAE the passive term
    is ``beta * (1 - p_y)``, not ``beta * 2 * (1 - p_y)``.
    """

    is_combination: ClassVar[bool] = True
    alpha: float
    beta: float

    def terms(self, logp: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Unweighted per-sample ``(active, passive)``, each ``(N,)``, from log-probabilities."""
        raise NotImplementedError

    def logit_terms(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Unweighted ``(active, passive)`` from checked logits; fused subclasses override it."""
        return self.terms(F.log_softmax(logits, dim=1), labels)

    def _weighted(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        active, passive = self.logit_terms(logits, labels)
        return self.alpha * active, self.beta * passive

    def formula(self, logp: Tensor, labels: Tensor) -> Tensor:
        active, passive = self.terms(logp, labels)
        return self.alpha * active + self.beta * passive

    def per_sample(self, logits: Tensor, labels: Tensor) -> Tensor:
        active, passive = self._weighted(logits, labels)
        return active + passive

    def _parts_at_perfect_fit(self, logits: Tensor) -> tuple[float, float]:
        active, passive = self._weighted(logits, torch.zeros(1, dtype=torch.long))
        return float(active), float(passive)

    def parts(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample ``(alpha * active, beta * passive)``, each ``(N,)`` (``(N, L)`` for token
        logits ``(N, L, K)``), 0 at ignored samples.

        Float32 (float64 for float64 logits). Their sum is exactly ``forward`` with
        ``reduction="none"``, and they are differentiable, so a training loop can log both
        parts and back-propagate their sum from one call.

        Example:
            >>> from jal_trainer.losses import build_loss
            >>> loss = build_loss("jal-ce", preset="cifar10")
            >>> active, passive = loss.parts(torch.zeros(2, 10), torch.tensor([0, -100]))
            >>> round(passive[0].item(), 2), passive[1].item()
            (89.41, 0.0)
        """
        logits, labels, shape = flatten_tokens(logits, labels)
        z, y, valid = prepare_inputs(logits, labels, self.ignore_index)
        with _autocast_off(z.device):
            active, passive = self._weighted(z, y)
        if valid is not None:
            active, passive = torch.where(valid, active, 0.0), torch.where(valid, passive, 0.0)
        if shape is not None:  # token inputs: (N, L) per position
            return active.reshape(shape), passive.reshape(shape)
        return active, passive
