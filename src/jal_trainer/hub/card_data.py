"""`JALCardData`: everything a jal-trainer model card says, from a run folder or a live trainer.

A card records what a model trained on noisy labels needs to be judged: the noise (model, rate or
real-noise source, the realised rate), the loss and its hyper-parameters, the Theorem 4.1 check of
AMSE's ``a``, and the clean test accuracy (with the accuracy on the noisy training labels) as
``model-index`` entries that the Hub reads. Rendering lives in `jal_trainer.hub.render`.

Example:
    >>> from jal_trainer.hub import JALCardData
    >>> card = JALCardData.from_run("runs/cifar10-sym-0.8").to_model_card()  # doctest: +SKIP
    >>> card.data.eval_results[0].metric_value  # doctest: +SKIP
    0.6543
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from jal_trainer.hub.run_folder import (
    BASE_TAGS,
    MEMORISATION_PLOT,
    NOISY_ACCURACY_KEY,
    ACheck,
    _number,
    _percent,
    _read_json,
    _hyperparameters,
    _listify,
    _read_recipe,
    _task_type,
    base_model_id,
    check_a,
    dataset_names,
    memorisation_rows,
    noisy_label_accuracy,
    resolve_loss_params,
)

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
    loss_selection: dict[str, Any] | None = None  # loss_selection.json of a `loss_type: auto` run
    cleaning: dict[str, Any] | None = None  # clean.json of a `jal clean` run (its noise report: the kept rows)

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
            "hyperparameters": _hyperparameters(recipe, model in VISION_MODELS),
            "versions": _read_json(run / "versions.json") or {},
            "loss_selection": _read_json(run / "loss_selection.json"),
            "cleaning": _read_json(run / "clean.json"),
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
        after = " after `jal clean`" if self.cleaning else ""  # the noise of the rows left to train on
        tail = f" (realised {_percent(realised)} wrong labels{after})" if realised is not None else ""
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

    # -- rendering (jal_trainer.hub.render) ----------------------------------------------------

    def template_context(self) -> dict[str, Any]:
        """Values the Jinja template reads."""
        from jal_trainer.hub.render import template_context

        return template_context(self)

    def to_model_card(self, template_path: str | os.PathLike[str] | None = None) -> ModelCard:
        """Render the card with the package's template (or ``template_path``)."""
        from jal_trainer.hub.render import to_model_card

        return to_model_card(self, template_path)

def _check_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    from dataclasses import fields

    known = {f.name for f in fields(JALCardData)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Unknown model-card field(s) {unknown}. Valid fields: {', '.join(sorted(known))}.")
    return dict(values)


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
        # TrainingSummary gives [None] for a data set built in memory (Dataset.from_dict, from_pandas, ...)
        "dataset": next((d for d in _listify(summary.dataset) if d), None) or _dataset_name(trainer.train_dataset),
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

    return {
        "jal_trainer": jal_trainer.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
    }  # fmt: skip

