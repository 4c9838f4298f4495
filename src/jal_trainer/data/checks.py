"""Checks of a data set before any model is loaded: one-line errors that name the problem and the fix.

`jal train` runs them on the data a recipe names; :func:`check_trainer_dataset` runs the same
label checks when `JALTrainer` is handed a data set from Python, so a missing or string label
column fails with a message instead of ``KeyError: 'labels'`` or ``too many dimensions 'str'``
deep inside the collator.

Example:
    >>> from datasets import Dataset
    >>> check_trainer_dataset(Dataset.from_dict({"text": ["a"]}), role="train_dataset")
    Traceback (most recent call last):
    ...
    ValueError: train_dataset has no label column ('label' or 'labels'); its columns are ['text']. Rename yours with dataset.rename_column(<name>, 'label').
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LABEL_NAMES = ("labels", "label")


def require_column(ds: datasets.Dataset, name: str, option: str, split: str) -> None:
    """Fail when ``name`` (the value of recipe field ``option``) is not a column of ``split``."""
    if name not in ds.column_names:
        raise ValueError(
            f"{option}={name!r} is not a column of the {split} split; its columns are {ds.column_names}. "
            f"Set {option} to one of them."
        )


def check_not_empty(dds: Mapping[str, datasets.Dataset]) -> None:
    """Fail on a missing ``train`` split or on any split without rows."""
    if "train" not in dds:
        raise ValueError(
            f"the data has no 'train' split (splits: {list(dds)}). Name the training file or folder 'train', or give "
            "a single file (it becomes the train split)."
        )
    for split, ds in dds.items():
        if ds.num_rows == 0:
            raise ValueError(f"the {split} split is empty (0 rows). Check the file or filter that produced it.")


def label_values(ds: datasets.Dataset, column: str) -> np.ndarray:
    """(n,) int64 label ids of a ClassLabel or int column, read from Arrow (no Python loop over rows)."""
    column_data = ds.with_format("arrow", columns=[column])[:][column]
    if column_data.null_count:
        raise ValueError(
            f"label column {column!r} has {column_data.null_count} missing values; drop those rows "
            "(dataset.filter(lambda r: r[...] is not None)) or fill them."
        )
    return np.asarray(column_data.to_numpy(zero_copy_only=False), dtype=np.int64)


def check_label_range(ds: datasets.Dataset, column: str, names: Sequence[str], split: str) -> np.ndarray:
    """The (n,) ids of ``column``; fail when one lies outside ``0 .. len(names) - 1``."""
    values = label_values(ds, column)
    bad = values[(values < 0) | (values >= len(names))]
    if bad.size:
        raise ValueError(
            f"the {split} split has {bad.size} labels in {column!r} outside the {len(names)} class names "
            f"(e.g. {int(bad[0])}; names {list(names)[:10]}). Fix those rows or the ClassLabel names."
        )
    return values


def check_several_classes(labels: np.ndarray, names: Sequence[str], column: str = "label") -> None:
    """Fail when the training labels hold a single class: nothing to classify."""
    present = np.unique(labels)
    if present.size < 2:
        only = names[int(present[0])] if present.size else "none"
        raise ValueError(
            f"the training labels in {column!r} hold a single class ({only!r}); a classifier needs at least two. "
            "Check label_column and the data."
        )


def check_head(config: Any, names: Sequence[str], model: str) -> None:
    """Fail when a checkpoint that already has a classification head has another number of classes.

    A base encoder (``BertModel``) gets a new head of ``len(names)`` classes; a fine-tuned
    classifier keeps its head, so its ``num_labels`` must equal the data's class count.
    """
    architectures = getattr(config, "architectures", None) or []
    has_head = any(a.endswith(("ForSequenceClassification", "ForImageClassification")) for a in architectures)
    if has_head and config.num_labels != len(names):
        raise ValueError(
            f"model={model!r} has a classification head of {config.num_labels} classes but the data has "
            f"{len(names)} ({list(names)[:10]}). Use a base checkpoint without a head, or data with the head's classes."
        )


def check_data_arguments(data: Any) -> None:
    """Fail on recipe data fields (`DataArguments`) that contradict each other or hold unknown values."""
    given = [f for f in ("clean_label_column", "noisy_label_column") if getattr(data, f)]
    if len(given) == 2:
        raise ValueError("give clean_label_column (the labels are noisy, gold beside them) or noisy_label_column "
                         "(the labels are gold, noisy beside them), not both.")
    if given and data.noise_type not in ("none", "column"):
        raise ValueError(f"{given[0]} means the data carries its own noise; drop noise_type={data.noise_type!r} or "
                         f"{given[0]}.")
    if data.noisy_label_path and not data.noisy_label_column:
        raise ValueError("noisy_label_path needs noisy_label_column: the column of that file with the noisy labels.")
    for name, value, choices in (("tie_break", data.tie_break, ("random", "lowest", "drop")),
                                 ("abstain", data.abstain, ("random", "drop"))):
        if value not in choices:
            raise ValueError(f"{name}={value!r} is unknown. Choose {', '.join(choices[:-1])} or {choices[-1]}.")
    if data.test_size <= 0 or data.validation_size <= 0:
        raise ValueError("test_size and validation_size must be > 0 (a fraction below 1, or a count of rows).")
    if data.mark_entities and len(data.entity_markers) != 2:
        raise ValueError(f"entity_markers needs two names (entity1, entity2), got {data.entity_markers}.")
    if data.data_path is not None:
        from jal_trainer.data.files import data_path_exists

        if not data_path_exists(data.data_path):
            raise FileNotFoundError(
                f"data_path={data.data_path!r} names no file, glob match, folder or Hub id. Fix data_path."
            )


def _label_column(ds: datasets.Dataset, role: str) -> str:
    name = next((c for c in LABEL_NAMES if c in ds.column_names), None)
    if name is None:
        raise ValueError(
            f"{role} has no label column ('label' or 'labels'); its columns are {ds.column_names}. Rename yours "
            "with dataset.rename_column(<name>, 'label')."
        )
    return name


def _inner(feature: Any) -> Any:
    """The per-item feature of a label column (token classification stores a list per row)."""
    while isinstance(feature, (datasets.Sequence, datasets.features.features.List, list)):
        feature = feature.feature if not isinstance(feature, list) else feature[0]
    return feature


def check_trainer_dataset(dataset: Any, *, role: str, num_labels: int | None = None) -> None:
    """The label checks of `jal train` for a data set handed to `JALTrainer` from Python.

    Checks a ``datasets.Dataset`` (or the ``.dataset`` of a torch wrapper): a ``label`` or
    ``labels`` column exists, holds integer ids (ClassLabel or int, not strings or floats), and
    when the model's ``num_labels`` is known, every id (``-100`` = ignored) is below it and a
    ClassLabel has exactly that many names. Other data set types pass unchecked.

    Raises:
        ValueError: one line naming the problem and the fix.
    """
    if isinstance(dataset, Mapping):  # several eval sets
        for name, part in dataset.items():
            check_trainer_dataset(part, role=f"{role}[{name!r}]", num_labels=num_labels)
        return
    ds = dataset if isinstance(dataset, datasets.Dataset) else getattr(dataset, "dataset", None)
    if not isinstance(ds, datasets.Dataset):
        return
    column = _label_column(ds, role)
    feature = _inner(ds.features[column])
    dtype = getattr(feature, "dtype", "")
    if not isinstance(feature, datasets.ClassLabel) and not ("int" in str(dtype)):
        raise ValueError(
            f"{role} column {column!r} holds {dtype or type(feature).__name__} values, not class ids; encode them "
            f"first: dataset = dataset.class_encode_column({column!r}) (string labels get sorted names)."
        )
    if num_labels is None:
        return
    if isinstance(feature, datasets.ClassLabel) and feature.num_classes != num_labels:
        raise ValueError(
            f"{role} column {column!r} has {feature.num_classes} classes but the model's head has num_labels="
            f"{num_labels}. Build the model with num_labels={feature.num_classes}."
        )
    values = ds.with_format("arrow", columns=[column])[:][column]
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):  # lists of token labels
        values = pc.list_flatten(values)
    kept = pc.filter(values, pc.not_equal(values, -100)) if len(values) else values
    low, high = pc.min(kept).as_py(), pc.max(kept).as_py()
    if high is not None and (low < 0 or high >= num_labels):
        raise ValueError(
            f"{role} column {column!r} has labels in [{low}, {high}] but the model's head has num_labels={num_labels}. "
            "Build the model with as many labels as classes, or remap the labels to 0..num_labels-1."
        )


__all__ = ["check_data_arguments", "check_head", "check_label_range", "check_not_empty", "check_several_classes",
           "check_trainer_dataset", "label_values", "require_column"]
