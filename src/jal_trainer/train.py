"""`jal train`: the main job. Load data, add or read label noise, train with `JALTrainer`, report.

Every run writes to ``output_dir``: the model (``save_pretrained``), ``recipe.yaml`` (the resolved
configuration of all three dataclasses, seed included), ``versions.json``, ``noise_report.json``
and ``metrics.json`` (``test_accuracy`` on the clean test labels, as a fraction); the writing is in
:mod:`jal_trainer.run_outputs`.

Example:
    $ jal train --config quickstart
    $ jal train --config quickstart --loss_type ce --output_dir runs/quickstart-ce
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from datasets import DatasetDict, Image
from transformers import set_seed
from transformers.utils import logging

from jal_trainer.arguments import VISION_MODELS, DataArguments, ModelArguments, parse_recipe
from jal_trainer.config import JALConfig
from jal_trainer.metrics import compute_metrics_fn
from jal_trainer.noisy_datasets import noise_report
# package_versions and _jsonable stay importable from here (scripts and modules written before the split)
from jal_trainer.label_issue_files import write_label_issues  # noqa: F401  (re-exported)
# default_preset is re-exported (jal_trainer.train.default_preset)
from jal_trainer.run_defaults import default_candidates, default_preset, probe_defaults  # noqa: F401
from jal_trainer.run_outputs import _jsonable, package_versions, write_run  # noqa: F401
from jal_trainer.trainer import JALTrainer

logger = logging.get_logger(__name__)

LABEL = "label"
SYNTHETIC_NOISE = ("symmetric", "pairflip", "cifar10-asym", "cifar100-asym", "cifar100-superclass", "instance")
REAL_NOISE = ("column", "majority-vote")


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Entry point of ``jal train``: parse the recipe and run it."""
    data_args, model_args, train_args = parse_recipe(argv)
    command = ["jal", "train", *(sys.argv[1:] if argv is None else argv)]
    return run(data_args, model_args, train_args, command=command)


