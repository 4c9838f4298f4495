"""`jal train` for token classification (NER): the recipe field ``task: token-classification``.

Same recipe fields and run folder as the sequence task, read for tokens:

* ``dataset``: ``conll`` (a folder of CoNLL files at ``data_path``, see `jal_trainer.data.conll`),
  ``noisebench`` (the same reader, default folder ``${shared}/data/noisebench``), or a Hub id /
  ``save_to_disk`` folder with ``tokens`` and a ``Sequence(ClassLabel)`` tag column (``ner_tags``);
* ``noise_type``: ``none``, ``entity`` (entity-level noise at ``noise_rate`` = 1 - F1) or
  ``column`` (real noisy tags in ``noise_column``, e.g. NoiseBench's ``noise_crowd``);
* ``train_subset``: a seeded random subset of training sentences (the same for every noise
  variant, so runs compare on the same sentences); ``max_length``: sub-token truncation.

The run folder holds the model, ``recipe.yaml``, ``versions.json``, ``noise_report.json`` (token-
and entity-level), ``metrics.json`` (``test_f1``, ``test_precision``, ``test_recall`` of entities on
the clean test tags, and token ``test_accuracy``), ``label_issues.json`` (scored with the mean over
epochs of the word probabilities, kept in ``epoch_word_probabilities.npz``) and a model card ``README.md``.

Example:
    $ jal train --config ner/noisebench-crowd
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from datasets import DatasetDict
from transformers import set_seed
from transformers.utils import logging

from jal_trainer.config import CLEAN_LABEL_COLUMN, JALConfig
from jal_trainer.ner.noisy import read_tags, tag_names

logger = logging.get_logger(__name__)

TASK = "token-classification"
TAGS = "ner_tags"
NOISE_TYPES = ("none", "entity", "column")
CONLL_DATASETS = {"conll": None, "noisebench": "${shared}/data/noisebench"}


def is_token_task(model_args: Any) -> bool:
    """True when the recipe asks for token classification (``task: token-classification``)."""
    task = getattr(model_args, "task", None) or "sequence-classification"
    if task not in ("sequence-classification", TASK):
        raise ValueError(f"task={task!r} is unknown; choose sequence-classification or {TASK}.")
    return task == TASK


def check_token_recipe(data: Any, model: Any, loss_type: str | None = None) -> None:
    """Fail on recipe mistakes of the token task before any data or weights are loaded."""
    if loss_type == "auto":  # auto's noisy-slice estimate is built for one label per row, not per token
        raise ValueError("loss_type='auto' is not available for token classification yet; choose a loss "
                         "(ce, gce, nce+rce or jal-ce: recipes/results/ner_table.md compares them on NoiseBench).")
    if data.noise_type not in NOISE_TYPES:
        raise ValueError(f"noise_type={data.noise_type!r} does not apply to token labels; choose one of "
                         f"{', '.join(NOISE_TYPES)} (entity: entity-level noise at noise_rate; column: noise_column).")
    if data.noise_type == "column" and not data.noise_column:
        raise ValueError("noise_type='column' needs noise_column, the column of noisy tags (e.g. noise_crowd).")
    if data.noise_type == "entity" and not 0.0 <= data.noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1] (the entity-level noise, 1 - F1), got {data.noise_rate}.")
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES

    config = AutoConfig.from_pretrained(_source(model.model))
    if config.model_type not in MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES:
        raise ValueError(f"model={model.model!r} ({config.model_type}) has no token-classification head in "
                         "transformers; choose a BERT-like encoder.")


def _source(name_or_path: str) -> str:
    from jal_trainer.paths import resolve_path

    path = resolve_path(name_or_path)
    return str(path) if path.exists() else name_or_path


# ---- data -----------------------------------------------------------------------------------------


def load_token_data(data: Any) -> DatasetDict:
    """Train and test splits with ``tokens`` and ``ner_tags`` (``Sequence(ClassLabel)``), subset as asked."""
    from jal_trainer.data.conll import is_conll_folder, load_conll

    if data.dataset is None:  # named after data_path, in place, so that recipe.yaml and the card carry it
        if data.data_path is None:
            raise ValueError("token classification needs data_path: a folder of CoNLL files (train.txt, "
                             "test.txt) or a Hub / save_to_disk token set; or dataset: conll or noisebench.")
        from jal_trainer.data.files import dataset_name_from_path, load_raw_data

        data.dataset = dataset_name_from_path(data.data_path)
        if is_conll_folder(data.data_path):
            dataset = load_conll(data.data_path)
        else:
            raw = load_raw_data(data.data_path, data_config=data.data_config, data_revision=data.data_revision)
            dataset = _as_token_dict(raw, data.text_column)
        return _subsets(dataset, data)
    key = data.dataset.lower()
    if key in CONLL_DATASETS:
        path = data.data_path or CONLL_DATASETS[key]
        if path is None:
            raise ValueError("dataset 'conll' needs data_path, the folder holding train.txt and test.txt.")
        dataset = load_conll(path)
    else:
        from jal_trainer.data import load_dataset_by_name

        dataset = _as_token_dict(load_dataset_by_name(data.dataset, data.data_path), data.text_column)
    return _subsets(dataset, data)


def _subsets(dataset: DatasetDict, data: Any) -> DatasetDict:
    """The train and test splits, each cut to ``train_subset`` / ``test_subset`` sentences when asked.

    Drawn with ``subset_seed``, as sequence data is, so that another ``noise_seed`` keeps the test set.
    """
    if "test" not in dataset:
        raise ValueError(f"dataset {data.dataset!r} has no test split (splits: {list(dataset)}); add one.")
    splits = {"train": dataset["train"], "test": dataset["test"]}
    for split, size in (("train", data.train_subset), ("test", data.test_subset)):
        if size and size < len(splits[split]):
            rng = np.random.default_rng(data.subset_seed)
            splits[split] = splits[split].select(np.sort(rng.choice(len(splits[split]), size, replace=False)))
    return DatasetDict(splits)


def _as_token_dict(dataset: DatasetDict, tokens_column: str) -> DatasetDict:
    """A Hub or saved token set with ``tokens`` and ``ner_tags`` (renamed from the first tag column)."""
    train = dataset["train"]
    column = tokens_column if tokens_column in train.column_names else "tokens"
    if column not in train.column_names:
        raise ValueError(f"the data set has no word column {tokens_column!r} or 'tokens' "
                         f"(columns: {train.column_names});"
                         " set text_column to the column holding the list of words.")
    if TAGS not in train.column_names:
        candidates = [c for c in train.column_names if getattr(train.features[c], "feature", None) is not None
                      and c != column]
        tag_names(train, candidates[0] if candidates else "ner_tags")  # raises the not-a-sequence error
        dataset = dataset.rename_column(candidates[0], TAGS)
    tag_names(dataset["train"], TAGS)
    return dataset.rename_column(column, "tokens") if column != "tokens" else dataset


def apply_token_noise(dataset: DatasetDict, data: Any) -> tuple[DatasetDict, Any]:
    """Noisy training tags (entity noise or a real column), clean tags kept; returns the noise report."""
    from jal_trainer.ner.noisy import add_token_label_noise, token_noise_report_of

    kind = "entity" if data.noise_type == "none" else data.noise_type
    rate = 0.0 if data.noise_type == "none" else (data.noise_rate if kind == "entity" else None)
    train = add_token_label_noise(dataset["train"], kind, rate, seed=data.noise_seed, label_column=TAGS,
                                  clean_column=CLEAN_LABEL_COLUMN, column=data.noise_column)
    report = token_noise_report_of(train, label_column=TAGS, clean_column=CLEAN_LABEL_COLUMN)
    logger.warning(f"Training tags: {report}")
    return DatasetDict({**dataset, "train": train}), report


# ---- the run --------------------------------------------------------------------------------------


MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def run_token(data: Any, model_args: Any, args: JALConfig) -> dict[str, float]:
    """Train one token classifier as the recipe says; return ``test_f1`` and the other test metrics."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification

    from jal_trainer.ner.align import align_labels, check_fast_tokenizer
    from jal_trainer.ner.metrics import compute_metrics_fn
    from jal_trainer.trainer import JALTrainer

    check_token_recipe(data, model_args, args.loss_type)
    set_seed(args.seed)
    source = _source(model_args.model)
    tokenizer = AutoTokenizer.from_pretrained(source)
    check_fast_tokenizer(tokenizer)
    dataset, report = apply_token_noise(load_token_data(data), data)
    names = tag_names(dataset["train"], TAGS)
    aligned = align_labels(dataset, tokenizer, max_length=data.max_length, extra_label_columns=(CLEAN_LABEL_COLUMN,))
    keep = {split: [c for c in MODEL_COLUMNS if c in ds.column_names] for split, ds in aligned.items()}
    # ignore_mismatched_sizes: a checkpoint with another tag set's head gets a new head for these tags
    model = AutoModelForTokenClassification.from_pretrained(
        source, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
        ignore_mismatched_sizes=True)
    callbacks = _callbacks(data, aligned["train"], dataset["train"])
    trainer = JALTrainer(
        model=model, args=args, train_dataset=aligned["train"].select_columns(keep["train"]),
        eval_dataset=aligned["test"].select_columns(keep["test"]),
        data_collator=DataCollatorForTokenClassification(tokenizer), compute_metrics=compute_metrics_fn(names),
        processing_class=tokenizer, callbacks=callbacks,
    )
    train_output = trainer.train()
    metrics = trainer.evaluate(metric_key_prefix="test")
    result = {k if k.startswith("test_") else f"test_{k}": v for k, v in metrics.items()}
    result["train_runtime"] = train_output.metrics.get("train_runtime")
    issues = None
    if data.find_label_issues:
        issues = _label_issues(trainer, aligned["train"], dataset["train"], names, keep["train"], callbacks)
    if trainer.is_world_process_zero():
        _write_run(trainer, data, model_args, args, result, report, issues)
    return result


