"""`add_label_noise` for a ``Sequence(ClassLabel)`` tag column: entity noise or a real noisy tag column.

Same contract as the class-label version (`jal_trainer.noisy_datasets`): the tag column receives
the noisy tags, the original tags move to ``clean_column`` (same feature) and ``flag_column`` is
True for the sentences with at least one changed tag. Kinds:

* ``"entity"``: :func:`~jal_trainer.ner.noise.entity_noise` at an entity-level rate (1 - F1);
* ``"column"``: the tags of another column over the same tokens (NoiseBench's ``noise_crowd``;
  a list of tag strings, of ``ClassLabel`` ints, or of plain ints in the same tag set).

Example:
    >>> from datasets import ClassLabel, Dataset, Features, Sequence
    >>> feature = Sequence(ClassLabel(names=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]))
    >>> ds = Dataset.from_dict({"ner_tags": [[1, 2, 0, 3, 0]] * 20}, features=Features({"ner_tags": feature}))
    >>> noisy = add_token_label_noise(ds, "entity", 0.5, seed=0, label_column="ner_tags")
    >>> round(token_noise_report_of(noisy, label_column="ner_tags").entity_noise, 1)
    0.5
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, Value

from jal_trainer.ner.noise import TokenNoiseReport, entity_noise, token_noise_report
from jal_trainer.ner.tags import entity_types

TOKEN_KINDS = ("entity", "column")


def is_tag_sequence(feature: Any) -> bool:
    """True for a list feature of ``ClassLabel`` (``Sequence(ClassLabel)`` in datasets)."""
    return isinstance(getattr(feature, "feature", None), ClassLabel)


def tag_names(ds: Dataset, column: str) -> list[str]:
    """The IOB2 tag names of a ``Sequence(ClassLabel)`` column, or a clear error."""
    if column not in ds.column_names:
        raise ValueError(f"tag column {column!r} is not in the dataset (columns: {ds.column_names}); name it.")
    feature = ds.features[column]
    if not is_tag_sequence(feature):
        raise ValueError(
            f"token labels must be a sequence of tags per sentence (Sequence(ClassLabel)), but column {column!r} is "
            f"{feature}. For one label per example use the sequence-classification task; otherwise cast the column, "
            f"e.g. ds.cast_column({column!r}, Sequence(ClassLabel(names=[...])))."
        )
    names = list(feature.feature.names)
    entity_types(names)  # raises when the names are not IOB2
    return names


def _lists(ds: Dataset, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of a list column in the dataset's row order, read through Arrow."""
    chunked = ds.data.column(column)
    indices = getattr(ds, "_indices", None)
    array = (chunked if indices is None else chunked.take(indices.column(0))).combine_chunks()
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        raise ValueError(f"column {column!r} must hold one list of tags per sentence, got {ds.features[column]}.")
    offsets = np.asarray(array.offsets.to_numpy(), dtype=np.int64)
    return np.asarray(array.flatten().to_numpy(zero_copy_only=False)), offsets - offsets[0]  # 0-based if sliced


def read_tags(ds: Dataset, column: str, names: list[str]) -> list[list[str]]:
    """Tag strings per sentence of ``column`` in the tag set ``names`` (strings or indices).

    Raises:
        ValueError: tags outside ``names``, or a column that does not hold lists.
    """
    values, offsets = _lists(ds, column)
    feature = getattr(ds.features[column], "feature", None)
    if isinstance(feature, ClassLabel):
        strings = np.asarray(feature.names, dtype=object)[values.astype(np.int64)] if values.size else values
    elif isinstance(feature, Value) and feature.dtype == "string":
        strings = values.astype(object)
    elif isinstance(feature, Value) and "int" in feature.dtype:
        if values.size and (values.min() < 0 or values.max() >= len(names)):
            raise ValueError(f"column {column!r} has tag indices outside [0, {len(names)}) of the tag set {names}.")
        strings = np.asarray(names, dtype=object)[values.astype(np.int64)]
    else:
        raise ValueError(f"column {column!r} must hold tag strings or ints per token, got {ds.features[column]}.")
    unknown = sorted(set(strings.tolist()) - set(names))
    if unknown:
        raise ValueError(
            f"column {column!r} has tags {unknown} outside the ClassLabel {names}; map them into the tag set "
            "(or add the type to the label column's ClassLabel) first."
        )
    return [strings[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])]


def add_token_label_noise(
    ds: Dataset, kind: str, rate: float | None = None, *, seed: int | None = None, label_column: str = "ner_tags",
    clean_column: str = "clean_label", flag_column: str = "is_noisy", column: str | None = None,
    errors: Mapping[str, float] | None = None,
) -> Dataset:
    """Noisy tags in ``label_column``, clean ones in ``clean_column``, changed sentences in ``flag_column``.

    Args:
        ds: a ``Dataset`` whose ``label_column`` is ``Sequence(ClassLabel)`` in IOB2.
        kind: ``"entity"`` (with ``rate``, the entity-level noise 1 - F1) or ``"column"`` (with ``column``).
        seed: seed of the entity noise. errors: the error mix of :func:`entity_noise`.
    """
    names = tag_names(ds, label_column)
    for name in (clean_column, flag_column):
        if name in ds.column_names:
            raise ValueError(f"column {name!r} already exists (noise already added?); remove it or pass another name.")
    clean = read_tags(ds, label_column, names)
    if kind == "entity":
        if rate is None:
            raise ValueError("kind 'entity' needs rate=, the entity-level noise (1 - F1) to reach, e.g. 0.3.")
        if seed is None:
            raise ValueError("kind 'entity' needs seed= (an int): the noise is drawn with no global random state.")
        noisy = entity_noise(clean, rate, seed=seed, types=entity_types(names), errors=errors)
    elif kind == "column":
        if column is None or column == label_column:
            raise ValueError("kind 'column' needs column=, the column with the noisy tags (e.g. noise_crowd).")
        if rate is not None:
            raise ValueError("kind 'column' reads real noisy tags and takes no rate; drop rate=.")
        if column not in ds.column_names:
            raise ValueError(f"noisy tag column {column!r} is not in the dataset (columns: {ds.column_names}).")
        noisy = read_tags(ds, column, names)
        if [len(t) for t in noisy] != [len(t) for t in clean]:
            raise ValueError(f"column {column!r} does not have one tag per token of {label_column!r} in every row.")
    else:
        raise ValueError(f"unknown token noise kind {kind!r}; use one of {', '.join(TOKEN_KINDS)} (or none).")
    index = {name: i for i, name in enumerate(names)}
    encoded = [[index[t] for t in sentence] for sentence in noisy]
    flags = [a != b for a, b in zip(clean, noisy)]
    out = ds.rename_column(label_column, clean_column)
    out = out.add_column(label_column, encoded, feature=ds.features[label_column])
    return out.add_column(flag_column, flags, feature=Value("bool"))


def token_noise_report_of(ds: Dataset | DatasetDict, *, label_column: str = "ner_tags",
                          clean_column: str = "clean_label", split: str = "train") -> TokenNoiseReport:
    """Token- and entity-level noise of a dataset made by :func:`add_token_label_noise`."""
    if isinstance(ds, DatasetDict):
        ds = ds[split]
    names = tag_names(ds, clean_column)
    return token_noise_report(read_tags(ds, clean_column, names), read_tags(ds, label_column, names))


__all__ = ["TOKEN_KINDS", "add_token_label_noise", "is_tag_sequence", "read_tags", "tag_names", "token_noise_report_of"]
