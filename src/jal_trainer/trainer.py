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

import copy
import dataclasses
import inspect
import warnings
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.utils import logging

from jal_trainer.config import CLEAN_LABEL_COLUMN, JALConfig
from jal_trainer.hub import ModelCardMixin
from jal_trainer.losses import AMSE_LOSSES

logger = logging.get_logger(__name__)

# The loss plumbing (reduction, logged floor, L1 scope, compute_loss_func) lives in trainer_loss.
from jal_trainer.trainer_loss import (  # noqa: E402  (re-exported: the names users import from here)
    IGNORE_INDEX,
    LossFunction,
    _smoothed_ce,
    above_minimum,
    clamp_logged,
    l1_parameters,
    logits_of,
    make_compute_loss_func,
    normalise_loss,
    per_sample_loss,
)


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
        self._loss_from_args = loss is None  # hyperparameter_search then rebuilds it per trial
        if args.label_smoothing_factor:
            args = copy.copy(args)  # _loss_from turns the Trainer's own smoother off: not in the caller's args
        self.loss_fn = _loss_from(args, loss)
        # Passing a compute_loss_func makes the Trainer count `num_items_in_batch` over the whole
        # optimiser step (all accumulation steps, all processes), even for a plain nn.Module.
        kwargs.setdefault("compute_loss_func", LossFunction(self.loss_fn))
        _check_datasets(model, kwargs.get("train_dataset"), kwargs.get("eval_dataset"))
        super().__init__(model=model, args=args, **kwargs)
        if not self.label_names:
            # A plain nn.Module has no `labels` argument; without this, evaluation would drop labels.
            self.label_names = ["labels"]
        for callback in self.callback_handler.callbacks:
            # callbacks that predict with the trainer (EpochProbabilitiesCallback, ...) get it here
            if hasattr(callback, "trainer") and getattr(callback, "trainer", None) is None:
                callback.trainer = self
        self._forward_params: tuple[frozenset[str], bool] | None = None
        # running (sum active, sum passive, count) per mode ("train", "eval"), reset when logged
        self._part_sums: dict[str, torch.Tensor] = {}
        # the captured step of cuda_graph_step, built at the first full batch (or refused once)
        self._graph: Any = None
        self._graph_refused = False
        self._warn_if_a_not_admissible()

    # ---- loss ----------------------------------------------------------------------------------

    def _hp_search_setup(self, trial: Any) -> None:
        """`hyperparameter_search` sets a trial's values on ``args``; the loss is rebuilt from them.

        Without this, a search over ``a``, ``q``, ``alpha``, ``beta`` or ``loss_type`` would train every
        trial with the loss built in ``__init__``. A ``loss=`` module passed in is left as it is.
        """
        super()._hp_search_setup(trial)
        if trial is not None and self._loss_from_args:
            self.loss_fn = _loss_from(self.args, None)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Robust loss of a micro-batch, normalised by the sample count of the whole optimiser step."""
        loss, parts, outputs = self._loss_parts_outputs(model, inputs, num_items_in_batch)
        self._add_parts(parts, "train" if model.training else "eval")
        if not model.training:
            self._count_predictions(logits_of(outputs).detach(), inputs["labels"])
        if return_outputs:
            return loss, outputs if not isinstance(outputs, torch.Tensor) else {"logits": outputs}
        return loss

    def _loss_parts_outputs(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: torch.Tensor | int | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        """(loss, parts (3,) or None, model outputs): the loss with no side effect, so it can be graphed."""
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
        parts = None
        if passive is not None:
            parts = torch.stack([active.detach().sum(), passive.detach().sum(),
                                 labels.ne(IGNORE_INDEX).sum().float()])
        return loss, parts, outputs

    def training_step(self, model: nn.Module, inputs: dict[str, Any],
                      num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
        """The Trainer's step, or the replay of a captured CUDA graph when ``cuda_graph_step`` is on."""
        if not self.args.cuda_graph_step or num_items_in_batch is None:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        inputs = self._prepare_inputs(inputs)
        with self.compute_loss_context_manager():
            step = self._graphed_step(model, inputs)
            if step is None or not step.accepts(inputs):
                return super().training_step(model, inputs, num_items_in_batch)
            loss, parts = step(inputs, num_items_in_batch)
        self._add_parts(parts, "train")
        return loss

    def _graphed_step(self, model: nn.Module, inputs: dict[str, Any]) -> Any:
        """The captured step (built at the first full batch), or None when this run cannot use one."""
        from jal_trainer.graph_step import GraphedStep, check_labels_once, unsupported_reason

        if self._graph is not None or self._graph_refused:
            return self._graph
        reason = unsupported_reason(self.args, inputs["labels"].device, self.accelerator.num_processes)
        if reason is None:
            reason = _unsupported_inputs(inputs)
        if reason is not None:
            warnings.warn(f"cuda_graph_step is on but this run cannot use it: {reason}. Training eagerly.",
                          stacklevel=3)
            self._graph_refused = True
            return None
        labels = getattr(self.train_dataset, "tensors", {}).get("labels")  # DeviceImageDataset keeps them
        num_labels = getattr(getattr(self.accelerator.unwrap_model(model), "config", None), "num_labels", None)
        if labels is not None and num_labels:
            check_labels_once(labels, num_labels)
        self._graph = GraphedStep(lambda batch, count: self._loss_parts_outputs(model, batch, count)[:2],
                                  model, inputs)
        return self._graph

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
        params = [p.reshape(-1) for p in
                  l1_parameters(self.accelerator.unwrap_model(model), getattr(self.args, "l1_scope", "all"))]
        if not params:
            return None
        # One concatenation, abs and sum: a handful of GPU kernels per step instead of two per
        # parameter tensor forward and backward (on a small CNN these were half of the step's).
        return lam * torch.cat(params).abs().sum()

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

    def _add_parts(self, parts: torch.Tensor | None, mode: str) -> None:
        """Add a micro-batch's (sum active, sum passive, sample count) to the running sums of `mode`."""
        if parts is None:
            return
        self._part_sums[mode] = self._part_sums[mode] + parts if mode in self._part_sums else parts

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


def _unsupported_inputs(inputs: dict[str, Any]) -> str | None:
    """Why a batch cannot be captured (non-tensor values), or None."""
    odd = [k for k, v in inputs.items() if not isinstance(v, torch.Tensor)]
    return f"batch values {odd} are not tensors" if odd else None


def _check_datasets(model: Any, train_dataset: Any, eval_dataset: Any) -> None:
    """The label checks of `jal train` (`jal_trainer.data.checks`), before the Trainer touches the data."""
    from jal_trainer.data.checks import check_trainer_dataset

    num_labels = getattr(getattr(model, "config", None), "num_labels", None)
    for role, dataset in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
        if dataset is not None:
            check_trainer_dataset(dataset, role=role, num_labels=num_labels)


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


def _loss_from(args: JALConfig, loss: nn.Module | None) -> nn.Module:
    """The per-sample loss of ``args`` (or ``loss``); ``label_smoothing_factor`` is honoured in it
    (cross_entropy's label_smoothing) and set to 0 in ``args``, so the Trainer's own smoother stays off."""
    if not args.label_smoothing_factor:
        return loss if loss is not None else args.build_loss(reduction="none")
    smoothed = _smoothed_ce(args.label_smoothing_factor, loss)
    args.label_smoothing_factor = 0.0
    return smoothed


__all__ = ["JALTrainer", "LossFunction", "above_minimum", "clamp_logged", "l1_parameters", "logits_of",
           "make_compute_loss_func", "normalise_loss", "per_sample_loss"]