def _callbacks(data: Any, aligned: Any, words: Any) -> list[Any]:
    """The epoch-mean word probabilities behind the label issues (one forward pass over the training set per epoch)."""
    from jal_trainer.ner.epoch_words import EpochWordProbabilitiesCallback

    if not data.find_label_issues:
        return []
    return [EpochWordProbabilitiesCallback(aligned, [len(t) for t in words["tokens"]])]


def _label_issues(trainer: Any, aligned: Any, words: Any, names: list[str], columns: list[str],
                  callbacks: list[Any]) -> dict[str, Any]:
    """Token and span label issues of the training set, from the epoch-mean word probabilities when kept.

    The final model has memorised most wrong tags after a long schedule; the mean over epochs has
    not (recipes/results/ner_token_issues_epoch_mean.md). Without a finished epoch: the final model.
    """
    from jal_trainer.ner.align import word_predictions
    from jal_trainer.ner.epoch_words import word_indices
    from jal_trainer.ner.issues import find_token_label_issues
    from jal_trainer.predictions import in_dataset_order

    epochs = next((c for c in callbacks if getattr(c, "epochs_seen", 0) and hasattr(c, "word_mean")), None)
    if epochs is not None:
        probs = epochs.word_mean()
        source = f"epoch mean over {epochs.epochs_seen} epochs, each word's first sub-token"
    else:
        with in_dataset_order(trainer):  # group_by_length would return the sentences permuted
            logits = trainer.predict(aligned.select_columns(columns)).predictions
        probs = word_predictions(logits, word_indices(aligned), [len(t) for t in words["tokens"]])
        source = "final model, each word's first sub-token"
    given = read_tags(words, TAGS, names)
    clean = read_tags(words, CLEAN_LABEL_COLUMN, names) if CLEAN_LABEL_COLUMN in words.column_names else None
    return find_token_label_issues(probs, given, names, clean=clean, tokens=words["tokens"], source=source)