def run(data_args: DataArguments, model_args: ModelArguments, args: JALConfig, *,
        command: list[str] | None = None, edit_train: Any = None) -> dict[str, float]:
    """Train one model as the recipe says and return its final metrics (``test_accuracy`` included).

    Refuses a non-empty ``output_dir`` unless ``overwrite_output_dir`` is set or the run resumes
    (``resume_from_checkpoint``: a path, or ``true`` for the last checkpoint). Ctrl-C or SIGTERM
    saves a checkpoint and raises `TrainingInterrupted`, whose message is the resume command.
    ``edit_train``: a function of the noisy training split returning the split to train on
    (`jal_trainer.clean` drops or relabels flagged rows with it).
    """
    from jal_trainer.label_issues import column_array
    from jal_trainer.run_safety import InterruptCallback, prepare_output_dir, stop_on_signals
    from jal_trainer.ner.train import is_token_task, run_token

    if is_token_task(model_args):  # NER: its own data, noise, metrics and outputs (jal_trainer.ner)
        prepare_output_dir(args, model_args.model)  # the same refusal of a non-empty output_dir
        return run_token(data_args, model_args, default_preset(model_args, args))
    _check_before_loading(data_args, model_args)
    resume = prepare_output_dir(args, model_args.model)
    args = probe_defaults(model_args, default_candidates(model_args, default_preset(model_args, args)))
    set_seed(args.seed)
    # choosing a checkpoint by evaluation must not look at the test split: hold out validation rows
    dataset = load_data(data_args, need_validation=args.load_best_model_at_end)
    dataset, report = apply_noise(dataset, data_args)
    if edit_train is not None:  # `jal clean`: what it trains on, and that split's noise, not the source's
        dataset["train"] = edit_train(dataset["train"])
        report = noise_report(dataset["train"])
    check_same_labels_on_every_process(column_array(dataset["train"], LABEL), args)
    # the main process embeds or tokenizes first and fills the caches; the other ranks then read them
    with args.main_process_first(desc="preparing the model and data"):
        parts = build_model_parts(model_args, data_args, dataset, args)
    if args.loss_type == "auto":
        from jal_trainer.auto import select_for_recipe

        # writes loss_selection.json; the model below is still untrained. A chosen `<loss>+clean`
        # drops the rows its trial flagged from the training split (and rebuilds the callbacks on the rest)
        args = select_for_recipe(parts, args, raw=dataset, callbacks=lambda ds: _callbacks(data_args, ds))
    trainer = JALTrainer(
        model=parts["model"],
        args=args,
        train_dataset=parts["dataset"]["train"],
        eval_dataset=parts["dataset"]["validation" if args.load_best_model_at_end else "test"],
        data_collator=parts["collator"],
        compute_metrics=parts["compute_metrics"],
        processing_class=parts.get("processing_class"),
        callbacks=parts.get("callbacks"),
    )
    for callback in parts.get("callbacks") or []:
        callback.resume_checkpoint = resume
    interrupt = InterruptCallback(command)
    trainer.add_callback(interrupt)  # last: it stops training after the others saved their state
    with stop_on_signals(interrupt):
        train_output = trainer.train(resume_from_checkpoint=resume)
    metrics = trainer.evaluate(parts["dataset"]["test"], metric_key_prefix="test")
    result = {k.removeprefix("test_"): v for k, v in metrics.items()}
    result = {"test_accuracy": result.pop("accuracy"), **{f"test_{k}": v for k, v in result.items()}}
    # training time alone (with any per-epoch evaluation and callback passes), for time per epoch
    result["train_runtime"] = train_output.metrics.get("train_runtime")
    if trainer.is_world_process_zero():
        write_run(trainer, data_args, model_args, args, result, report)
        issues = None
        if data_args.find_label_issues:
            issues = write_label_issues(parts.get("callbacks") or [], dataset["train"], data_args,
                                        Path(args.output_dir))
        from jal_trainer.run_summary import cpu_bf16_tip, run_facts, summary_table

        tip = cpu_bf16_tip(args.device.type, bf16=args.bf16, fp16=args.fp16,
                           fine_tuned=model_args.model not in VISION_MODELS and not model_args.freeze_encoder)
        facts = run_facts(args.output_dir, args.loss_type, args.loss_preset, args.loss_kwargs(), report,
                          data_args.noise_type)
        print(summary_table(args.output_dir, result, issues, tip=tip, facts=facts))
    return result


# ---- validation ---------------------------------------------------------------------------------


def _check_before_loading(data: DataArguments, model: ModelArguments) -> None:
    """Fail on configuration mistakes before any data or weights are loaded."""
    if data.noise_type not in ("none", *SYNTHETIC_NOISE, *REAL_NOISE):
        raise ValueError(
            f"noise_type={data.noise_type!r} is unknown. "
            f"Choose one of: none, {', '.join(SYNTHETIC_NOISE + REAL_NOISE)}."
        )
    if data.noise_type == "column" and not (data.noise_column or data.noisy_label_column):
        raise ValueError("noise_type='column' needs noisy_label_column (the column of real noisy labels).")
    if not 0.0 <= data.noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {data.noise_rate}.")
    if data.noise_sampler not in ("exact", "iid"):
        raise ValueError(f"noise_sampler={data.noise_sampler!r} is unknown. Choose exact or iid.")
    from jal_trainer.data.checks import check_data_arguments
    from jal_trainer.label_issues import RULES

    if data.label_issue_rule not in RULES:
        raise ValueError(f"label_issue_rule={data.label_issue_rule!r} is unknown. Choose one of {', '.join(RULES)}.")
    check_data_arguments(data)
    if model.model not in VISION_MODELS:
        _check_text_model(model.model)


