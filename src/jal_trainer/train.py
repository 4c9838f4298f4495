"""`jal train`: the main job. Load data, add or read label noise, train with `JALTrainer`, report.

Every run writes to ``output_dir``: the model (``save_pretrained``), ``recipe.yaml`` (the resolved
configuration of all three dataclasses, seed included), ``versions.json``, ``noise_report.json``
and ``metrics.json`` (``test_accuracy`` on the clean test labels, as a fraction).

Example:
    $ jal train --config recipes/quickstart.yaml
    $ jal train --config recipes/quickstart.yaml --loss_type ce --output_dir runs/quickstart-ce
"""

from __future__ import annotations

import json
import platform
import warnings
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from datasets import DatasetDict
from transformers import set_seed
from transformers.utils import logging

from jal_trainer.arguments import VISION_MODELS, DataArguments, ModelArguments, parse_recipe
from jal_trainer.config import CLEAN_LABEL_COLUMN, JALConfig
from jal_trainer.metrics import compute_metrics_fn
from jal_trainer.trainer import JALTrainer

logger = logging.get_logger(__name__)

LABEL = "label"
SYNTHETIC_NOISE = ("symmetric", "pairflip", "cifar10-asym", "cifar100-asym", "cifar100-superclass", "instance")
REAL_NOISE = ("column", "majority-vote")


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Entry point of ``jal train``: parse the recipe and run it."""
    data_args, model_args, train_args = parse_recipe(argv)
    return run(data_args, model_args, train_args)


def run(data_args: DataArguments, model_args: ModelArguments, args: JALConfig) -> dict[str, float]:
    """Train one model as the recipe says and return its final metrics (``test_accuracy`` included)."""
    _check_before_loading(data_args, model_args)
    args = default_preset(model_args, args)
    set_seed(args.seed)
    dataset = load_data(data_args)
    dataset, report = apply_noise(dataset, data_args)
    check_same_labels_on_every_process(dataset["train"][LABEL], args)
    parts = build_model_parts(model_args, data_args, dataset, args)
    if args.loss_type == "auto":
        from jal_trainer.auto import select_for_recipe

        args = select_for_recipe(parts, args)  # writes loss_selection.json; the model below is still untrained
    trainer = JALTrainer(
        model=parts["model"],
        args=args,
        train_dataset=parts["dataset"]["train"],
        eval_dataset=parts["dataset"]["test"],
        data_collator=parts["collator"],
        compute_metrics=parts["compute_metrics"],
        processing_class=parts.get("processing_class"),
        callbacks=parts.get("callbacks"),
    )
    for callback in parts.get("callbacks") or []:
        if hasattr(callback, "bind"):
            callback.bind(trainer)
    train_output = trainer.train()
    metrics = trainer.evaluate(metric_key_prefix="test")
    result = {k.removeprefix("test_"): v for k, v in metrics.items()}
    result = {"test_accuracy": result.pop("accuracy"), **{f"test_{k}": v for k, v in result.items()}}
    # training time alone (with any per-epoch evaluation and callback passes), for time per epoch
    result["train_runtime"] = train_output.metrics.get("train_runtime")
    if trainer.is_world_process_zero():
        write_run(trainer, data_args, model_args, args, result, report)
        if data_args.find_label_issues:
            write_label_issues(parts.get("callbacks") or [], dataset["train"], data_args, Path(args.output_dir))
    return result


# ---- validation ---------------------------------------------------------------------------------


def _check_before_loading(data: DataArguments, model: ModelArguments) -> None:
    """Fail on configuration mistakes before any data or weights are loaded."""
    if data.noise_type not in ("none", *SYNTHETIC_NOISE, *REAL_NOISE):
        raise ValueError(
            f"noise_type={data.noise_type!r} is unknown. Choose one of: none, {', '.join(SYNTHETIC_NOISE + REAL_NOISE)}."
        )
    if data.noise_type in REAL_NOISE and not data.noise_column:
        raise ValueError(f"noise_type={data.noise_type!r} needs noise_column (e.g. worse_label or weak_labels).")
    if not 0.0 <= data.noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {data.noise_rate}.")
    if data.noise_sampler not in ("exact", "iid"):
        raise ValueError(f"noise_sampler={data.noise_sampler!r} is unknown. Choose exact or iid.")
    from jal_trainer.label_issues import RULES

    if data.label_issue_rule not in RULES:
        raise ValueError(f"label_issue_rule={data.label_issue_rule!r} is unknown. Choose one of {', '.join(RULES)}.")
    if model.model not in VISION_MODELS:
        _check_text_model(model.model)


def default_preset(model: ModelArguments, args: JALConfig) -> JALConfig:
    """A recipe on a pretrained checkpoint that names no preset gets ``finetune`` (AdamW values).

    The paper's presets are CIFAR/SGD values; with AdamW on a pretrained encoder JAL's a = 30 drowns
    the active term. Vision models train from scratch and keep the loss's own defaults.
    """
    from jal_trainer.losses import FINETUNE_PRESET, PRESETS

    if args.loss_preset is not None or model.model in VISION_MODELS:
        return args
    if args.loss_type != "auto" and args.loss_type not in PRESETS[FINETUNE_PRESET]:
        return args
    logger.info(f"Pretrained model and no loss_preset: using loss_preset={FINETUNE_PRESET!r}.")
    args.loss_preset = FINETUNE_PRESET
    return args


def _check_text_model(name_or_path: str) -> None:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    from jal_trainer.paths import resolve_path

    path = resolve_path(name_or_path)
    source = str(path) if path.exists() else name_or_path
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"model={name_or_path!r} is neither {', '.join(VISION_MODELS)} nor a loadable checkpoint path or Hub id "
            f"({err.__class__.__name__}). Fix the model field."
        ) from err
    if config.model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        raise ValueError(
            f"model={name_or_path!r} (model_type {config.model_type!r}) has no sequence-classification head in "
            "transformers. Choose a model field whose architecture has one (BERT, RoBERTa, MiniLM, ...)."
        )


# ---- data -----------------------------------------------------------------------------------------


def load_data(data: DataArguments) -> DatasetDict:
    """Load train and test splits with a ``label`` ClassLabel column, subsetting as asked."""
    from jal_trainer.data import load_dataset_by_name, stratified_subset

    dataset = load_dataset_by_name(data.dataset, data.data_path)
    splits = {"train": dataset["train"], "test": dataset["test"]}
    if data.train_subset:
        splits["train"] = stratified_subset(splits["train"], data.train_subset, seed=data.noise_seed)
    if data.test_subset:
        splits["test"] = stratified_subset(splits["test"], data.test_subset, seed=data.noise_seed)
    return DatasetDict(splits)


def apply_noise(dataset: DatasetDict, data: DataArguments) -> tuple[DatasetDict, Any]:
    """Corrupt (or read noisy) training labels once, with `map`; keep clean labels beside them."""
    from jal_trainer.noisy_datasets import add_label_noise, noise_report

    if data.noise_type == "none":
        dataset = add_label_noise(dataset, "symmetric", 0.0, seed=data.noise_seed, splits=["train"])
    elif data.noise_type in REAL_NOISE:
        dataset = add_label_noise(dataset, data.noise_type, None, seed=data.noise_seed, splits=["train"],
                                  column=data.noise_column)
    else:
        kwargs = {"features": _features_for_instance_noise(dataset["train"])} if data.noise_type == "instance" else {}
        dataset = add_label_noise(dataset, data.noise_type, data.noise_rate, seed=data.noise_seed,
                                  splits=["train"], sampler=data.noise_sampler, **kwargs)
    report = noise_report(dataset["train"])
    _warn_if_noise_unrealised(data, report.noise_rate)
    return dataset, report


def _warn_if_noise_unrealised(data: DataArguments, realised: float) -> None:
    """The exact sampler floors T[i, j] * n_i: with many small classes it may flip almost nothing."""
    if data.noise_type in SYNTHETIC_NOISE and data.noise_rate > 0 and realised < 0.5 * data.noise_rate:
        warnings.warn(
            f"Requested {data.noise_type} noise {data.noise_rate} but only {realised:.1%} of the training labels "
            f"changed: the '{data.noise_sampler}' sampler flips floor(T[i, j] * n_i) samples per class pair, which "
            "is 0 when classes are small. Set noise_sampler to 'iid' to draw each label from its row instead.",
            stacklevel=2,
        )


def labels_digest(labels: Any) -> str:
    """SHA-256 of a label column, to compare the noisy labels seen by different processes."""
    import hashlib

    return hashlib.sha256(np.asarray(labels, dtype=np.int64).tobytes()).hexdigest()


def check_same_labels_on_every_process(labels: Any, args: JALConfig) -> None:
    """Fail fast if the processes of a distributed run drew different noisy labels.

    Noise is seeded and deterministic, so this only fires on a real bug or on processes that
    read different data; training on inconsistent labels would silently average two data sets.
    """
    if args.world_size <= 1:
        return
    import torch.distributed as dist

    digests: list[str | None] = [None] * args.world_size
    dist.all_gather_object(digests, labels_digest(labels))
    if len(set(digests)) != 1:
        raise RuntimeError(
            f"The processes drew different noisy training labels (digests {digests}). Make every process read the "
            "same data files and use the same noise_seed."
        )
    logger.info(f"All {args.world_size} processes hold the same noisy training labels ({digests[0][:12]}).")


def _features_for_instance_noise(train: Any) -> np.ndarray:
    from jal_trainer.data import image_array

    if "pixel_values" not in train.column_names:
        raise ValueError("noise_type='instance' needs image features (pixel_values); use a vision data set.")
    pixels = image_array(train).astype(np.float32)
    return pixels.reshape(len(pixels), -1) / 255.0


# ---- model, collator, metrics ------------------------------------------------------------------


def build_model_parts(model_args: ModelArguments, data: DataArguments, dataset: DatasetDict,
                      args: JALConfig) -> dict[str, Any]:
    """The model, its collator, processing class and metrics for this data set."""
    names = dataset["train"].features[LABEL].names
    if model_args.model in VISION_MODELS:
        parts = _vision_parts(model_args, data, dataset, names, args)
    else:
        parts = _text_parts(model_args, data, dataset, names)
    parts["compute_metrics"] = compute_metrics_fn()
    parts["callbacks"] = _callbacks(data, parts["dataset"])
    return parts


def _vision_parts(model_args: ModelArguments, data: DataArguments, dataset: DatasetDict,
                  names: list[str], args: JALConfig) -> dict[str, Any]:
    from jal_trainer.data import DeviceImageCollator, DeviceImageDataset, image_stats
    from jal_trainer.models import build_vision_model

    channels, size = np.asarray(dataset["train"][0]["pixel_values"]).shape[:2]
    model = build_vision_model(model_args.model, label_names=names, num_channels=channels, image_size=size)
    # The images live as one uint8 tensor on the training device (the GPU when there is one) and
    # each batch is gathered, augmented and normalised there: no per-image Python work.
    mean, std = image_stats(data.dataset)
    splits = {
        split: DeviceImageDataset(ds, augment=data.augment and split == "train", mean=mean, std=std,
                                  seed=args.seed, device=args.device)
        for split, ds in dataset.items()
    }
    return {"model": model, "dataset": splits, "collator": DeviceImageCollator()}


def _text_parts(model_args: ModelArguments, data: DataArguments, dataset: DatasetDict,
                names: list[str]) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from jal_trainer.data import tokenize_dataset
    from jal_trainer.paths import resolve_path

    path = resolve_path(model_args.model)
    source = str(path) if path.exists() else model_args.model
    id2label = dict(enumerate(names))
    if model_args.freeze_encoder:
        from jal_trainer.probe import embed_dataset, probe_model

        dataset = embed_dataset(dataset, source, text_column=data.text_column, max_length=data.max_length)
        return {"model": probe_model(source, len(names), id2label), "dataset": dataset, "collator": None}
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(names), id2label=id2label, label2id={n: i for i, n in id2label.items()}
    )
    dataset = tokenize_dataset(dataset, tokenizer, text_column=data.text_column, max_length=data.max_length)
    return {"model": model, "dataset": dataset, "collator": DataCollatorWithPadding(tokenizer),
            "processing_class": tokenizer}


def _callbacks(data: DataArguments, dataset: Any) -> list[Any]:
    """The callback that predicts on the training rows every epoch (one extra forward pass per epoch).

    `MemorisationCallback` when memorisation is tracked and the clean labels are known, else an
    `EpochProbabilitiesCallback` when label issues are wanted; the same single pass serves both.
    """
    from jal_trainer.callbacks import EpochProbabilitiesCallback, memorisation_callback_for

    train = dataset["train"]
    # Score the training rows without augmentation: memorisation is about the stored labels.
    rows = train.without_augmentation() if hasattr(train, "without_augmentation") else train
    callback = memorisation_callback_for(rows) if data.track_memorisation else None
    if callback is None and data.find_label_issues:
        callback = EpochProbabilitiesCallback(None, rows)
    return [callback] if callback is not None else []


# ---- outputs ------------------------------------------------------------------------------------


def write_run(trainer: JALTrainer, data: DataArguments, model: ModelArguments, args: JALConfig,
              metrics: dict[str, float], report: Any) -> None:
    """Write the model, the resolved recipe, versions, noise report and metrics to ``output_dir``."""
    out = Path(args.output_dir)
    trainer.save_model()
    trainer.save_state()
    recipe = {**asdict(data), **asdict(model), **_jsonable(args.to_dict())}
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (out / "versions.json").write_text(json.dumps(package_versions(), indent=2))
    (out / "noise_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    logger.warning(f"Clean test accuracy {metrics['test_accuracy']:.4f}; run written to {out}")


def write_label_issues(callbacks: list[Any], train: Any, data: DataArguments, out: Path) -> dict[str, Any] | None:
    """Flag the training labels the model disagrees with; write ``label_issues.json`` and ``label_issues.csv``.

    Uses the probabilities averaged over epochs by the run's `EpochProbabilitiesCallback`. The
    JSON holds the rule, counts, the precision / recall / F1 against the clean labels when they are
    known, and the 20 highest-scoring rows; the CSV one row per training example: ``index``,
    ``label``, ``label_issue_score``, ``is_label_issue`` (and ``clean_label`` when known).
    """
    from jal_trainer.callbacks import EpochProbabilitiesCallback
    from jal_trainer.label_issues import ISSUE_COLUMN, SCORE_COLUMN, find_label_issues

    source = next((c for c in callbacks if isinstance(c, EpochProbabilitiesCallback) and c.epochs_seen), None)
    if source is None:
        logger.warning("No averaged training probabilities (no epoch ended): label issues not written.")
        return None
    found = find_label_issues(source, train, label_column=LABEL, rule=data.label_issue_rule)
    columns = [c for c in (LABEL, CLEAN_LABEL_COLUMN, SCORE_COLUMN, ISSUE_COLUMN) if c in found.dataset.column_names]
    table = found.dataset.select_columns(columns).add_column("index", list(range(len(found.dataset))))
    table = table.select_columns(["index", *columns])
    table.to_csv(str(out / "label_issues.csv"), index=False)
    top = np.argsort(-found.scores, kind="stable")[:20]
    given = np.asarray(train[LABEL])
    summary = {
        "rule": found.rule, "probabilities": f"mean over {source.epochs_seen} epochs of the in-sample softmax",
        "num_rows": len(found.scores), "num_flagged": int(found.issues.sum()),
        "flagged_fraction": float(found.issues.mean()) if len(found.issues) else 0.0,
        "report": found.report,
        "top": [{"index": int(i), "label": int(given[i]), "score": float(found.scores[i])} for i in top],
    }
    (out / "label_issues.json").write_text(json.dumps(summary, indent=2))
    quality = (f"; against the clean labels precision {found.report['precision']:.3f}, recall "
               f"{found.report['recall']:.3f}, F1 {found.report['f1']:.3f}") if found.report else ""
    logger.warning(f"Label issues: {summary['num_flagged']} of {summary['num_rows']} training labels flagged "
                   f"({found.rule}){quality}; see {out / 'label_issues.csv'}")
    return summary


def package_versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    import accelerate
    import datasets
    import torch
    import transformers

    import jal_trainer

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "jal_trainer": jal_trainer.__version__,
        "numpy": np.__version__,
    }


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))
