"""The data contract of `jal train`: name the columns, encode the labels, make the missing splits.

Whatever the source (a CSV, a Hub id, an image folder, a WRENCH folder, a built-in set),
:func:`prepare_dataset` returns the same shape, checked before any model is loaded:

* splits ``train`` and ``test`` (and ``validation`` when the source has one or one is needed);
* ``label``: a ``ClassLabel``, the same names in every split; for the test and validation
  splits the gold labels where known (``clean_label_column``), else ``label_column``;
* the input: ``text_column`` (and ``text_pair_column``) as they are, or images as uint8
  ``pixel_values`` (C, H, W);
* a column of real noisy labels for the training split when the recipe names one
  (:data:`OBSERVED` for ``clean_label_column``, else ``noisy_label_column``), encoded with the
  same names; WRENCH's ``weak_labels``; ``index`` and ``id_column`` when present.

Label order (stable and documented): a ``ClassLabel`` keeps its names; integer labels become
the distinct values in increasing order (``0..K-1`` stay as they are); string labels become the
distinct strings in sorted order, as ``datasets``' ``class_encode_column`` orders them; the
values of every split and label column are pooled first, so the ids agree across splits.

Example:
    >>> from datasets import Dataset, DatasetDict
    >>> from jal_trainer.arguments import DataArguments
    >>> raw = DatasetDict({"train": Dataset.from_dict({"text": list("abcdef"), "label": ["pos", "neg"] * 3})})
    >>> dds = prepare_dataset(raw, DataArguments(test_size=2))
    >>> dds["train"].features["label"].names, dds["test"].num_rows
    (['neg', 'pos'], 2)
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np

from jal_trainer.data.checks import check_label_range, check_not_empty, check_several_classes, require_column

LABEL = "label"
OBSERVED = "observed_label"  # the observed (noisy) labels of a set whose gold labels are in clean_label_column


def input_columns(dds: datasets.DatasetDict, data: Any, vision: bool) -> list[str]:
    """The input columns the model reads: the image column, or the text (and pair) columns."""
    train = dds["train"]
    if not vision:
        return [c for c in (data.text_column, data.text_pair_column) if c]
    if data.image_column:
        return [data.image_column]
    if "pixel_values" in train.column_names:
        return ["pixel_values"]
    images = [k for k, f in train.features.items() if isinstance(f, datasets.Image)]
    if not images:
        raise ValueError(
            f"the data has no image column (columns: {train.column_names}). Set image_column, or use a text model."
        )
    return images[:1]


def _noisy_column(data: Any) -> str | None:
    """The column of the source data that holds real noisy labels beside gold ones, or None."""
    if data.noisy_label_column:
        return data.noisy_label_column
    return data.noise_column if data.noise_type == "column" else None


def noisy_source(data: Any) -> str | None:
    """The column of real noisy labels to train on after :func:`prepare_dataset`, or None."""
    return OBSERVED if data.clean_label_column else _noisy_column(data)


def _label_roles(data: Any) -> tuple[str, str | None]:
    """(source of ``label``, source of the observed labels) in the training split."""
    if data.clean_label_column:
        return data.clean_label_column, data.label_column
    return data.label_column, _noisy_column(data)


def _check_columns(dds: datasets.DatasetDict, data: Any, inputs: list[str], vision: bool) -> None:
    options = {c: "image_column" for c in inputs} if vision else {data.text_column: "text_column",
                                                                  data.text_pair_column: "text_pair_column"}
    gold, observed = _label_roles(data)
    label_options = {data.label_column: "label_column", data.clean_label_column: "clean_label_column",
                     _noisy_column(data): "noisy_label_column" if data.noisy_label_column else "noise_column"}
    for split, ds in dds.items():
        for column in inputs:
            require_column(ds, column, options[column], split)
        if split == "train":
            for column in (gold, observed):
                if column:
                    require_column(ds, column, label_options[column], split)
        elif gold not in ds.column_names:
            require_column(ds, data.label_column, "label_column", split)


def _select(ds: datasets.Dataset, split: str, data: Any, inputs: list[str]) -> datasets.Dataset:
    """Keep the columns the run uses and give the labels their canonical names."""
    gold, observed = _label_roles(data)
    if split != "train" and gold not in ds.column_names:
        gold = data.label_column  # no gold labels here: evaluate on the given ones
    keep = [*inputs, gold]
    if split == "train" and observed:
        keep.append(observed)
    extras = [data.noise_column, "weak_labels", data.id_column, "index"]
    keep += [c for c in extras if c and c in ds.column_names and c not in keep]
    ds = ds.select_columns(list(dict.fromkeys(keep)))
    # two steps, so that a rename never collides with a column that is renamed next
    renames = {gold: "__jal_gold__"}
    if split == "train" and observed and data.clean_label_column:
        renames[observed] = "__jal_observed__"
    ds = ds.rename_columns(renames)
    final = {"__jal_gold__": LABEL, "__jal_observed__": OBSERVED}
    return ds.rename_columns({k: v for k, v in final.items() if k in ds.column_names})


def _to_pixels(ds: datasets.Dataset, column: str, split: str) -> datasets.Dataset:
    """Images as uint8 ``pixel_values`` (C, H, W) of one square size (the models' input)."""
    from jal_trainer.data.images import _image_column_to_pixels

    if column != "pixel_values":
        if not isinstance(ds.features[column], datasets.Image):
            raise ValueError(f"image_column={column!r} of the {split} split holds {ds.features[column]}, not images.")
        ds = _image_column_to_pixels(ds, column)
    shape = ds.features["pixel_values"].shape if hasattr(ds.features["pixel_values"], "shape") else None
    if shape is not None and shape[1] != shape[2]:
        raise ValueError(
            f"the {split} images are {shape[1]}x{shape[2]} pixels; the vision models take square images. "
            "Resize or crop them to one square size first."
        )
    return ds


def _kind(feature: Any, column: str, split: str) -> str:
    if isinstance(feature, datasets.ClassLabel):
        return "classlabel"
    dtype = str(getattr(feature, "dtype", ""))
    if "int" in dtype:
        return "int"
    if dtype in ("string", "large_string", "bool"):
        return "string"
    if "float" in dtype:
        return "float"
    raise ValueError(
        f"label column {column!r} of the {split} split holds {feature}, not class labels. Give a column of "
        "integers or strings (one label per row)."
    )


def _class_names(dds: datasets.DatasetDict, columns: list[str]) -> list[str]:
    """The pooled class names of the label columns (see the module docstring for the order)."""
    kinds = {(s, c): _kind(ds.features[c], c, s) for s, ds in dds.items() for c in columns if c in ds.column_names}
    labelled = {k for k, v in kinds.items() if v == "classlabel"}
    if labelled:
        split, column = sorted(labelled)[0]
        return list(dds[split].features[column].names)
    found = set(kinds.values())
    if len(found) > 1 and found != {"int", "float"}:
        raise ValueError(
            f"the label columns mix types across splits ({ {f'{s}.{c}': k for (s, c), k in kinds.items()} }). "
            "Give every split the same label type (all strings or all integers)."
        )
    values: set[Any] = set()
    for (split, column), kind in kinds.items():
        unique = dds[split].unique(column)
        if None in unique:
            raise ValueError(f"label column {column!r} of the {split} split has missing values; drop or fill them.")
        values.update(unique)
    if found <= {"int", "float"}:
        if any(float(v) != int(v) for v in values):
            raise ValueError(f"label values {sorted(values)[:5]} are not whole numbers. Give integer or string labels.")
        return [str(v) for v in sorted({int(v) for v in values})]
    names = sorted(str(v) for v in values)
    numeric = [n.lstrip("-").isdigit() for n in names]
    if any(numeric) and not all(numeric):
        raise ValueError(
            f"the labels mix numbers and names (e.g. {names[numeric.index(True)]!r} and "
            f"{names[numeric.index(False)]!r})."
            " Give one kind of label, or map the numbers to names first."
        )
    return names


def _encode(ds: datasets.Dataset, column: str, names: list[str], split: str) -> datasets.Dataset:
    """Cast ``column`` to ``ClassLabel(names)``, mapping values by their string form."""
    feature = ds.features[column]
    target = datasets.ClassLabel(names=names)
    if isinstance(feature, datasets.ClassLabel):
        if list(feature.names) == names:
            return ds
        lookup = {i: names.index(n) if n in names else -1 for i, n in enumerate(feature.names)}
        convert = lookup.__getitem__
    else:
        index = {n: i for i, n in enumerate(names)}
        convert = lambda v: index.get(str(int(v)) if isinstance(v, float) else str(v), -1)  # noqa: E731
    features = ds.features.copy()
    features[column] = target
    out = ds.map(lambda batch: {column: [convert(v) for v in batch[column]]}, batched=True, features=features,
                 desc=f"Encoding {column}")
    missing = int((np.asarray(out.with_format("numpy", columns=[column])[:][column]) < 0).sum())
    if missing:
        raise ValueError(f"{missing} labels in {column!r} of the {split} split are not among the class names {names}.")
    return out


def encode_labels(dds: datasets.DatasetDict, columns: list[str]) -> datasets.DatasetDict:
    """Give every label column of every split the same ``ClassLabel`` (pooled names, module order)."""
    names = _class_names(dds, columns)
    out = {}
    for split, ds in dds.items():
        for column in columns:
            if column in ds.column_names:
                ds = _encode(ds, column, names, split)
                check_label_range(ds, column, names, split)
        out[split] = ds
    return datasets.DatasetDict(out)


def stratified_split(ds: datasets.Dataset, size: float, seed: int, what: str) -> datasets.DatasetDict:
    """``train_test_split`` stratified by ``label``, with a one-line error when a class is too small."""
    size = int(size) if size >= 1 else size  # a count of rows, or a fraction
    try:
        return ds.train_test_split(test_size=size, stratify_by_column=LABEL, seed=seed)
    except ValueError as err:
        raise ValueError(
            f"cannot hold out a stratified {what} split of {size} from {ds.num_rows} rows ({err}). Change "
            f"{'test_size' if what == 'test' else 'validation_size'}, or give a {what} split in the data."
        ) from err


def _split_sizes(dds: datasets.DatasetDict, data: Any, need_validation: bool) -> datasets.DatasetDict:
    splits = dict(dds)
    for alias in ("valid", "dev"):
        if alias in splits and "validation" not in splits:
            splits["validation"] = splits.pop(alias)
    if "test" not in splits:
        parts = stratified_split(splits["train"], data.test_size, data.subset_seed, "test")
        splits["train"], splits["test"] = parts["train"], parts["test"]
    if need_validation and "validation" not in splits:
        parts = stratified_split(splits["train"], data.validation_size, data.subset_seed, "validation")
        splits["train"], splits["validation"] = parts["train"], parts["test"]
    order = [s for s in ("train", "validation", "test") if s in splits]
    return datasets.DatasetDict({s: splits[s] for s in order})


def prepare_dataset(dds: datasets.DatasetDict, data: Any, *, vision: bool = False,
                    need_validation: bool = False) -> datasets.DatasetDict:
    """Bring a loaded ``DatasetDict`` to the contract of the module docstring, or fail in one line.

    Args:
        dds: the splits as loaded (``train`` required; ``valid``/``dev`` count as ``validation``).
        data: the recipe's `DataArguments` (column names, ``test_size``, ``subset_seed``, ...).
        vision: the model reads images (else text).
        need_validation: make a stratified ``validation`` split from the training rows when the
            data has none (``validation_size``).

    Returns:
        ``train``, ``test`` and, when present or needed, ``validation``. Splits other than these
        (e.g. ``unlabeled``) are dropped.
    """
    check_not_empty(dds)
    dds = datasets.DatasetDict({s: ds for s, ds in dds.items() if s in ("train", "test", "validation", "valid", "dev")})
    if data.noisy_label_path:
        from jal_trainer.data.noisy_file import join_noisy_labels

        dds["train"] = join_noisy_labels(dds["train"], data)
    inputs = input_columns(dds, data, vision)
    _check_columns(dds, data, inputs, vision)
    dds = datasets.DatasetDict({s: _select(ds, s, data, inputs) for s, ds in dds.items()})
    if vision:
        dds = datasets.DatasetDict({s: _to_pixels(ds, inputs[0], s) for s, ds in dds.items()})
    observed = noisy_source(data)
    dds = encode_labels(dds, [LABEL, *([observed] if observed else [])])
    names = dds["train"].features[LABEL].names
    check_several_classes(dds["train"].with_format("numpy", columns=[LABEL])[:][LABEL], names, data.label_column)
    dds = _split_sizes(dds, data, need_validation)
    check_not_empty(dds)
    return dds


__all__ = ["LABEL", "OBSERVED", "encode_labels", "input_columns", "noisy_source", "prepare_dataset",
           "stratified_split"]
