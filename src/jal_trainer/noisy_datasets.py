"""Label noise for Hugging Face ``datasets``: synthetic, human (CIFAR-10N) and weak (WRENCH).

A thin layer over :mod:`jal_trainer.noise` (columns are read in :mod:`jal_trainer.noise_columns`).
Whatever the source of the noise, the result looks the same to a Trainer: the label column holds
the noisy labels, the original labels move to a clean-label column (same feature type,
``ClassLabel`` included) and a boolean column flags the samples whose label changed.

Determinism: the noisy label array is computed once, up front, from the whole label column
with the seeded NumPy sampler; ``Dataset.map`` only writes it, by row index. The output and its
fingerprint therefore do not depend on ``num_proc`` or ``batch_size``, and every process of a
distributed run that calls this with the same arguments gets the same data and hits the same
cache files (the fingerprint is derived from the input fingerprint and all the arguments).

Example:
    >>> from datasets import ClassLabel, Dataset, Features, Value
    >>> ds = Dataset.from_dict(
    ...     {"label": [i % 10 for i in range(1000)]},
    ...     features=Features({"label": ClassLabel(num_classes=10)}),
    ... )
    >>> noisy = add_label_noise(ds, "symmetric", 0.4, seed=0)
    >>> noisy.column_names
    ['label', 'clean_label', 'is_noisy']
    >>> noise_report(noisy).noise_rate  # 9 * floor(0.4 / 9 * 100) of every 100
    0.36
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, Value
from numpy.typing import ArrayLike

from jal_trainer.noise import Kind, NoiseReport, Seed, _rng, noise_report_from_labels
from jal_trainer.noise_columns import (
    DATASET_KINDS,
    FeatureSource,
    _feature_array,
    _is_token_column,
    _label_array,
    _noisy_labels,
    _num_classes,
)

__all__ = ["DATASET_KINDS", "add_label_noise", "noise_report"]

# Bump when the noise algorithms change, so that stale cache files are not reused.
_ALGORITHM_VERSION = 1


# --------------------------------------------------------------------------------------------
# fingerprint
# --------------------------------------------------------------------------------------------


def _describe(value: Any) -> Any:
    """A JSON-able, deterministic description of an argument for the fingerprint."""
    if isinstance(value, np.random.Generator):
        return {"generator_state": _describe(value.bit_generator.state)}
    if isinstance(value, np.ndarray):
        digest = hashlib.blake2b(np.ascontiguousarray(value).tobytes(), digest_size=16).hexdigest()
        return {"array": digest, "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fingerprint(ds: Dataset, params: Mapping[str, Any]) -> str:
    text = json.dumps(
        {"input": ds._fingerprint, "version": _ALGORITHM_VERSION, **_describe(dict(params))},
        sort_keys=True,
        default=repr,
    )
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def _noisy_split(
    ds: Dataset,
    kind: Kind,
    rate: float | None,
    *,
    split: str | None,
    seed: Seed,
    sampler: str,
    label_column: str,
    clean_column: str,
    flag_column: str,
    num_classes: int | None,
    column: str | None,
    features: FeatureSource | None,
    std: float,
    tie_break: str,
    abstain: str,
    num_proc: int | None,
    batch_size: int,
    load_from_cache_file: bool | None,
) -> Dataset:
    if _is_token_column(ds, label_column):  # Sequence(ClassLabel) tags: entity-level noise
        from jal_trainer.ner.noisy import add_token_label_noise

        return add_token_label_noise(ds, kind, rate, seed=seed, label_column=label_column, clean_column=clean_column,
                                     flag_column=flag_column, column=column)
    for name in (clean_column, flag_column):
        if name in ds.column_names:
            raise ValueError(
                f"column {name!r} already exists (noise already added?); pass another "
                "clean_column= / flag_column= name or remove the column first."
            )
    if len({label_column, clean_column, flag_column}) != 3:
        raise ValueError("label_column, clean_column and flag_column must be three different names.")
    clean = _label_array(ds, label_column)
    K = _num_classes(ds, label_column, num_classes)
    feature_array = None if features is None else _feature_array(ds, features, split)
    rng = _rng(seed)
    opts = dict(
        kind=kind, rate=rate, sampler=sampler, label_column=label_column, clean_column=clean_column,
        flag_column=flag_column, num_classes=K, column=column, std=std, tie_break=tie_break,
        abstain=abstain,
    )  # fmt: skip
    # A column name is covered by the input fingerprint; an outside array is hashed.
    fingerprint = _fingerprint(
        ds, {**opts, "seed": rng if isinstance(seed, np.random.Generator) else seed,
             "features": features if isinstance(features, str) else feature_array},
    )  # fmt: skip
    noisy, keep = _noisy_labels(ds, clean, kind, rate, K, rng, feature_array, opts)

    new_features = ds.features.copy()
    new_features[clean_column] = ds.features[label_column]
    new_features[flag_column] = Value("bool")

    def write(labels: Any, indices: list[int]) -> dict[str, Any]:
        given = np.asarray(labels, dtype=np.int64)
        new = noisy[np.asarray(indices, dtype=np.int64)]
        return {label_column: new, clean_column: given, flag_column: new != given}

    out = ds.map(
        write,
        with_indices=True,
        input_columns=[label_column],
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        features=new_features,
        new_fingerprint=fingerprint,
        load_from_cache_file=load_from_cache_file,
        desc="Adding label noise",
    )
    if keep is not None:
        out = out.select(np.flatnonzero(keep), new_fingerprint=_fingerprint(out, {"drop": "uncovered or tied"}))
    return out


def add_label_noise(
    dataset: Dataset | DatasetDict,
    kind: Kind,
    rate: float | None = None,
    *,
    seed: Seed,
    sampler: str = "exact",
    splits: str | Sequence[str] = ("train",),
    label_column: str = "label",
    clean_column: str = "clean_label",
    flag_column: str = "is_noisy",
    num_classes: int | None = None,
    column: str | None = None,
    features: FeatureSource | None = None,
    std: float = 0.1,
    tie_break: str = "random",
    abstain: str = "random",
    num_proc: int | None = None,
    batch_size: int = 1000,
    load_from_cache_file: bool | None = None,
) -> Dataset | DatasetDict:
    """Replace the labels of a dataset by noisy ones, keeping the clean labels beside them.

    The label column receives the noisy labels (its feature unchanged); the original labels go
    to ``clean_column`` with the same feature (a ``ClassLabel`` stays a ``ClassLabel``);
    ``flag_column`` (bool) is True where the two differ. Output and fingerprint are identical
    for any ``num_proc`` and ``batch_size`` and on every process of a distributed run (with an
    int seed; a Generator seed must be created identically everywhere).

    Kinds:

    * synthetic (:data:`~jal_trainer.noise.NOISE_KINDS`, a ``{source: target}`` map or a
      ``(K, K)`` matrix ``T[i, j] = P(noisy j | true i)``, rows summing to one): see
      :func:`~jal_trainer.noise.transition_matrix` and :func:`~jal_trainer.noise.corrupt_labels`;
      ``"instance"`` takes ``features`` (a column name, an ``(n, ...)`` array, or a
      ``{split: array}`` dict) and ``std``;
    * ``"column"``: real noisy labels read from ``column`` (e.g. CIFAR-10N's ``"worse_label"``);
    * a ``Sequence(ClassLabel)`` label column (token tags, IOB2) takes ``"entity"`` (entity-level
      noise at ``rate`` = 1 - F1) or ``"column"`` (a column of noisy tag sequences): see
      `jal_trainer.ner.noisy`;
    * ``"majority-vote"``: the majority vote of the weak labels in list column ``column``
      (WRENCH's ``"weak_labels"``, -1 = abstain). Ties: ``tie_break="random"`` (uniform among
      the tied classes, seeded), ``"lowest"`` (smallest index, as WRENCH's ``argmax``) or
      ``"drop"`` (remove the tied rows; with two classes their label is a coin flip).
      All-abstain rows: ``abstain="random"`` (a uniformly random class, seeded, flagged as
      noise where it differs), ``"clean"`` (keep the given label: optimistic, it uses the gold
      label where the weak supervision says nothing) or ``"drop"`` (remove those rows, as
      WRENCH does when training on covered data only).

    Args:
        dataset: a ``Dataset``, or a ``DatasetDict`` of which only ``splits`` are changed.
        kind: see above. rate: flip rate in ``[0, 1]`` for the synthetic kinds.
        seed: int or ``numpy.random.Generator`` (required: no global random state).
        sampler: ``"exact"`` (``floor(T[i, j] * n_i)`` flips per pair, the paper's protocol) or
            ``"iid"``.
        splits: split name(s) to change in a ``DatasetDict`` (default ``"train"``); each split
            uses the same ``seed``.
        label_column, clean_column, flag_column: column names.
        num_classes: ``K`` when the label column is not a ``ClassLabel``.
        num_proc, batch_size, load_from_cache_file: passed to ``Dataset.map``.

    Returns:
        The same type as ``dataset``.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"label": [0, 1] * 50, "worse_label": [1, 1] * 50})
        >>> out = add_label_noise(ds, "column", column="worse_label", seed=0)
        >>> sum(out["is_noisy"]), out[0]["clean_label"], out[0]["label"]
        (50, 0, 1)
    """
    kwargs = dict(
        seed=seed, sampler=sampler, label_column=label_column, clean_column=clean_column,
        flag_column=flag_column, num_classes=num_classes, column=column, features=features,
        std=std, tie_break=tie_break, abstain=abstain, num_proc=num_proc,
        batch_size=batch_size, load_from_cache_file=load_from_cache_file,
    )  # fmt: skip
    if isinstance(dataset, Dataset):
        return _warn_if_unrealised(_noisy_split(dataset, kind, rate, split=None, **kwargs), kind, rate, sampler,
                                   flag_column, clean_column)
    if not isinstance(dataset, DatasetDict):
        raise ValueError(
            f"add_label_noise takes a datasets.Dataset or DatasetDict, got {type(dataset).__name__}; "
            "for arrays use jal_trainer.noise.make_noisy_labels."
        )
    names = [splits] if isinstance(splits, str) else list(splits)
    missing = [name for name in names if name not in dataset]
    if missing or not names:
        raise ValueError(f"splits {missing or names} not in the DatasetDict (splits: {list(dataset)}); pass splits=...")
    if features is not None and not isinstance(features, (str, Mapping)) and len(names) > 1:
        raise ValueError("one feature array cannot serve several splits; pass a column name or {split: array}.")
    out = dict(dataset)
    for name in names:
        out[name] = _warn_if_unrealised(_noisy_split(dataset[name], kind, rate, split=name, **kwargs), kind, rate,
                                        sampler, flag_column, clean_column)
    return DatasetDict(out)


def _expected_rate(split: Dataset, kind: str, rate: float, clean_column: str) -> float:
    """The fraction of these rows the kind's ``T`` moves: ``rate``, less where some classes never flip
    (cifar10-asym)."""
    from jal_trainer.noise import transition_matrix

    if kind == "instance" or clean_column not in split.column_names or _is_token_column(split, clean_column):
        return rate
    clean = _label_array(split, clean_column)
    K = getattr(split.features[clean_column], "num_classes", None) or int(clean.max(initial=0)) + 1
    try:
        T = transition_matrix(kind, rate, K)
    except ValueError:  # the CIFAR kinds fix K themselves
        try:
            T = transition_matrix(kind, rate)
        except ValueError:  # a kind without a matrix
            return rate
    return float((1.0 - np.diagonal(T))[clean].mean())


def _warn_if_unrealised(split: Dataset, kind: Any, rate: float | None, sampler: str, flag_column: str,
                        clean_column: str = "clean_label") -> Dataset:
    """Warn when synthetic noise changed under half the labels its ``T`` moves (the exact sampler on small classes)."""
    if not isinstance(kind, str) or kind in ("column", "majority-vote") or not rate or len(split) == 0:
        return split
    import warnings

    realised = float(split.with_format("numpy", columns=[flag_column])[:][flag_column].mean())
    if realised < 0.5 * _expected_rate(split, kind, rate, clean_column):
        warnings.warn(
            f"Requested {kind} noise {rate} but only {realised:.1%} of the labels changed: the '{sampler}' sampler "
            "flips floor(T[i, j] * n_i) samples per class pair, which is 0 when classes are small. Pass "
            "sampler='iid' (noise_sampler: iid in a recipe) to draw each label from its row instead.",
            stacklevel=3,
        )
    return split


def noise_report(
    data: Dataset | DatasetDict | tuple[ArrayLike, ArrayLike] | ArrayLike,
    noisy: ArrayLike | None = None,
    *,
    T: ArrayLike | None = None,
    num_classes: int | None = None,
    label_column: str = "label",
    clean_column: str = "clean_label",
    split: str = "train",
) -> NoiseReport:
    """Realised noise of a dataset made by :func:`add_label_noise`, or of label arrays.

    Args:
        data: a ``Dataset`` (reads ``label_column`` as noisy and ``clean_column`` as clean), a
            ``DatasetDict`` (reads ``split``), a ``(clean, noisy)`` pair of ``(n,)`` arrays, or
            the ``(n,)`` clean array with ``noisy`` given.
        noisy: the ``(n,)`` noisy labels when ``data`` is the clean array.
        T: the requested ``(K, K)`` matrix (rows sum to one); the Theorem 4.1 bound on ``a``
            then uses it instead of the realised matrix.
        num_classes: ``K``; defaults to the ``ClassLabel``, ``T``, or ``max + 1``.

    Returns:
        A :class:`~jal_trainer.noise.NoiseReport` (``print`` it, or ``.to_dict()``).

    Example:
        >>> noise_report(([0, 0, 1, 1], [0, 1, 1, 1])).noise_rate
        0.25
    """
    if isinstance(data, DatasetDict):
        if split not in data:
            raise ValueError(f"split {split!r} not in the DatasetDict (splits: {list(data)}); pass split=...")
        data = data[split]
    if isinstance(data, Dataset):
        if noisy is not None:
            raise ValueError("with a Dataset the noisy labels come from label_column; drop noisy=.")
        if _is_token_column(data, clean_column):
            from jal_trainer.ner.noisy import token_noise_report_of

            return token_noise_report_of(data, label_column=label_column, clean_column=clean_column)
        clean_arr = _label_array(data, clean_column, "clean-label", "clean_column")
        noisy_arr = _label_array(data, label_column)
        K = _num_classes(data, clean_column, num_classes)
        return noise_report_from_labels(clean_arr, noisy_arr, num_classes=K, T=T)
    if noisy is None:
        if isinstance(data, tuple) and len(data) == 2:
            data, noisy = data
        else:
            raise ValueError("pass the noisy labels: noise_report(clean, noisy) or noise_report((clean, noisy)).")
    return noise_report_from_labels(data, noisy, num_classes=num_classes, T=T)
