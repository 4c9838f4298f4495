"""Model cards and Hub uploads of robust models: ``jal card`` and ``jal push``.

A card records what a model trained on noisy labels needs to be judged: the noise (model, rate or
real-noise source, the realised rate), the loss and its hyper-parameters, the Theorem 4.1 check of
AMSE's ``a``, and the clean test accuracy (with the accuracy on the noisy training labels) as
``model-index`` entries that the Hub reads.

Three layers, one per concept:

* `JALCardData`: the card's content, built from a finished run folder (`JALCardData.from_run`)
  or from a live trainer (`JALCardData.from_trainer`), rendered with the Jinja template shipped in
  ``jal_trainer/templates/model_card.md.j2`` into a `huggingface_hub.ModelCard`.
* `ModelCardMixin`: gives `JALTrainer` a ``create_model_card`` that writes this card (building on
  what `transformers.Trainer` already gathers: hyper-parameters, per-epoch table, base model), and a
  ``push_to_hub`` that checks Hub access before it saves or uploads anything.
* `render_card` / `push_run`: the ``jal card`` and ``jal push`` commands on a run folder.

Vision models of `jal_trainer.models` are registered with the transformers Auto classes when that
module is imported: loading one back needs ``pip install jal-trainer`` and ``import
jal_trainer.models`` (no modelling code is uploaded, so no ``trust_remote_code``).

Example:
    >>> from jal_trainer.hub import JALCardData
    >>> card = JALCardData.from_run("runs/cifar10-sym-0.8").to_model_card()  # doctest: +SKIP
    >>> card.data.eval_results[0].metric_value  # doctest: +SKIP
    0.6543

    $ jal card runs/cifar10-sym-0.8 --out model_cards/cifar10-sym-0.8-jal-ce.md
    $ jal push runs/cifar10-sym-0.8 --repo-id me/cnn8-cifar10-sym80-jal-ce
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, get_token
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "model_card.md.j2"

PAPER_URL = "https://arxiv.org/abs/2507.17692"
PAPER_BIBTEX = """@inproceedings{wang2025jal,
  title         = {Joint Asymmetric Loss for Learning with Noisy Labels},
  author        = {Wang, Jialiang and Liu, Xianming and Zhou, Xiong and Hu, Gangfeng and Zhai, Deming and Jiang, Junjun and Ji, Xiangyang},
  booktitle     = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year          = {2025},
  eprint        = {2507.17692},
  archivePrefix = {arXiv},
  primaryClass  = {cs.LG},
  url           = {https://arxiv.org/abs/2507.17692}
}"""

BASE_TAGS = ("noisy-labels", "jal-trainer", "robust-loss")

# Local copies of Hub models (the offline machines carry them under ${shared}/models): the card
# records the Hub id, which is what a reader can fetch.
KNOWN_BASE_MODELS = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}

# recipe `dataset` -> (pretty name, Hub dataset id with the same splits, or None)
DATASETS: dict[str, tuple[str, str | None]] = {
    "digits": ("scikit-learn digits", None),
    "cifar10": ("CIFAR-10", "uoft-cs/cifar10"),
    "cifar10n": ("CIFAR-10N", "uoft-cs/cifar10"),
    "sst2": ("SST-2 (sentences)", "SetFit/sst2"),
    "trec": ("TREC-6", "CogComp/trec"),
    "banking77": ("Banking77", "PolyAI/banking77"),
    "wrench-youtube": ("WRENCH YouTube", None),
    "wrench-sms": ("WRENCH SMS", None),
    "wrench-trec": ("WRENCH TREC", None),
}

# loss name -> how the card spells it out (the rest are shown by name)
LOSS_FORMULAS = {
    "jal-ce": "JAL-CE = alpha * NCE + beta * AMSE",
    "jal-fl": "JAL-FL = alpha * NFL + beta * AMSE",
    "amse": "AMSE = (1/K) * sum_k (p_k - a [k = y])^2",
    "ce": "cross entropy",
    "anl-ce": "ANL-CE = alpha * NCE + beta * NNCE",
    "anl-fl": "ANL-FL = alpha * NFL + beta * NNFL",
    "sce": "SCE = alpha * CE + beta * RCE",
}
AMSE_LOSSES = ("amse", "jal-ce", "jal-fl")

# Run-folder files that are never uploaded: checkpoints, TensorBoard logs, the pickled
# TrainingArguments, and what `push_run` regenerates (README.md, learning_curve.png).
PUSH_IGNORE = ["checkpoint-*", "runs/*", "_*", ".*", "training_args.bin", "README.md", "learning_curve.png"]
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
LEARNING_CURVE = "learning_curve.png"
MEMORISATION_PLOT = "memorisation.png"
MAX_EPOCH_ROWS = 20

# Recipe fields shown as training hyper-parameters, in this order.
HYPERPARAMETER_FIELDS = (
    "learning_rate", "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
    "num_train_epochs", "max_steps", "optim", "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm",
    "seed", "train_subset", "test_subset", "augment", "freeze_encoder", "max_length",
)  # fmt: skip


class HubUnavailableError(RuntimeError):
    """The Hub cannot be used now (offline mode, no token, no network or a rejected token)."""


# ---- reading a run folder -------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-run the step that writes it or delete it.") from err


def _read_recipe(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "recipe.yaml"
    if not path.is_file():
        raise ValueError(
            f"{run_dir} has no recipe.yaml, so it is not a finished `jal train` run. Pass the output_dir of a "
            "`jal train` run, or write the card from the trainer with `JALTrainer.create_model_card()`."
        )
    recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(recipe, dict):
        raise ValueError(f"{path} must be a mapping of field names to values; re-run `jal train` to rewrite it.")
    return recipe


def _number(value: Any) -> float | None:
    """A finite float, or None (missing, null, NaN or not a number)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


#: metrics.json key of the accuracy on the noisy training labels (optional).
NOISY_ACCURACY_KEY = "train_noisy_label_accuracy"


def memorisation_rows(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-epoch rows of ``memorisation.json`` (`MemorisationCallback`) and the file's other fields."""
    data = _read_json(run_dir / "memorisation.json")
    if isinstance(data, list):
        return data, {}
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        return data["rows"], {k: v for k, v in data.items() if k != "rows"}
    return [], {}


def noisy_label_accuracy(row: Mapping[str, Any], num_samples: Any, num_wrong: Any) -> float | None:
    """Accuracy on the given (noisy) training labels from a memorisation row.

    A sample is predicted as its given label when its label is wrong and memorised
    (``noisy_memorised``) or right and fitted (``clean_fit``):
    ``(w * noisy_memorised + (n - w) * clean_fit) / n``.

    Example:
        >>> noisy_label_accuracy({"noisy_memorised": 0.5, "clean_fit": 1.0}, 10, 4)
        0.8
    """
    n, w = _number(num_samples), _number(num_wrong)
    if not n or w is None:
        return None
    memorised, fit = _number(row.get("noisy_memorised")), _number(row.get("clean_fit"))
    if (w and memorised is None) or (n - w and fit is None):
        return None
    return (w * (memorised or 0.0) + (n - w) * (fit or 0.0)) / n


# ---- what the card says about data, model and noise ---------------------------------------------


def base_model_id(model: str | None) -> str | None:
    """The Hub id of the pretrained model a run started from, or None (trained from scratch).

    A local copy of a known Hub model maps to its Hub id; another local path has no Hub id; any
    other name is taken as a Hub id.

    Example:
        >>> base_model_id("${shared}/models/all-MiniLM-L6-v2")
        'sentence-transformers/all-MiniLM-L6-v2'
        >>> base_model_id("cnn8") is None
        True
    """
    from jal_trainer.arguments import VISION_MODELS
    from jal_trainer.paths import resolve_path

    if not model or model in VISION_MODELS:
        return None
    name = Path(model.rstrip("/")).name
    if name in KNOWN_BASE_MODELS:
        return KNOWN_BASE_MODELS[name]
    if resolve_path(model).exists() or model.startswith((".", "/", "~", "$")):
        return None
    return model


def dataset_names(dataset: str) -> tuple[str, str | None]:
    """(pretty name, Hub dataset id or None) of a recipe's ``dataset``; a Hub id stands for itself."""
    if dataset in DATASETS:
        return DATASETS[dataset]
    return dataset, (dataset if "/" in dataset else None)


def _percent(value: float | None, digits: int = 2) -> str:
    return "not recorded" if value is None else f"{100 * value:.{digits}f}%"


def _format_param(value: Any) -> str:
    number = _number(value)
    return f"{number:g}" if number is not None else str(value)


@dataclass(frozen=True)
class ACheck:
    """Theorem 4.1 check of AMSE's ``a`` against the training set's noise.

    ``status`` is one of ``ok`` (a >= bound: AMSE is noise tolerant for this noise),
    ``too-small``, ``no-admissible-a`` (a class is not clean-label dominant), ``unknown`` (no
    noise report) or ``not-applicable`` (the loss has no AMSE term).
    """

    status: str
    a: float | None = None
    min_a: float | None = None
    source: str | None = None
    binding_class: int | None = None

    @property
    def text(self) -> str:
        """One sentence for the card."""
        where = f"the {self.source} transition matrix" if self.source else "the training noise"
        if self.status == "not-applicable":
            return "not applicable (the loss has no AMSE term)."
        if self.status == "unknown":
            return "not available (no noise report with a transition matrix in the run)."
        if self.status == "no-admissible-a":
            return (
                f"no admissible a exists for {where}: class {self.binding_class} is not clean-label dominant, "
                f"so AMSE (a = {self.a:g}) has no noise-tolerance guarantee."
            )
        relation = ">=" if self.status == "ok" else "<"
        verdict = (
            "AMSE is asymmetric, hence noise tolerant, for this noise."
            if self.status == "ok"
            else f"AMSE is not guaranteed noise tolerant; a >= {self.min_a:.4g} would be."
        )
        return f"a = {self.a:g} {relation} {self.min_a:.4g}, the smallest admissible a for {where}: {verdict}"


def check_a(loss_type: str, params: Mapping[str, Any], report: Mapping[str, Any] | None) -> ACheck:
    """Compare the loss's ``a`` with the bound of Theorem 4.1 in a noise report (`NoiseReport.to_dict`).

    Uses the report's ``min_a`` when it has one, else computes the bound from ``realised_T``.

    Example:
        >>> check_a("jal-ce", {"a": 30.0}, {"min_a": 9.0, "min_a_source": "requested"}).status
        'ok'
    """
    a = _number(params.get("a"))
    if loss_type not in AMSE_LOSSES or a is None:
        return ACheck("not-applicable")
    report = report or {}
    source = report.get("min_a_source")
    binding = report.get("binding_class")
    if "min_a" in report:
        min_a = _number(report["min_a"])
        if min_a is None:
            return ACheck("no-admissible-a", a=a, source=source, binding_class=binding)
    elif report.get("realised_T") is not None:
        min_a, source = _bound_from_matrix(report["realised_T"]), "realised"
        if min_a is None:
            return ACheck("no-admissible-a", a=a, source=source)
    else:
        return ACheck("unknown", a=a)
    return ACheck("ok" if a >= min_a else "too-small", a=a, min_a=min_a, source=source, binding_class=binding)


def _bound_from_matrix(matrix: Any) -> float | None:
    import numpy as np

    from jal_trainer.noise import check_a as theorem_check

    T = np.asarray([[np.nan if v is None else v for v in row] for row in matrix], dtype=np.float64)
    absent = np.isnan(T).any(axis=1)  # a class absent from the training set constrains nothing:
    T[absent] = np.eye(len(T))[absent]  # give it a clean row, whose bound is 1
    bound = theorem_check(1.0, T)[1]
    return bound if math.isfinite(bound) else None


# ---- card data ------------------------------------------------------------------------------------


@dataclass
class JALCardData:
    """Everything a jal-trainer model card says, independent of how it is rendered.

    Build it with `from_run` (a finished ``jal train`` folder) or `from_trainer` (a live
    trainer), then `to_model_card`. Rates and accuracies are fractions in [0, 1].
    """

    model_name: str
    dataset: str
    loss_type: str
    task_type: str = "text-classification"
    model: str | None = None
    base_model: str | None = None
    loss_params: dict[str, float] = field(default_factory=dict)
    loss_preset: str | None = None
    l1_weight_decay: float = 0.0
    noise_type: str = "none"
    noise_rate: float | None = None
    noise_column: str | None = None
    noise_seed: int | None = None
    noise_report: dict[str, Any] = field(default_factory=dict)
    test_accuracy: float | None = None
    noisy_label_accuracy: float | None = None
    memorisation: float | None = None
    wrong_labels_corrected: float | None = None
    memorisation_rows: list[dict[str, Any]] = field(default_factory=list)
    log_history: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    learning_curve: str | None = None
    memorisation_plot: str | None = None
    repo_id: str | None = None
    license: str | None = None
    language: list[str] | None = None
    extra_tags: list[str] = field(default_factory=list)
    dataset_config: str | None = None

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], **overrides: Any) -> JALCardData:
        """Read a finished ``jal train`` folder: recipe.yaml, noise_report.json, metrics.json, ...

        Args:
            run_dir: the run's ``output_dir``.
            **overrides: fields to set instead of what the run says (``model_name``, ``license``,
                ``repo_id``, ``extra_tags``, ...).

        Raises:
            ValueError: the folder is missing or has no recipe.yaml.
        """
        from jal_trainer.arguments import VISION_MODELS

        run = Path(run_dir)
        if not run.is_dir():
            raise ValueError(f"Run folder {os.fspath(run)!r} does not exist; pass the output_dir of a `jal train` run.")
        recipe = _read_recipe(run)
        metrics = _read_json(run / "metrics.json") or {}
        rows, memorisation = memorisation_rows(run)
        last = rows[-1] if rows else {}
        noisy_accuracy = _number(metrics.get(NOISY_ACCURACY_KEY))
        if noisy_accuracy is None:
            noisy_accuracy = noisy_label_accuracy(last, memorisation.get("num_samples"),
                                                  memorisation.get("num_wrong_labels"))  # fmt: skip
        state = _read_json(run / "trainer_state.json") or {}
        model = recipe.get("model")
        loss_type = str(recipe.get("loss_type") or "jal-ce")
        values: dict[str, Any] = {
            "model_name": run.resolve().name,
            "dataset": str(recipe.get("dataset") or "unknown"),
            "loss_type": loss_type,
            "task_type": _task_type(model in VISION_MODELS, run),
            "model": model,
            "base_model": base_model_id(model),
            "loss_params": resolve_loss_params(loss_type, recipe.get("loss_preset"), recipe),
            "loss_preset": recipe.get("loss_preset"),
            "l1_weight_decay": _number(recipe.get("l1_weight_decay")) or 0.0,
            "noise_type": str(recipe.get("noise_type") or "none"),
            "noise_rate": _number(recipe.get("noise_rate")),
            "noise_column": recipe.get("noise_column"),
            "noise_seed": recipe.get("noise_seed"),
            "noise_report": _read_json(run / "noise_report.json") or {},
            "test_accuracy": _number(metrics.get("test_accuracy")),
            "noisy_label_accuracy": noisy_accuracy,
            "memorisation": _number(last.get("noisy_memorised")),
            "wrong_labels_corrected": _number(last.get("noisy_true")),
            "memorisation_rows": rows,
            "log_history": list(state.get("log_history") or []),
            "hyperparameters": {k: recipe[k] for k in HYPERPARAMETER_FIELDS if recipe.get(k) not in (None, -1)},
            "versions": _read_json(run / "versions.json") or {},
            "memorisation_plot": MEMORISATION_PLOT if (run / MEMORISATION_PLOT).is_file() else None,
        }
        values.update(_check_fields(overrides))
        return cls(**values)

    @classmethod
    def from_trainer(cls, trainer: Any, **overrides: Any) -> JALCardData:
        """Gather the card from a live trainer, on top of what `TrainingSummary.from_trainer` infers.

        When the trainer's ``output_dir`` already holds a finished run (recipe.yaml), that run
        is read first and the live trainer adds its log history and hyper-parameters. Otherwise the
        noise is measured from the training set's ``clean_label`` column (the noise model and rate
        can be given as ``noise_type=``, ``noise_rate=``, ``noise_seed=``, ``noise_column=``), and
        the clean test accuracy is the last ``test_accuracy`` (else ``eval_accuracy``) logged.

        Args:
            trainer: a `JALTrainer` (or any `transformers.Trainer`).
            **overrides: `JALCardData` fields, plus the `Trainer.create_model_card` arguments
                ``language``, ``license``, ``tags``, ``model_name``, ``finetuned_from``, ``tasks``,
                ``dataset_tags``, ``dataset``, ``dataset_args``.
        """
        from transformers.modelcard import TrainingSummary, extract_hyperparameters_from_trainer

        summary_keys = ("language", "license", "tags", "model_name", "finetuned_from", "tasks", "dataset_tags",
                        "dataset", "dataset_args")  # fmt: skip
        summary_args = {k: overrides.pop(k) for k in summary_keys if k in overrides}
        if isinstance(summary_args.get("tags"), str):
            summary_args["tags"] = [summary_args["tags"]]
        if getattr(trainer.model, "config", None) is None:  # a plain nn.Module: the summary needs a config
            summary = TrainingSummary(model_name=summary_args.get("model_name") or Path(trainer.args.output_dir).name,
                                      **{k: v for k, v in summary_args.items() if k != "model_name"})  # fmt: skip
        else:
            summary = TrainingSummary.from_trainer(trainer, **summary_args)
        overrides = _check_fields(overrides)
        live = {
            "log_history": list(trainer.state.log_history),
            "hyperparameters": {**extract_hyperparameters_from_trainer(trainer), **_loss_hyperparameters(trainer)},
            "model_name": summary.model_name,
            "license": summary.license,
            "language": _listify(summary.language) or None,
            "extra_tags": [t for t in _listify(summary.tags) if t not in BASE_TAGS],
        }
        if summary.finetuned_from:
            live["base_model"] = base_model_id(summary.finetuned_from)
        if summary_args.get("tasks"):
            live["task_type"] = _listify(summary_args["tasks"])[0]
        if summary_args.get("dataset") or summary_args.get("dataset_tags"):
            live["dataset"] = _listify(summary_args.get("dataset_tags") or summary_args["dataset"])[0]
        if summary_args.get("dataset_args"):
            live["dataset_config"] = _listify(summary_args["dataset_args"])[0]

        live = {k: v for k, v in live.items() if v is not None}
        run = Path(trainer.args.output_dir)
        if (run / "recipe.yaml").is_file():
            return replace(cls.from_run(run), **{**live, **overrides})
        return cls(**{**_live_fields(trainer, summary), **live, **overrides})

    # -- derived values -------------------------------------------------------------------------

    @property
    def dataset_pretty(self) -> str:
        return dataset_names(self.dataset)[0]

    @property
    def dataset_id(self) -> str | None:
        return dataset_names(self.dataset)[1]

    @property
    def realised_noise_rate(self) -> float | None:
        return _number(self.noise_report.get("noise_rate"))

    @property
    def tags(self) -> list[str]:
        """noisy-labels, jal-trainer, robust-loss, the loss name, the noise model, then extra tags."""
        tags = [*BASE_TAGS, self.loss_type]
        if self.noise_type not in ("none", "unspecified"):
            tags.append(f"{self.noise_type}-noise")
        return list(dict.fromkeys([*tags, *self.extra_tags]))

    def dataset_args(self) -> dict[str, Any]:
        """The training-label noise, as the model-index ``dataset.args`` of every result."""
        args: dict[str, Any] = {"noise_type": self.noise_type}
        if self.noise_type in ("column", "majority-vote"):
            args["noise_column"] = self.noise_column
        elif self.noise_type not in ("none", "unspecified"):
            args["noise_rate"] = self.noise_rate
            args["noise_seed"] = self.noise_seed
        realised = self.realised_noise_rate
        if realised is not None:
            args["realised_noise_rate"] = round(realised, 4)
        return {k: v for k, v in args.items() if v is not None}

    def noise_phrase(self) -> str:
        """The training-label noise in words, e.g. ``symmetric noise at rate 0.6``."""
        realised = self.realised_noise_rate
        tail = f" (realised {_percent(realised)} wrong labels)" if realised is not None else ""
        if self.noise_type == "none":
            return "no added label noise" + tail
        if self.noise_type == "column":
            return f"real label noise from the `{self.noise_column}` labels" + tail
        if self.noise_type == "majority-vote":
            return f"real label noise: the majority vote of the weak labels `{self.noise_column}`" + tail
        if self.noise_type == "unspecified":
            return "label noise of an unrecorded model" + tail
        rate = "" if self.noise_rate is None else f" at rate {self.noise_rate:g}"
        return f"{self.noise_type} noise{rate}" + tail

    def noise_short(self) -> str:
        """A few words for the model-index dataset name, e.g. ``symmetric noise 0.6``."""
        if self.noise_type == "none":
            return "clean labels"
        if self.noise_type in ("column", "majority-vote"):
            how = "majority vote of" if self.noise_type == "majority-vote" else "labels"
            return f"real noise ({how} {self.noise_column})"
        if self.noise_type == "unspecified" or self.noise_rate is None:
            return "noisy labels"
        return f"{self.noise_type} noise {self.noise_rate:g}"

    def a_check(self) -> ACheck:
        return check_a(self.loss_type, self.loss_params, self.noise_report)

    def eval_results(self) -> list[EvalResult]:
        """Model-index entries: clean test accuracy, then accuracy on the noisy training labels."""
        common = {
            "task_type": self.task_type,
            "dataset_type": self.dataset_id or self.dataset,
            "dataset_name": f"{self.dataset_pretty}, {self.noise_short()}",
            "dataset_config": self.dataset_config,
            "dataset_args": self.dataset_args(),
            "metric_type": "accuracy",
        }
        results = []
        if self.test_accuracy is not None:
            results.append(EvalResult(**common, dataset_split="test", metric_value=round(self.test_accuracy, 4),
                                      metric_name="Clean test accuracy"))  # fmt: skip
        if self.noisy_label_accuracy is not None:
            results.append(EvalResult(**common, dataset_split="train", metric_value=round(self.noisy_label_accuracy, 4),
                                      metric_name="Accuracy on the noisy training labels"))  # fmt: skip
        return results

    def card_data(self) -> ModelCardData:
        """The card's YAML metadata."""
        results = self.eval_results()
        return ModelCardData(
            language=self.language,
            license=self.license,
            library_name="transformers",
            pipeline_tag=self.task_type,
            tags=self.tags,
            base_model=self.base_model,
            datasets=[self.dataset_id] if self.dataset_id else None,
            metrics=["accuracy"],
            model_name=self.model_name if results else None,
            eval_results=results or None,
        )

    # -- rendering ------------------------------------------------------------------------------

    def template_context(self) -> dict[str, Any]:
        """Values the Jinja template reads."""
        epoch_table, epoch_note = self._epoch_table()
        return {
            "model_name": self.model_name,
            "base_model": self.base_model,
            "task_phrase": "text classifier" if self.task_type == "text-classification" else "image classifier",
            "dataset_pretty": self.dataset_pretty,
            "noise_phrase": self.noise_phrase(),
            "loss_display": self.loss_type.upper() if self.loss_type.startswith("jal") else self.loss_type,
            "loss_is_jal": self.loss_type in AMSE_LOSSES,
            "results_rows": self._results_rows(),
            "learning_curve": self.learning_curve,
            "memorisation_plot": self.memorisation_plot,
            "epoch_table": epoch_table,
            "memorisation_table": self._memorisation_table(),
            "epoch_note": epoch_note,
            "noise_rows": self._noise_rows(),
            "transition_table": self._transition_table(),
            "loss_rows": self._loss_rows(),
            "a_check": self.a_check().text,
            "usage": self._usage(),
            "hyperparameters": self.hyperparameters,
            "versions": self.versions,
            "citation": PAPER_BIBTEX,
            "paper_url": PAPER_URL,
        }

    def to_model_card(self, template_path: str | os.PathLike[str] | None = None) -> ModelCard:
        """Render the card with the package's template (or ``template_path``)."""
        return ModelCard.from_template(
            self.card_data(), template_path=str(template_path or TEMPLATE_PATH), **self.template_context()
        )

    def _results_rows(self) -> list[tuple[str, str]]:
        rows = [("Clean test accuracy", _percent(self.test_accuracy))]
        if self.noisy_label_accuracy is not None:
            rows.append(("Accuracy on the noisy training labels", _percent(self.noisy_label_accuracy)))
        if self.memorisation is not None:
            rows.append(("Wrong training labels memorised (predicted as the wrong label)", _percent(self.memorisation)))
        if self.wrong_labels_corrected is not None:
            rows.append(("Wrong training labels corrected (predicted as the true class)",
                         _percent(self.wrong_labels_corrected)))  # fmt: skip
        rows.append(("Realised training noise rate", _percent(self.realised_noise_rate)))
        return rows

    def _noise_rows(self) -> list[tuple[str, str]]:
        report = self.noise_report
        rows = [("Noise model", f"`{self.noise_type}`")]
        if self.noise_type in ("column", "majority-vote"):
            rows.append(("Real-noise source", f"`{self.noise_column}` labels of {self.dataset_pretty}"))
        elif self.noise_type not in ("none", "unspecified"):
            rows.append(("Requested rate", _format_param(self.noise_rate)))
        if self.noise_seed is not None and self.noise_type != "none":
            rows.append(("Noise seed", str(self.noise_seed)))
        rows.append(("Realised noise rate (training labels that differ from the clean ones)",
                     _percent(self.realised_noise_rate)))  # fmt: skip
        per_class = [v for v in (report.get("per_class_rate") or []) if _number(v) is not None]
        if per_class:
            rows.append(("Per-class noise rate", f"{_percent(min(per_class), 1)} to {_percent(max(per_class), 1)}"))
        if report.get("num_samples") is not None:
            rows.append(("Training samples", f"{int(report['num_samples']):,}"))
        return rows

    def _transition_table(self) -> str | None:
        matrix = self.noise_report.get("realised_T")
        if not matrix or len(matrix) > 10:  # larger matrices do not fit a card
            return None
        header = "| clean \\ noisy | " + " | ".join(str(j) for j in range(len(matrix))) + " |"
        rule = "|:--|" + "--:|" * len(matrix)
        lines = [
            f"| {i} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in row) + " |"
            for i, row in enumerate(matrix)
        ]
        return "\n".join([header, rule, *lines])

    def _loss_rows(self) -> list[tuple[str, str]]:
        formula = LOSS_FORMULAS.get(self.loss_type)
        rows = [("Loss", f"`{self.loss_type}`" + (f" ({formula})" if formula else ""))]
        if self.loss_params:
            params = ", ".join(f"{k} = {_format_param(v)}" for k, v in self.loss_params.items())
            rows.append(("Hyper-parameters", params))
        if self.loss_preset:
            rows.append(("Preset", f"`{self.loss_preset}` (the paper's values for that data set)"))
        if self.l1_weight_decay:
            rows.append(("L1 weight decay (lambda * sum abs(theta) added to the loss)", f"{self.l1_weight_decay:g}"))
        return rows

    def _epoch_table(self) -> tuple[str | None, str | None]:
        from transformers.modelcard import make_markdown_table, parse_log_history

        if not self.log_history:
            return None, None
        _, lines, _ = parse_log_history(self.log_history)
        if not lines:
            return None, None
        lines, note = _thin(lines)
        return make_markdown_table(lines).rstrip("\n"), note

    def _memorisation_table(self) -> str | None:
        if not self.memorisation_rows:
            return None
        from jal_trainer.report import memorisation_table

        return memorisation_table(_thin(self.memorisation_rows)[0])

    def _usage(self) -> str:
        repo = self.repo_id or f"<user>/{self.model_name}"
        if self.task_type == "image-classification":
            return (
                "# pip install jal-trainer  (the model classes are registered when jal_trainer.models is imported)\n"
                "import jal_trainer.models  # noqa: F401\n"
                "from transformers import AutoModelForImageClassification\n\n"
                f'model = AutoModelForImageClassification.from_pretrained("{repo}")\n'
                "logits = model(pixel_values=images).logits  # images: (N, C, H, W), normalised as in training"
            )
        return (
            "from transformers import pipeline\n\n"
            f'classifier = pipeline("text-classification", model="{repo}")\n'
            'classifier("an example sentence")'
        )


