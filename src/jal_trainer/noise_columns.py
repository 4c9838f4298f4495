"""Real and synthetic noisy label arrays read from the columns of a `datasets.Dataset`.

The column readers take Arrow data in the data set's row order (an indices mapping is applied
in Arrow, not row by row) and fail with one line naming the column and the fix; the per-kind
functions turn a label, noisy-label or weak-label column into the ``(n,)`` noisy labels that
:func:`jal_trainer.noisy_datasets.add_label_noise` writes.

Example:
    >>> from datasets import Dataset
    >>> _votes_array(Dataset.from_dict({"weak": [[1, -1], [0]]}), "weak").tolist()
    [[1, -1], [0, -1]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Dataset, Value
from numpy.typing import ArrayLike

from jal_trainer.noise import NOISE_KINDS, Kind, Seed, _normalise_kind, majority_vote, make_noisy_labels, tied_rows


DATASET_KINDS: tuple[str, ...] = ("column", "majority-vote")
"""Kinds that read real noisy labels from a column, on top of :data:`~jal_trainer.noise.NOISE_KINDS`."""

_ABSTAIN_RULES = ("random", "clean", "drop")

FeatureSource = str | ArrayLike | Mapping[str, ArrayLike]


def _require_column(ds: Dataset, name: str, role: str, option: str) -> None:
    if name not in ds.column_names:
        raise ValueError(
            f"{role} column {name!r} is not in the dataset (columns: {ds.column_names}); "
            f"pass the right name with {option}=..."
        )


def _arrow_column(ds: Dataset, name: str) -> Any:
    """The column as a pyarrow ChunkedArray, in the dataset's row order.

    Reading through ``ds[name]`` or ``with_format`` costs seconds per million rows on a
    shuffled or selected dataset; taking the indices mapping in Arrow costs milliseconds.
    """
    column = ds.data.column(name)
    indices = getattr(ds, "_indices", None)
    return column if indices is None else column.take(indices.column(0))


def _label_array(ds: Dataset, name: str, role: str = "label", option: str = "label_column") -> np.ndarray:
    """``(n,)`` int64 labels of column ``name``, or a ValueError saying how to fix the column."""
    _require_column(ds, name, role, option)
    feature = ds.features[name]
    dtype = getattr(feature, "dtype", None)
    if not isinstance(feature, ClassLabel) and not (isinstance(feature, Value) and dtype and "int" in dtype):
        raise ValueError(
            f"{role} column {name!r} must hold integer class indices (ClassLabel or int), got "
            f"{feature}; encode it first, e.g. dataset.class_encode_column({name!r})."
        )
    column = _arrow_column(ds, name)
    if column.null_count:
        raise ValueError(f"{role} column {name!r} has {column.null_count} missing values; fill or drop them first.")
    return np.asarray(column.to_numpy(), dtype=np.int64)


def _votes_array(ds: Dataset, name: str) -> np.ndarray:
    """``(n, m)`` int64 weak labels of list column ``name``; ragged rows padded with -1 (abstain)."""
    _require_column(ds, name, "weak-label", "column")
    column = _arrow_column(ds, name).combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        values = np.asarray(column.flatten().to_numpy(zero_copy_only=False))
        lengths = np.full(len(column), column.type.list_size, dtype=np.int64)
    elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        offsets = np.asarray(column.offsets.to_numpy(), dtype=np.int64)
        values = np.asarray(column.flatten().to_numpy(zero_copy_only=False))
        lengths = np.diff(offsets)
    else:
        raise ValueError(
            f"weak-label column {name!r} must be a list of ints per row (one vote per labelling "
            f"function, -1 = abstain), got {ds.features[name]}."
        )
    if values.size and values.dtype.kind not in "iu":
        raise ValueError(f"weak-label column {name!r} must hold integer votes without nulls, got {values.dtype}.")
    votes = np.full((lengths.size, int(lengths.max(initial=0))), -1, dtype=np.int64)
    rows = np.repeat(np.arange(lengths.size), lengths)
    starts = np.cumsum(lengths) - lengths
    votes[rows, np.arange(values.size) - np.repeat(starts, lengths)] = values
    return votes


def _feature_array(ds: Dataset, features: FeatureSource, split: str | None) -> np.ndarray:
    if isinstance(features, str):
        _require_column(ds, features, "feature", "features")
        return np.asarray(ds.with_format("numpy")[features][:])
    if isinstance(features, Mapping):
        if split not in features:
            raise ValueError(
                f"features has no entry for split {split!r} (keys: {list(features)}); give one array per split."
            )
        return np.asarray(features[split])
    return np.asarray(features)


def _is_token_column(ds: Dataset, name: str) -> bool:
    """True for a ``Sequence(ClassLabel)`` column: token labels, handled by `jal_trainer.ner.noisy`."""
    return isinstance(getattr(ds.features.get(name), "feature", None), ClassLabel)


def _num_classes(ds: Dataset, label_column: str, num_classes: int | None) -> int | None:
    feature = ds.features[label_column]
    if isinstance(feature, ClassLabel):
        if num_classes is not None and num_classes != feature.num_classes:
            raise ValueError(
                f"num_classes={num_classes} contradicts the ClassLabel of {label_column!r} "
                f"({feature.num_classes} classes); drop num_classes= or fix the feature."
            )
        return feature.num_classes
    return num_classes


def _noisy_from_column(
    ds: Dataset, column: str | None, label_column: str, num_classes: int | None, clean: np.ndarray
) -> np.ndarray:
    if column is None:
        raise ValueError("kind 'column' needs the noisy label column: pass column='worse_label' (for example).")
    if column == label_column:
        raise ValueError(f"column={column!r} is the label column itself; name the column with the noisy labels.")
    noisy = _label_array(ds, column, "noisy-label", "column")
    K = num_classes if num_classes is not None else int(max(clean.max(initial=0), noisy.max(initial=0))) + 1
    if noisy.size and (noisy.min() < 0 or noisy.max() >= K):
        raise ValueError(f"noisy-label column {column!r} has values outside [0, {K}); remap it or pass num_classes.")
    return noisy


def _noisy_from_votes(
    ds: Dataset,
    column: str | None,
    num_classes: int | None,
    clean: np.ndarray,
    seed: Seed,
    tie_break: str,
    abstain: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Majority-vote labels ``(n,)`` and the ``(n,)`` mask of rows to keep (``abstain``/``tie_break`` \"drop\")."""
    if column is None:
        raise ValueError("kind 'majority-vote' needs the weak-label column: pass column='weak_labels'.")
    if abstain not in _ABSTAIN_RULES:
        raise ValueError(f"unknown abstain rule {abstain!r}; use one of {', '.join(_ABSTAIN_RULES)}.")
    votes = _votes_array(ds, column)
    K = num_classes if num_classes is not None else int(max(clean.max(initial=0), votes.max(initial=0))) + 1
    noisy, covered = majority_vote(votes, K, seed=seed, tie_break=tie_break)
    if abstain == "clean":
        noisy[~covered] = clean[~covered]
    keep = covered if abstain == "drop" else np.ones_like(covered)
    if tie_break == "drop":  # a tie is a coin flip, as an uncovered row is: train on neither
        keep = keep & ~tied_rows(votes, K)
    return noisy, keep