def _check_text_model(name_or_path: str) -> None:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    from jal_trainer.paths import resolve_path

    path = resolve_path(name_or_path)
    source = str(path) if path.exists() else name_or_path
    try:
        # the local cache first: an unknown name must not wait for the Hub's retries
        config = AutoConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as err:
        if path.exists() or _offline():
            raise ValueError(
                f"model={name_or_path!r} is neither {', '.join(VISION_MODELS)} nor a loadable local checkpoint "
                f"({err.__class__.__name__}).{_did_you_mean(name_or_path)} Fix the model field."
            ) from err
        try:
            config = AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as err2:
            raise ValueError(
                f"model={name_or_path!r} is neither {', '.join(VISION_MODELS)} nor a loadable checkpoint path or "
                f"Hub id ({err2.__class__.__name__}).{_did_you_mean(name_or_path)} Fix the model field."
            ) from err2
    if config.model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        raise ValueError(
            f"model={name_or_path!r} (model_type {config.model_type!r}) has no sequence-classification head in "
            "transformers. Choose a model field whose architecture has one (BERT, RoBERTa, MiniLM, ...)."
        )


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("TRANSFORMERS_OFFLINE", "").upper() in ("1", "ON", "YES",
                                                                                                    "TRUE")


def _did_you_mean(name: str) -> str:
    """`` Did you mean 'x'?`` among the vision models, the shared models and the cached Hub models."""
    import difflib

    from jal_trainer.paths import shared_dir

    known = list(VISION_MODELS)
    models = shared_dir() / "models"
    if models.is_dir():
        known += [f"${{shared}}/models/{p.name}" for p in models.iterdir() if p.is_dir()]
    try:
        from huggingface_hub import scan_cache_dir

        known += [repo.repo_id for repo in scan_cache_dir().repos if repo.repo_type == "model"]
    except Exception:  # no cache yet (CacheNotFound) or an unreadable one: suggest from the rest
        pass
    tails = {k.rsplit("/", 1)[-1].lower(): k for k in known}
    close = difflib.get_close_matches(name.rsplit("/", 1)[-1].lower(), list(tails), n=1, cutoff=0.5)
    return f" Did you mean {tails[close[0]]!r}?" if close else ""


# ---- data -----------------------------------------------------------------------------------------


def load_data(data: DataArguments, *, vision: bool | None = None, need_validation: bool = False) -> DatasetDict:
    """Load the recipe's data to the contract of `jal_trainer.data.contract`, subsetting as asked.

    ``vision`` None: image data when the source has a ``pixel_values`` or ``Image`` column.

    Returns ``train`` and ``test`` (and ``validation`` when the data has one or ``need_validation``)
    with a ``label`` ClassLabel column. An unnamed data set (``dataset`` None) is named after
    ``data_path``, in place, so that the run's recipe.yaml and card carry the name.
    """
    from jal_trainer.data import dataset_name_from_path, load_dataset_by_name, load_raw_data, stratified_subset
    from jal_trainer.data.contract import prepare_dataset

    if data.dataset is None and data.data_path is not None:
        raw = load_raw_data(data.data_path, data_config=data.data_config, data_revision=data.data_revision,
                            mark_entities=data.mark_entities, entity_markers=data.entity_markers)
        data.dataset = dataset_name_from_path(data.data_path)
    else:
        data.dataset = data.dataset or "digits"
        raw = load_dataset_by_name(data.dataset, data.data_path, data_config=data.data_config,
                                   data_revision=data.data_revision, mark_entities=data.mark_entities,
                                   entity_markers=data.entity_markers)
    if vision is None:  # image data: a pixel_values or Image column, or an image_column named
        features = raw["train"].features if "train" in raw else {}
        vision = bool(data.image_column) or "pixel_values" in features or any(
            isinstance(f, Image) for f in features.values())
    dataset = prepare_dataset(raw, data, vision=vision, need_validation=need_validation)
    splits = dict(dataset)
    if not need_validation:  # not read by the run: skip its tokenising or embedding
        splits.pop("validation", None)
    if data.train_subset:
        splits["train"] = stratified_subset(splits["train"], data.train_subset, seed=data.subset_seed)
    if data.test_subset:
        splits["test"] = stratified_subset(splits["test"], data.test_subset, seed=data.subset_seed)
    return DatasetDict(splits)


