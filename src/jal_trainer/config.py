"""`JALConfig`: `TrainingArguments` plus the robust-loss settings.

Every field has a one-line help, so the same class is read from Python, from a YAML recipe
(keys equal field names) and from the command line by `transformers.HfArgumentParser`.

Example:
    >>> from jal_trainer import JALConfig
    >>> args = JALConfig(output_dir="out", loss_type="jal-ce", loss_preset="cifar10")
    >>> args.loss_kwargs()
    {}
    >>> JALConfig(output_dir="out", loss_type="jal-ce", a=20.0).loss_kwargs()
    {'a': 20.0}
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

# Columns that `add_label_noise` and the data loaders add for analysis only. They ride along in
# the batch (the memorisation callback reads them) but must never reach `model.forward`.
CLEAN_LABEL_COLUMN = "clean_label"
DEFAULT_ANALYSIS_COLUMNS = [CLEAN_LABEL_COLUMN, "is_noisy", "index"]

# Loss hyper-parameters that JALConfig forwards to `build_loss` when they are set.
LOSS_PARAM_FIELDS = ("alpha", "beta", "a", "q", "gamma")
# What `l1_weight_decay` covers: see JALConfig.l1_scope.
L1_SCOPES = ("head", "all")


@dataclass
class JALConfig(TrainingArguments):
    """Training arguments for `JALTrainer`: all of `TrainingArguments` plus the loss settings.

    Loss hyper-parameters left at ``None`` take the preset's value (``loss_preset``) or, without
    a preset, the loss's own default. The configuration is validated when it is created: an
    unknown loss or preset, or a parameter out of range, raises ``ValueError`` before any model
    or data is touched.
    """

    output_dir: str | None = field(
        default="jal_output", metadata={"help": "Where checkpoints, the model, metrics and the card are written."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Replace the run already in output_dir "
                          "(jal train refuses a non-empty output_dir otherwise)."},
    )
    loss_type: str = field(
        default="jal-ce",
        metadata={"help": "Loss to optimise: a name of jal_trainer.LOSS_NAMES (jal-ce, jal-fl, ce, nce+rce, ...) or "
                          "auto (chosen on a held-out slice of the noisy labels; see jal_trainer.auto)."},
    )
    loss_preset: str | None = field(
        default=None,
        metadata={"help": "Hyper-parameters for the loss: finetune (AdamW on a pretrained model; jal train's default "
                          "for one) or the paper's CIFAR/SGD values cifar10, cifar100, webvision, clothing1m."},
    )
    alpha: float | None = field(default=None, metadata={"help": "Weight of the active term (NCE, NFL, CE in SCE)."})
    beta: float | None = field(default=None, metadata={"help": "Weight of the passive term (AMSE, RCE, MAE, ...)."})
    a: float | None = field(
        default=None, metadata={"help": "Asymmetry a > 1 of AMSE (JAL) or the a of AGCE/AUL/AEL."}
    )
    q: float | None = field(default=None, metadata={"help": "Exponent q > 0 of GCE, AGCE and AUL."})
    gamma: float | None = field(default=None, metadata={"help": "Focusing gamma >= 0 of focal loss, NFL and JAL-FL."})
    l1_weight_decay: float = field(
        default=0.0,
        metadata={"help": "lambda of the paper's L1 penalty lambda * sum |theta|, added to the loss (JAL: 5e-5)."},
    )
    cuda_graph_step: bool = field(
        default=False,
        metadata={"help": "Capture forward, loss and backward of a training step as one CUDA graph and replay it "
                          "(one GPU, one process, no accumulation): for small models whose steps are bound by "
                          "kernel launches, such as the paper's CIFAR CNN. Same updates as without."},
    )
    l1_scope: str = field(
        default="head",
        metadata={"help": "Parameters the L1 penalty covers: head (default: only those outside a pretrained body, "
                          "model.base_model, so fine-tuning never pulls pretrained weights to 0; every parameter of "
                          "a model without one, such as the paper's CNN) or all (the paper's from-scratch setting)."},
    )
    auto_candidates: list[str] | None = field(
        default=None,
        metadata={"help": "loss_type auto: the losses to try (spaces or commas between them), each a name or "
                          "name@preset, optionally +clean (detect, then retrain: e.g. ce+clean) (default: ce, gce, "
                          "sce, nce+rce, jal-ce, and jal-ce+clean when a recipe fine-tunes a pretrained text "
                          "encoder end to end; CE is always added)."},
    )
    auto_budget: float | None = field(
        default=None,
        metadata={"help": "loss_type auto: total cost in full trainings, the final one included (default "
                          "1 + 0.5 x the number of candidates, a +clean candidate counted twice; must be above 1)."},
    )
    auto_holdout: float = field(
        default=0.1, metadata={"help": "loss_type auto: stratified share of the noisy training rows held out to score."}
    )
    auto_ce_margin: float | None = field(
        default=None,
        metadata={"help": "loss_type auto: the lead, in bootstrap stds of the gap on the slice, CE needs over the best "
                          "other candidate to be kept (default 0: the higher estimate wins, CE on a tie). Negative: "
                          "a robust loss must beat CE by that many stds. See jal_trainer.auto_decide for the "
                          "evidence behind the default."},
    )
    auto_coin_flip_share: float = field(
        default=0.2,
        metadata={"help": "loss_type auto: leave out the rows whose majority-vote label is a coin flip (no weak "
                          "vote, or every class tied, in a weak_labels column) when they are more than this share "
                          "of the training rows (default 0.2; 0: whenever there are any, 1: never). See "
                          "jal_trainer.auto_coinflips for the evidence."},
    )
    auto_rare_classes: str = field(
        default="error",
        metadata={"help": "loss_type auto: a class with fewer than 4 training rows cannot give the slice the 2 rows "
                          "a score needs and keep some to train on. error (default): stop before any training and "
                          "say so. train: train the candidates on all of its rows and choose on the other classes "
                          "(loss_selection.json and the card name the classes left unscored)."},
    )
    auto_backend: str = field(
        default="optuna",
        metadata={"help": "loss_type auto: the search backend, optuna (one process) or ray (Ray Tune, on one machine "
                          "or several; pip install \"jal-trainer[auto-ray]\")."},
    )
    auto_storage: str | None = field(
        default=None,
        metadata={"help": "loss_type auto: folder for the candidates' scratch files and Ray Tune's results (a "
                          "temporary subfolder, removed after the search; default: the system's temporary folder). "
                          "With auto_backend ray on several machines, a folder every machine sees."},
    )
    analysis_columns: list[str] = field(
        default_factory=lambda: list(DEFAULT_ANALYSIS_COLUMNS),
        metadata={"help": "Batch columns kept for analysis (clean labels, noise flags) and never passed to forward."},
    )

    def __post_init__(self) -> None:
        self._bf16_on_cpu()
        super().__post_init__()
        if self.use_cpu or not _has_accelerator():
            # pinned memory only speeds up copies to an accelerator; on a CPU-only run torch warns
            # "'pin_memory' ... no accelerator is found" for every DataLoader the Trainer builds
            self.dataloader_pin_memory = False
        if self.l1_weight_decay < 0:
            raise ValueError(
                f"l1_weight_decay must be >= 0, got {self.l1_weight_decay}. Use 0 to disable the L1 penalty."
            )
        if self.l1_scope not in L1_SCOPES:
            raise ValueError(f"l1_scope must be one of {', '.join(L1_SCOPES)}, got {self.l1_scope!r}.")
        if self.loss_type == "auto":  # candidates, budget and holdout fail now, before any training
            from jal_trainer.auto import check_auto_settings

            check_auto_settings(self)
            return
        # Build the loss once so that a bad name, preset or parameter fails now, not mid-run.
        loss = self.build_loss()
        params = getattr(loss, "hparams", {}) or {}
        if params.get("alpha") == 0 and params.get("beta") == 0:
            raise ValueError(
                f"alpha = beta = 0 makes {self.loss_type} zero for every input, so nothing would be learnt. "
                "Set alpha and/or beta > 0 (or drop them to use the defaults)."
            )
        if self.label_smoothing_factor and self.loss_type != "ce":
            raise ValueError(
                f"label_smoothing_factor={self.label_smoothing_factor} only applies to loss_type='ce' (cross entropy "
                f"with label_smoothing); {self.loss_type} does not use it. Set label_smoothing_factor to 0, or "
                "loss_type to ce."
            )

    def _bf16_on_cpu(self) -> None:
        """Train bf16 on the CPU when it is the only device, instead of `TrainingArguments`' error.

        Without a GPU, `TrainingArguments(bf16=True)` raises "You need to assign use_cpu" although the
        CPU is the only device there is. On CPUs with native bf16 (AVX512-BF16, AMX), bf16 autocast
        fine-tunes all-MiniLM-L6-v2 about 2x faster (README, "Speed"); the losses stay float32. On a
        CPU without them torch emulates bf16 about 14x slower than float32: that gets a warning.
        """
        if not (self.bf16 or self.bf16_full_eval) or self.use_cpu:
            return
        from transformers.utils import is_torch_bf16_available_on_device

        if _has_accelerator():
            return  # an accelerator: TrainingArguments decides
        if not is_torch_bf16_available_on_device("cpu"):
            raise ValueError("bf16 was requested, but there is no GPU and this CPU cannot compute in bf16. "
                             "Set bf16 to false (train in float32).")
        from jal_trainer import run_summary

        if not run_summary.cpu_has_native_bf16():
            # torch runs bf16 here, but emulated: measured on a 2-core AVX2 EPYC, one all-MiniLM-L6-v2
            # training step (batch 32 x 32 tokens) took 19.6 s in bf16 against 1.36 s in float32
            warnings.warn("bf16 was requested on a CPU without native bf16 (no AVX512-BF16 or AMX): torch emulates "
                          "it here, and fine-tuning runs about 14x slower than in float32. Set bf16 to false "
                          "(--bf16 false) unless you need bf16 numerics.", UserWarning, stacklevel=3)
        self.use_cpu = True

    def loss_kwargs(self) -> dict[str, float]:
        """The loss hyper-parameters set explicitly (not ``None``), as keyword arguments of `build_loss`."""
        return {name: getattr(self, name) for name in LOSS_PARAM_FIELDS if getattr(self, name) is not None}

    def build_loss(self, reduction: str = "none") -> Any:
        """Build the configured loss module (per-sample by default, as `JALTrainer` uses it)."""
        from jal_trainer.losses import build_loss

        if self.loss_type == "auto":
            raise ValueError("loss_type='auto' is not a loss: choose one first with jal_trainer.auto.select_loss "
                             "(`jal train` does it) and train with selection.apply(args).")
        return build_loss(self.loss_type, preset=self.loss_preset, reduction=reduction, **self.loss_kwargs())


def _has_accelerator() -> bool:
    """Whether torch sees a device other than the CPU (CUDA, MPS, XPU, ... or an XLA device)."""
    import torch
    from transformers.utils import is_torch_xla_available

    if hasattr(torch, "accelerator"):  # torch >= 2.6: one check for every backend
        found = torch.accelerator.is_available()
    else:
        found = torch.cuda.is_available() or torch.backends.mps.is_available()
    return bool(found) or is_torch_xla_available()
