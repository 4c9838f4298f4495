"""`JALTrainer`: a `transformers.Trainer` that optimises a robust loss, exactly under any batch split.

Why a subclass and not only ``compute_loss_func``: the Trainer's own path leaves the loss of a
classification head a per-micro-batch mean, so with gradient accumulation or several processes
the optimised loss is a sum of means (2x with 2 accumulation steps). `JALTrainer` always
returns ``sum over samples / num_items_in_batch`` (the count over every micro-batch of the
optimiser step and every process), and sets ``loss_is_scaled_for_ga = True``: the update is the
same for batch 8, for 4 x 2 accumulation steps and for 2 x 2 steps x 2 processes.

It also adds the paper's L1 weight decay, logs the active and passive parts of a combined loss
(averaged over all processes), drops analysis columns before ``forward`` and warns when the
AMSE parameter ``a`` is too small for the noise in the training set (Theorem 4.1).

Example:
    >>> from jal_trainer import JALConfig, JALTrainer
    >>> args = JALConfig(output_dir="out", loss_type="jal-ce", loss_preset="cifar10")
    >>> trainer = JALTrainer(model=model, args=args, train_dataset=noisy_train)  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.utils import logging

from jal_trainer.config import CLEAN_LABEL_COLUMN, JALConfig
from jal_trainer.hub import ModelCardMixin
from jal_trainer.losses import AMSE_LOSSES

logger = logging.get_logger(__name__)

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
        >>> trainer = Trainer(model, args, compute_loss_func=make_compute_loss_func("jal-ce", preset="cifar10"))  # doctest: +SKIP
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


def _as_jal_config(args: TrainingArguments | None) -> JALConfig:
    """Accept plain `TrainingArguments` too: copy their fields into a `JALConfig` with the default loss."""
    if args is None:
        return JALConfig()
    if isinstance(args, JALConfig):
        return args
    init_fields = {f.name for f in dataclasses.fields(args) if f.init}
    values = {name: getattr(args, name) for name in init_fields}
    logger.info("JALTrainer got plain TrainingArguments: using JALConfig defaults for the loss (jal-ce).")
    return JALConfig(**values)


class JALTrainer(ModelCardMixin, Trainer):
    """`transformers.Trainer` that trains with a robust loss (JAL-CE by default) from `JALConfig`.

    Works with transformers classification models and with any ``nn.Module`` whose ``forward``
    takes the batch columns as keyword arguments and returns logits (N, K) (a tensor, a dict
    with ``logits``, or a tuple). The labels are read from the ``labels`` column and never passed
    to ``forward``, so a transformers head does not compute its own cross-entropy.

    Args:
        model: the classifier.
        args: a `JALConfig` (plain `TrainingArguments` get the default loss).
        loss: optional ``nn.Module`` mapping (logits, labels) to per-sample losses (N,), used
            instead of the one `args` describes.
        **kwargs: everything `transformers.Trainer` takes (datasets, collator, callbacks, ...).

    Logged: ``loss`` (and ``eval_loss``) is the loss minus its value at a perfect fit (see
    `above_minimum`), so it reads 0 at a perfect fit; the training ``loss`` adds the L1 term,
    ``eval_loss`` does not. For combined losses also ``loss_active`` and ``loss_passive``, each
    weighted by alpha or beta and above its own minimum, adding up to the loss without L1.
    """

    # `compute_loss` returns sum / num_items_in_batch: already scaled for gradient accumulation.
    loss_is_scaled_for_ga = True

    def __init__(self, model: nn.Module | None = None, args: TrainingArguments | None = None, *,
                 loss: nn.Module | None = None, **kwargs: Any) -> None:
        args = _as_jal_config(args)
        self.loss_fn = loss if loss is not None else args.build_loss(reduction="none")
        # Passing a compute_loss_func makes the Trainer count `num_items_in_batch` over the whole
        # optimiser step (all accumulation steps, all processes), even for a plain nn.Module.
        kwargs.setdefault("compute_loss_func", LossFunction(self.loss_fn))
        super().__init__(model=model, args=args, **kwargs)
        if not self.label_names:
            # A plain nn.Module has no `labels` argument; without this, evaluation would drop labels.
            self.label_names = ["labels"]
        self._forward_params: tuple[frozenset[str], bool] | None = None
        # running (sum active, sum passive, count) per mode ("train", "eval"), reset when logged
        self._part_sums: dict[str, torch.Tensor] = {}
        self._warn_if_a_not_admissible()

    # ---- loss ----------------------------------------------------------------------------------

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Robust loss of a micro-batch, normalised by the sample count of the whole optimiser step."""
        labels = inputs["labels"]
        outputs = model(**self._forward_inputs(model, inputs))
        logits = logits_of(outputs)
        active, passive = above_minimum(self.loss_fn, *self._parts(logits, labels), labels, logits.shape[-1])
        per_sample = active if passive is None else active + passive

        # The L1 term regularises training; eval_loss measures the fit alone, so it leaves it out.
        l1 = self._l1_penalty(model) if model.training else None
        if l1 is not None:
            # Spread lambda * sum|theta| over the samples: each optimiser step then adds it exactly
            # once, whatever the split into accumulation steps and processes.
            per_sample = per_sample + l1 * labels.ne(IGNORE_INDEX).to(per_sample.dtype)

        if model.training and num_items_in_batch is not None:
            scale = self.accelerator.num_processes if self.args.average_tokens_across_devices else 1
            loss = normalise_loss(per_sample, labels, num_items_in_batch, scale)
        else:
            # Evaluation: a local mean; the Trainer weights it by the batch size when it gathers.
            loss = normalise_loss(per_sample, labels, None)
        loss = clamp_logged(loss)

        self._accumulate_parts(active, passive, labels, "train" if model.training else "eval")
        if not model.training:
            self._count_predictions(logits.detach(), labels)
        if return_outputs:
            return loss, outputs if not isinstance(outputs, torch.Tensor) else {"logits": outputs}
        return loss

    def _parts(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weighted active, weighted passive) per sample for a combination, else (loss, None)."""
        with torch.autocast(device_type=logits.device.type, enabled=False):
            if getattr(self.loss_fn, "is_combination", False):
                return self.loss_fn.parts(logits.float(), labels)
            return self.loss_fn(logits.float(), labels), None

    def _l1_penalty(self, model: nn.Module) -> torch.Tensor | None:
        lam = self.args.l1_weight_decay
        if not lam:
            return None
        params = l1_parameters(self.accelerator.unwrap_model(model), getattr(self.args, "l1_scope", "all"))
        return lam * sum(p.abs().sum() for p in params)

    def _forward_inputs(self, model: nn.Module, inputs: dict[str, Any]) -> dict[str, Any]:
        """The batch without labels and analysis columns, and without keys ``forward`` cannot take."""
        if self._forward_params is None:
            params = inspect.signature(self.accelerator.unwrap_model(model).forward).parameters
            takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            self._forward_params = (frozenset(params), takes_any)
        names, takes_any = self._forward_params
        skip = {"labels", *self.args.analysis_columns}
        return {k: v for k, v in inputs.items() if k not in skip and (takes_any or k in names)}

    # ---- logging of the active and passive parts ----------------------------------------------

    def _accumulate_parts(
        self, active: torch.Tensor, passive: torch.Tensor | None, labels: torch.Tensor, mode: str
    ) -> None:
        """Add this micro-batch's (sum active, sum passive, sample count) to the running sums of `mode`."""
        if passive is None:
            return
        batch = torch.stack([active.detach().sum(), passive.detach().sum(), labels.ne(IGNORE_INDEX).sum().float()])
        self._part_sums[mode] = self._part_sums[mode] + batch if mode in self._part_sums else batch

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        # Start each evaluation (or prediction) from zero: prediction passes such as the
        # memorisation callback's must not leak into the next evaluation's logged parts.
        self._part_sums.pop("eval", None)
        self._prediction_counts = None
        return super().evaluation_loop(*args, **kwargs)

    def _count_predictions(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add this batch's (predicted, labelled) class counts, (2, K), for the collapse guard."""
        logits = logits.reshape(-1, logits.shape[-1])
        labels = labels.reshape(-1)
        kept = labels.ne(IGNORE_INDEX)
        num_classes = logits.shape[-1]
        counts = torch.stack([torch.bincount(logits[kept].argmax(-1), minlength=num_classes),
                              torch.bincount(labels[kept], minlength=num_classes)])
        previous = getattr(self, "_prediction_counts", None)
        self._prediction_counts = counts if previous is None else previous + counts

    def _warn_if_collapsed(self, split: str) -> None:
        """Warn (`CollapseWarning`) when one class takes >= 95% of this evaluation's predictions."""
        counts = getattr(self, "_prediction_counts", None)
        self._prediction_counts = None
        if counts is None:
            return
        from jal_trainer.collapse import CollapseWarning, collapse_message, describe_loss

        counts = self.accelerator.reduce(counts.to(self.args.device), reduction="sum").cpu().numpy()
        message = collapse_message(counts[0], counts[1], describe_loss(self.loss_fn), split=f"{split} set")
        if message is not None:
            warnings.warn(message, CollapseWarning, stacklevel=2)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add ``loss_active`` and ``loss_passive``, averaged over every sample of every process."""
        prefix = _evaluation_prefix(logs)
        if prefix is not None:
            self._warn_if_collapsed(prefix.rstrip("_"))
        sums = self._part_sums.pop("train" if prefix is None else "eval", None)
        if sums is not None and (prefix is not None or "loss" in logs):
            # A sum over processes (one collective, called on every rank since every rank logs).
            total = self.accelerator.reduce(sums.to(self.args.device), reduction="sum")
            count = total[2].clamp(min=1)
            logs[f"{prefix or ''}loss_active"] = round((total[0] / count).item(), 6)
            logs[f"{prefix or ''}loss_passive"] = round((total[1] / count).item(), 6)
        super().log(logs, start_time)

    # ---- Theorem 4.1 -----------------------------------------------------------------------------

    def _warn_if_a_not_admissible(self) -> None:
        """Warn when AMSE's ``a`` is below the bound of Theorem 4.1 for the training set's realised noise."""
        name = getattr(self.loss_fn, "name", self.args.loss_type)
        a = getattr(self.loss_fn, "hparams", {}).get("a")
        if name not in AMSE_LOSSES or a is None:
            return
        report = _realised_noise(self.train_dataset, CLEAN_LABEL_COLUMN)
        if report is None:
            return
        if report.min_a is None:
            warnings.warn(
                f"Theorem 4.1 gives no admissible a for the training labels: class {report.binding_class} is not "
                "clean-label dominant (its noisy labels are more often another class), so AMSE is not noise "
                "tolerant here whatever a is.",
                stacklevel=3,
            )
        elif a < report.min_a:
            warnings.warn(
                f"a = {a:g} is below the smallest a = {report.min_a:.3g} that makes AMSE noise tolerant for the "
                f"realised noise of the training set (Theorem 4.1, set by class {report.binding_class}). "
                f"Set `a` >= {report.min_a:.3g}.",
                stacklevel=3,
            )


def _evaluation_prefix(logs: dict[str, float]) -> str | None:
    """``"eval_"`` (or ``"test_"``, ...) for the metrics of an evaluation, ``None`` for training logs."""
    for key in logs:
        if key.endswith("_runtime") and key != "train_runtime":
            return key[: -len("runtime")]
    return None


def _realised_noise(dataset: Any, clean_column: str) -> Any:
    """`NoiseReport` of a dataset with clean and noisy label columns, or ``None`` without clean labels."""
    if not hasattr(dataset, "column_names"):  # a torch wrapper of a datasets split, like DeviceImageDataset
        dataset = getattr(dataset, "dataset", None)
    names = getattr(dataset, "column_names", None)
    if not names or clean_column not in names:
        return None
    label_column = next((c for c in ("labels", "label") if c in names), None)
    if label_column is None:
        return None
    from jal_trainer.noise import noise_report_from_labels

    return noise_report_from_labels(dataset[clean_column], dataset[label_column])


__all__ = ["JALTrainer", "LossFunction", "above_minimum", "clamp_logged", "l1_parameters", "logits_of", "make_compute_loss_func", "normalise_loss", "per_sample_loss"]