def apply_noise(dataset: DatasetDict, data: DataArguments) -> tuple[DatasetDict, Any]:
    """Corrupt (or read noisy) training labels once, with `map`; keep clean labels beside them."""
    from jal_trainer.data.contract import OBSERVED, noisy_source
    from jal_trainer.noisy_datasets import add_label_noise, noise_report

    observed = noisy_source(data)
    if observed is not None:  # real noisy labels in a column (also: the observed labels beside gold ones)
        dataset = add_label_noise(dataset, "column", None, seed=data.noise_seed, splits=["train"], column=observed)
        if observed == OBSERVED:  # now the label column itself
            dataset["train"] = dataset["train"].remove_columns(OBSERVED)
    elif data.noise_type == "majority-vote":
        dataset = add_label_noise(dataset, "majority-vote", None, seed=data.noise_seed, splits=["train"],
                                  column=data.noise_column or "weak_labels", tie_break=data.tie_break,
                                  abstain=data.abstain)
    elif data.noise_type == "none":
        dataset = add_label_noise(dataset, "symmetric", 0.0, seed=data.noise_seed, splits=["train"])
    else:
        kwargs = {"features": _features_for_instance_noise(dataset["train"])} if data.noise_type == "instance" else {}
        dataset = add_label_noise(dataset, data.noise_type, data.noise_rate, seed=data.noise_seed,
                                  splits=["train"], sampler=data.noise_sampler, **kwargs)
    return dataset, noise_report(dataset["train"])  # add_label_noise warns when the rate is not realised


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
    import torch

    from jal_trainer.data import DATASET_NAMES, DeviceImageCollator, DeviceImageDataset
    from jal_trainer.data.stats import resolve_image_stats
    from jal_trainer.models import build_vision_model

    # given, built in, or computed on the training split (cached); recorded in recipe.yaml
    mean, std = resolve_image_stats(dataset["train"], data.dataset, data.image_mean, data.image_std,
                                    builtin=data.dataset in DATASET_NAMES)
    data.image_mean, data.image_std = list(mean), list(std)
    channels, size = dataset["train"].features["pixel_values"].shape[:2]  # the image size comes from the data
    model = build_vision_model(model_args.model, label_names=names, num_channels=channels, image_size=size)
    if model_args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # The images live as one uint8 tensor on the training device (the GPU when there is one) and
    # each batch is gathered, augmented and normalised there: no per-image Python work.
    splits = {
        split: DeviceImageDataset(ds, augment=data.augment and split == "train", mean=mean, std=std,
                                  seed=args.seed, device=args.device, channels_last=model_args.channels_last)
        for split, ds in dataset.items()
    }
    return {"model": model, "dataset": splits, "collator": DeviceImageCollator()}


def _text_parts(model_args: ModelArguments, data: DataArguments, dataset: DatasetDict,
                names: list[str]) -> dict[str, Any]:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from jal_trainer.data.text import join_text_pairs, tokenize_dataset
    from jal_trainer.paths import resolve_path

    from jal_trainer.data.checks import check_head

    path = resolve_path(model_args.model)
    source = str(path) if path.exists() else model_args.model
    id2label = dict(enumerate(names))
    check_head(AutoConfig.from_pretrained(source), names, model_args.model)  # before any weights load
    tokenizer = AutoTokenizer.from_pretrained(source)
    if model_args.freeze_encoder:
        from jal_trainer.probe import embed_dataset, probe_model

        dataset, text_column = join_text_pairs(dataset, data.text_column, data.text_pair_column, tokenizer)
        dataset = embed_dataset(dataset, source, text_column=text_column, max_length=data.max_length)
        return {"model": probe_model(source, len(names), id2label), "dataset": dataset, "collator": None}
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(names), id2label=id2label, label2id={n: i for i, n in id2label.items()}
    )
    dataset = tokenize_dataset(dataset, tokenizer, text_column=data.text_column,
                               text_pair_column=data.text_pair_column, max_length=data.max_length)
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
        callback = EpochProbabilitiesCallback(rows)
    return [callback] if callback is not None else []