def _noisy_labels(
    ds: Dataset,
    clean: np.ndarray,
    kind: Kind,
    rate: float | None,
    K: int | None,
    rng: np.random.Generator,
    feature_array: np.ndarray | None,
    opts: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``(n,)`` noisy labels, and a ``(n,)`` bool mask of rows to keep (or None: keep all)."""
    name = _normalise_kind(kind) if isinstance(kind, str) else None
    if name in DATASET_KINDS and rate is not None:
        raise ValueError(f"kind {kind!r} reads real noisy labels and takes no rate; drop rate=.")
    if name == "column":
        return _noisy_from_column(ds, opts["column"], opts["label_column"], K, clean), None
    if name == "majority-vote":
        noisy, keep = _noisy_from_votes(ds, opts["column"], K, clean, rng, opts["tie_break"], opts["abstain"])
        return noisy, (None if keep.all() else keep)
    if opts["column"] is not None:
        raise ValueError(f"column= is only read by kinds {DATASET_KINDS}; drop it for kind {kind!r}.")
    if name is not None and name not in NOISE_KINDS:
        raise ValueError(
            f"unknown noise kind {kind!r}; valid kinds: {', '.join(NOISE_KINDS + DATASET_KINDS)}, a "
            "{source: target} class map, or a (K, K) matrix."
        )
    noisy, _ = make_noisy_labels(
        clean, kind, rate, seed=rng, num_classes=K, sampler=opts["sampler"], features=feature_array, std=opts["std"]
    )
    return noisy, None