def _write_run(trainer: Any, data: Any, model: Any, args: JALConfig, metrics: dict[str, float], report: Any,
               issues: dict[str, Any] | None) -> None:
    from jal_trainer.ner.card import write_token_card
    from jal_trainer.run_outputs import write_run_files
    from jal_trainer.run_summary import cpu_bf16_tip, run_facts, token_summary_table

    out = Path(args.output_dir)
    trainer.save_model()
    trainer.save_state()
    write_run_files(out, data, model, args, metrics, report)
    if issues is not None:
        (out / "label_issues.json").write_text(json.dumps(issues, indent=2))
    write_token_card(out)
    tip = cpu_bf16_tip(args.device.type, bf16=args.bf16, fp16=args.fp16, fine_tuned=True)
    facts = run_facts(out, args.loss_type, args.loss_preset, args.loss_kwargs(), None, "none")
    if data.noise_type != "none":
        facts.append(("training tags", f"{report.token_noise:.1%} of {report.num_tokens} wrong, entity-level noise "
                                       f"{report.entity_noise:.1%} ({data.noise_type})"))
    print(token_summary_table(out, metrics, issues, tip=tip, facts=facts))


__all__ = ["TASK", "apply_token_noise", "check_token_recipe", "is_token_task", "load_token_data", "run_token"]