def _thin(rows: list[Any]) -> tuple[list[Any], str | None]:
    """At most about `MAX_EPOCH_ROWS` evenly spaced rows, the last always kept, and a note saying so."""
    if len(rows) <= MAX_EPOCH_ROWS:
        return rows, None
    step = math.ceil(len(rows) / MAX_EPOCH_ROWS)
    kept = rows[step - 1 :: step]
    if kept[-1] is not rows[-1]:
        kept.append(rows[-1])
    return kept, f"every {step}th of {len(rows)} rows and the last"


def _check_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    from dataclasses import fields

    known = {f.name for f in fields(JALCardData)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Unknown model-card field(s) {unknown}. Valid fields: {', '.join(sorted(known))}.")
    return dict(values)


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _task_type(is_vision: bool, run: Path) -> str:
    if is_vision:
        return "image-classification"
    config = _read_json(run / "config.json") or {}
    if any("ImageClassification" in a for a in config.get("architectures") or []):
        return "image-classification"
    return "text-classification"


def resolve_loss_params(loss_type: str, preset: str | None, values: Mapping[str, Any]) -> dict[str, float]:
    """The loss's effective hyper-parameters: preset, defaults and explicit values resolved by `build_loss`.

    Falls back to the explicitly set ones (alpha, beta, a, q, gamma) if the loss cannot be built.
    """
    from jal_trainer.config import LOSS_PARAM_FIELDS

    explicit = {k: float(values[k]) for k in LOSS_PARAM_FIELDS if _number(values.get(k)) is not None}
    try:
        from jal_trainer.losses import build_loss

        return dict(build_loss(loss_type, preset=preset, **explicit).hparams)
    except (ImportError, ValueError, TypeError, AttributeError):
        return explicit


def _loss_hyperparameters(trainer: Any) -> dict[str, Any]:
    args = trainer.args
    return {k: getattr(args, k) for k in ("loss_type", "loss_preset", "l1_weight_decay") if getattr(args, k, None)}


def _live_fields(trainer: Any, summary: Any) -> dict[str, Any]:
    """Card fields read from a trainer that has no run folder yet."""
    args = trainer.args
    loss_fn = getattr(trainer, "loss_fn", None)
    loss_type = getattr(loss_fn, "name", None) or getattr(args, "loss_type", "ce")
    params = dict(getattr(loss_fn, "hparams", {}) or {})
    is_vision = getattr(getattr(trainer, "model", None), "main_input_name", "") == "pixel_values"
    report = _noise_report_of(trainer.train_dataset, (getattr(args, "analysis_columns", None) or ["clean_label"])[0])
    rate = _number(report.get("noise_rate")) if report else None
    tasks = _listify(summary.tasks)
    name_or_path = getattr(getattr(trainer.model, "config", None), "_name_or_path", None) or None
    return {
        "model_name": summary.model_name,
        "model": name_or_path,
        "base_model": base_model_id(name_or_path),
        "dataset": _listify(summary.dataset)[0] if summary.dataset else _dataset_name(trainer.train_dataset),
        "loss_type": loss_type,
        "task_type": "image-classification" if is_vision else (tasks[0] if tasks else "text-classification"),
        "loss_params": params,
        "loss_preset": getattr(args, "loss_preset", None),
        "l1_weight_decay": getattr(args, "l1_weight_decay", 0.0) or 0.0,
        "noise_type": "none" if rate == 0 else "unspecified",
        "noise_report": report or {},
        "test_accuracy": _last_logged(trainer.state.log_history, ("test_accuracy", "eval_accuracy")),
        "versions": _framework_versions(),
    }


def _noise_report_of(dataset: Any, clean_column: str) -> dict[str, Any] | None:
    names = getattr(dataset, "column_names", None) or []
    label = "labels" if "labels" in names else "label" if "label" in names else None
    if clean_column not in names or label is None:
        return None
    from jal_trainer.noise import noise_report_from_labels

    return noise_report_from_labels(dataset[clean_column], dataset[label]).to_dict()


def _dataset_name(dataset: Any) -> str:
    info = getattr(dataset, "info", None)
    return getattr(info, "dataset_name", None) or getattr(dataset, "builder_name", None) or "unknown"


def _last_logged(log_history: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> float | None:
    for key in keys:
        for entry in reversed(log_history):
            if _number(entry.get(key)) is not None:
                return float(entry[key])
    return None


def _framework_versions() -> dict[str, str]:
    import torch
    import transformers

    import jal_trainer

    return {"jal_trainer": jal_trainer.__version__, "transformers": transformers.__version__, "torch": torch.__version__}


# ---- learning curve -------------------------------------------------------------------------------


def write_learning_curve(log_history: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> bool:
    """Write ``jal report``'s learning-curve plot (loss and clean test accuracy per epoch) to ``path``.

    Returns False, writing nothing, when the log history has nothing to plot.
    """
    from jal_trainer.report import plot_learning_curve

    return plot_learning_curve(log_history, path, title=title or None) is not None


def learning_curve_png(log_history: Sequence[Mapping[str, Any]], title: str = "") -> bytes | None:
    """The learning-curve plot as PNG bytes (for an upload that writes nothing locally), or None."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / LEARNING_CURVE
        return path.read_bytes() if write_learning_curve(log_history, path, title) else None


# ---- jal card -------------------------------------------------------------------------------------


def render_card(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, **overrides: Any
) -> Path:
    """Write the model card of a finished run; also write its learning curve into the run folder.

    Args:
        run_dir: the run's ``output_dir``.
        out: where to write the card (default ``<run_dir>/README.md``). A card written elsewhere
            (``model_cards/NAME.md``) gets a copy of the plot beside it, ``NAME.png``.
        **overrides: `JALCardData` fields (``model_name``, ``repo_id``, ``license``, ...).

    Returns:
        The card's path.
    """
    run = Path(run_dir)
    data = JALCardData.from_run(run, **overrides)
    target = Path(out) if out is not None else run / "README.md"
    plotted = write_learning_curve(data.log_history, run / LEARNING_CURVE, data.model_name)
    data.learning_curve = LEARNING_CURVE if plotted else None
    if target.resolve().parent != run.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        data.learning_curve = _copy_beside(run / LEARNING_CURVE, target, ".png") if plotted else None
        if data.memorisation_plot:
            data.memorisation_plot = _copy_beside(run / MEMORISATION_PLOT, target, ".memorisation.png")
    data.to_model_card().save(target)
    return target


def _copy_beside(source: Path, card: Path, suffix: str) -> str:
    destination = card.with_name(card.stem + suffix)
    shutil.copyfile(source, destination)
    return destination.name


def make_card_parser() -> argparse.ArgumentParser:
    """The ``jal card`` parser."""
    parser = argparse.ArgumentParser(prog="jal card", description="Render the model card of a finished `jal train` run.")
    parser.add_argument("output_dir", help="The run folder (the output_dir of `jal train`).")
    parser.add_argument("--out", default=None, help="Card path (default <output_dir>/README.md), e.g. model_cards/NAME.md.")
    parser.add_argument("--model-name", default=None, help="Name in the card and its model-index (default: folder name).")
    parser.add_argument("--repo-id", default=None, help="Hub repo the model is or will be at, for the usage snippet.")
    parser.add_argument("--license", default=None, help="License id for the card metadata, e.g. apache-2.0.")
    return parser


def card_main(argv: list[str] | None = None) -> int:
    """``jal card <output_dir> [--out model_cards/NAME.md]``."""
    args = make_card_parser().parse_args(argv)
    overrides = _cli_overrides(args)
    path = render_card(args.output_dir, args.out, **overrides)
    print(f"Model card written to {path}")
    return 0


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    values = {"model_name": args.model_name, "repo_id": args.repo_id, "license": args.license}
    if args.repo_id and not args.model_name:
        values["model_name"] = args.repo_id.split("/")[-1]
    return {k: v for k, v in values.items() if v is not None}


# ---- jal push -------------------------------------------------------------------------------------


def _offline() -> bool:
    """Offline mode, read now (not at import) so that a later ``HF_HUB_OFFLINE=1`` counts too."""
    from huggingface_hub import constants

    env = (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").strip().upper()
    return constants.is_offline_mode() or env in ("1", "ON", "YES", "TRUE")


def check_hub_access(token: str | None = None, api: HfApi | None = None) -> str:
    """Fail fast, before anything is saved or uploaded, when the Hub cannot be written to.

    Args:
        token: a write token; default the logged-in one (``HF_TOKEN`` or ``hf auth login``).
        api: the client to ask (default a new `HfApi`).

    Returns:
        The token to use.

    Raises:
        HubUnavailableError: offline mode, no token, no network or a rejected token; the
            message says how to fix it.
    """
    if _offline():
        raise HubUnavailableError(
            "Offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set), so nothing can be pushed. "
            "Unset it on a machine with network access and push again; the run folder is unchanged."
        )
    token = token or get_token()
    if not token:
        raise HubUnavailableError(
            "No Hugging Face token: run `hf auth login`, set HF_TOKEN, or pass --token with a write token. "
            "The run folder is unchanged."
        )
    try:
        (api or HfApi()).whoami(token=token)
    except Exception as err:  # network errors and HTTP 401 arrive as several exception types
        raise HubUnavailableError(
            f"Cannot reach the Hugging Face Hub with this token ({err.__class__.__name__}: {err}). Check the network "
            "and that the token is valid and has write access. The run folder is unchanged."
        ) from err
    return token


def _check_run_folder(run_dir: str | os.PathLike[str]) -> Path:
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"Run folder {os.fspath(run)!r} does not exist; pass the output_dir of a `jal train` run.")
    missing = [name for name in ("config.json", "recipe.yaml") if not (run / name).is_file()]
    if not any((run / name).is_file() for name in WEIGHT_FILES):
        missing.append("model weights (model.safetensors)")
    if missing:
        raise ValueError(
            f"{run} is not a finished `jal train` run: missing {', '.join(missing)}. Push the output_dir of a run "
            "that completed (it saves the model, recipe.yaml and metrics.json at the end)."
        )
    return run


def upload_operations(run_dir: Path, readme: str, learning_curve: bytes | None) -> list[Any]:
    """The files of a push: the run folder (minus `PUSH_IGNORE`), the README and the learning curve.

    The README and plot are uploaded from memory, so pushing never writes into the run folder.
    """
    from huggingface_hub import CommitOperationAdd

    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    kept = filter_repo_objects(files, ignore_patterns=PUSH_IGNORE)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(run_dir / name)) for name in kept]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode("utf-8")))
    if learning_curve is not None:
        operations.append(CommitOperationAdd(path_in_repo=LEARNING_CURVE, path_or_fileobj=learning_curve))
    return operations


def push_run(
    output_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload model trained on noisy labels with jal-trainer",
    revision: str | None = None,
    **overrides: Any,
) -> Any:
    """Push a finished run (model, tokenizer or processor, run records, card, plot) to the Hub.

    Every check (run folder, repo id, offline mode, token, network) happens before the first
    write; the run folder is never modified.

    Args:
        output_dir: the run's ``output_dir``.
        repo_id: ``user/name`` of the model repo (created if missing).
        token: write token (default the logged-in one).
        private: create the repo private.
        commit_message: message of the Hub commit.
        revision: branch to push to (default main).
        **overrides: `JALCardData` fields (``license``, ``model_name``, ...).

    Returns:
        The `huggingface_hub.CommitInfo` of the upload.

    Raises:
        ValueError: not a finished run, or an invalid repo id.
        HubUnavailableError: offline, no token, no network or a rejected token.
    """
    import jal_trainer

    run = _check_run_folder(output_dir)
    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ValueError(f"Invalid --repo-id {repo_id!r}: {err} Use the form user/model-name.") from err
    api = HfApi(library_name="jal-trainer", library_version=jal_trainer.__version__)
    token = check_hub_access(token, api)

    overrides.setdefault("model_name", repo_id.split("/")[-1])
    data = JALCardData.from_run(run, repo_id=repo_id, **overrides)
    png = learning_curve_png(data.log_history, data.model_name)
    data.learning_curve = LEARNING_CURVE if png is not None else None
    operations = upload_operations(run, str(data.to_model_card()), png)

    api.create_repo(repo_id, token=token, private=private, exist_ok=True)
    return api.create_commit(
        repo_id=repo_id, operations=operations, commit_message=commit_message, token=token, revision=revision
    )


def make_push_parser() -> argparse.ArgumentParser:
    """The ``jal push`` parser."""
    parser = argparse.ArgumentParser(prog="jal push", description="Push a finished `jal train` run to the Hub.")
    parser.add_argument("output_dir", help="The run folder (the output_dir of `jal train`).")
    parser.add_argument("--repo-id", required=True, help="Model repo on the Hub, user/name (created if missing).")
    parser.add_argument("--token", default=None, help="Write token (default: HF_TOKEN or the `hf auth login` one).")
    parser.add_argument("--private", action="store_true", help="Create the repo private.")
    parser.add_argument("--commit-message", default="Upload model trained on noisy labels with jal-trainer")
    parser.add_argument("--revision", default=None, help="Branch to push to (default main).")
    parser.add_argument("--model-name", default=None, help="Name in the card and its model-index (default: repo name).")
    parser.add_argument("--license", default=None, help="License id for the card metadata, e.g. apache-2.0.")
    return parser


def push_main(argv: list[str] | None = None) -> int:
    """``jal push <output_dir> --repo-id user/name``: 0 on success, 1 when the Hub is unavailable."""
    args = make_push_parser().parse_args(argv)
    overrides = {k: v for k, v in {"model_name": args.model_name, "license": args.license}.items() if v}
    try:
        commit = push_run(args.output_dir, args.repo_id, token=args.token, private=args.private,
                          commit_message=args.commit_message, revision=args.revision, **overrides)  # fmt: skip
    except HubUnavailableError as err:
        print(f"jal push: error: {err}", file=sys.stderr)
        return 1
    print(f"Pushed {args.output_dir} to {getattr(commit, 'commit_url', commit)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m jal_trainer.hub {card,push} ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = {"card": card_main, "push": push_main}
    if not args or args[0] not in commands:
        print("usage: python -m jal_trainer.hub {card,push} ...", file=sys.stderr)
        return 2
    return commands[args[0]](args[1:])


# ---- JALTrainer integration -----------------------------------------------------------------------


class ModelCardMixin:
    """Gives a `transformers.Trainer` subclass the jal-trainer model card and a safe ``push_to_hub``.

    Put it first in the bases, ``class JALTrainer(ModelCardMixin, Trainer)``. `Trainer.push_to_hub`
    calls ``self.create_model_card(model_name=..., **kwargs)`` before its upload, so the pushed
    README is this card.
    """

    def create_model_card(
        self,
        language: str | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        model_name: str | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write ``README.md`` (and ``learning_curve.png``) in ``args.output_dir``.

        Same arguments as `transformers.Trainer.create_model_card`, plus `JALCardData` fields as
        keywords (``noise_type``, ``noise_rate``, ``noise_seed``, ``noise_column``,
        ``test_accuracy``, ``repo_id``, ...) for what a trainer cannot know.
        """
        if not self.is_world_process_zero():  # type: ignore[attr-defined]
            return
        out = Path(self.args.output_dir)  # type: ignore[attr-defined]
        out.mkdir(parents=True, exist_ok=True)
        readme = out / "README.md"
        tags = _listify(tags)
        if readme.is_file():  # keep tags others added (as the Trainer does)
            existing = ModelCard.load(readme, ignore_metadata_errors=True).data.tags or []
            tags += [t for t in existing if t not in tags]
        given = {"language": language, "license": license, "tags": tags or None, "model_name": model_name,
                 "finetuned_from": finetuned_from, "tasks": tasks, "dataset_tags": dataset_tags, "dataset": dataset,
                 "dataset_args": dataset_args}  # fmt: skip
        hub_model_id = getattr(self, "hub_model_id", None) or getattr(self.args, "hub_model_id", None)  # type: ignore[attr-defined]
        if hub_model_id:
            kwargs.setdefault("repo_id", hub_model_id)
        data = JALCardData.from_trainer(self, **{k: v for k, v in given.items() if v is not None}, **kwargs)
        if write_learning_curve(data.log_history, out / LEARNING_CURVE, data.model_name):
            data.learning_curve = LEARNING_CURVE
        data.to_model_card().save(readme)

    def push_to_hub(
        self,
        commit_message: str | None = "End of training",
        blocking: bool = True,
        token: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """`Trainer.push_to_hub`, after checking that the Hub can be written to (offline mode, token,
        network) so that a doomed push fails before it saves anything. Raises `HubUnavailableError`."""
        token = check_hub_access(token or self.args.hub_token)  # type: ignore[attr-defined]
        return super().push_to_hub(  # type: ignore[misc]
            commit_message=commit_message, blocking=blocking, token=token, revision=revision, private=private,
            **kwargs,
        )


__all__ = [
    "ACheck",
    "HubUnavailableError",
    "JALCardData",
    "ModelCardMixin",
    "PAPER_BIBTEX",
    "TEMPLATE_PATH",
    "base_model_id",
    "card_main",
    "check_a",
    "check_hub_access",
    "learning_curve_png",
    "memorisation_rows",
    "noisy_label_accuracy",
    "write_learning_curve",
    "make_card_parser",
    "make_push_parser",
    "push_main",
    "push_run",
    "render_card",
    "upload_operations",
]

if __name__ == "__main__":
    sys.exit(main())
