"""Real noisy labels kept in a file of their own, joined to the training rows.

Human or programmatic relabellings often come apart from the data (CIFAR-10N ships label
arrays in CIFAR's order). ``noisy_label_path`` names such a file (CSV, JSON, JSONL or Parquet,
read by `datasets`); its ``noisy_label_column`` is joined to the training rows on ``id_column``
(or ``index``) when the data and the file both have it, else row by row, which needs the same
number of rows in the same order. Anything that cannot be matched fails in one line: a
silently shifted label column would look like noise.

Example:
    >>> train = join_noisy_labels(train, data)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import datasets
import pyarrow as pa
import pyarrow.compute as pc

from jal_trainer.data.checks import require_column


def _ids(ds: datasets.Dataset, column: str) -> pa.Array:
    values = ds.with_format("arrow", columns=[column])[:][column]
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _join_key(train: datasets.Dataset, labels: datasets.Dataset, data: Any) -> str | None:
    key = data.id_column or ("index" if "index" in train.column_names and "index" in labels.column_names else None)
    if key is not None:
        require_column(train, key, "id_column", "train")
        require_column(labels, key, "id_column", f"noisy-label file {data.noisy_label_path}")
    return key


def _positions(train: datasets.Dataset, labels: datasets.Dataset, key: str, path: str) -> pa.Array:
    """For every training row, the row of ``labels`` with the same ``key``."""
    wanted, have = _ids(train, key), _ids(labels, key)
    if wanted.type != have.type:
        wanted, have = wanted.cast(pa.string()), have.cast(pa.string())
    if pc.count_distinct(have).as_py() != len(have):
        raise ValueError(f"{key!r} repeats ids in the noisy-label file {path}; give each training row one noisy label.")
    positions = pc.index_in(wanted, value_set=have)
    if positions.null_count:
        first = wanted.filter(pc.is_null(positions))[0].as_py()
        raise ValueError(
            f"{positions.null_count} training rows have no noisy label in {path} (e.g. {key}={first!r}). "
            f"Give the file a row for every training {key}."
        )
    return positions


def join_noisy_labels(train: datasets.Dataset, data: Any) -> datasets.Dataset:
    """``train`` with the file's ``noisy_label_column`` added, matched row by row as the module says.

    Raises:
        ValueError: the file lacks the column, ids repeat or are missing, or (without an id
            column) the row counts differ.
    """
    from jal_trainer.data.files import load_raw_data

    path, column = data.noisy_label_path, data.noisy_label_column
    if not column:
        raise ValueError("noisy_label_path needs noisy_label_column: the column of the file with the noisy labels.")
    if column in train.column_names:
        raise ValueError(f"{column!r} is already a column of the data; drop noisy_label_path or name another column.")
    labels = load_raw_data(path)["train"]
    require_column(labels, column, "noisy_label_column", f"noisy-label file {path}")
    key = _join_key(train, labels, data)
    if key is None:
        if labels.num_rows != train.num_rows:
            raise ValueError(
                f"the noisy-label file {path} has {labels.num_rows} rows for {train.num_rows} training rows, and no "
                "id column to match them. Give the file one row per training row, or set id_column."
            )
        values = labels
    else:
        values = labels.select(_positions(train, labels, key, path).to_numpy(zero_copy_only=False))
    column_values = values.with_format("arrow", columns=[column])[:][column]
    return train.add_column(column, column_values.to_pylist(), feature=labels.features[column])


__all__ = ["join_noisy_labels"]
