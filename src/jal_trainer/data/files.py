"""Your own data through `datasets`: files, globs, saved folders, WRENCH and image folders, Hub ids.

:func:`load_raw_data` turns a recipe's ``data_path`` into a ``DatasetDict`` as ``datasets`` reads
it; nothing here parses a format ``datasets`` already reads. Columns are named, encoded and
checked afterwards by :mod:`jal_trainer.data.contract`.

| ``data_path`` | read with |
|---|---|
| ``reviews.csv``, ``data/*.jsonl``, ``part-*.parquet`` | ``load_dataset("csv" / "json" / "parquet", data_files=...)`` |
| a folder written by ``save_to_disk`` | ``load_from_disk`` |
| a WRENCH folder (``label.json``, ``train.json``, ...) | :func:`~jal_trainer.data.wrench.load_wrench_folder` |
| a folder of images (one sub-folder per class, optionally under ``train/``, ``test/``) | ``load_dataset("imagefolder", data_dir=...)`` |
| another folder of data files (``train.csv``, ``test.csv``, ...) | ``load_dataset(folder)`` |
| ``org/name`` that is not a local path | ``load_dataset("org/name", data_config, revision=data_revision)`` |

Example:
    >>> dds = load_raw_data("reviews.csv")  # doctest: +SKIP
    >>> list(dds)  # doctest: +SKIP
    ['train']
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

import datasets

from jal_trainer.data.wrench import is_wrench_folder, load_wrench_folder
from jal_trainer.paths import resolve_path

# file suffix -> the packaged `datasets` builder that reads it
FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# owner/name as on the Hub: one slash, no ${shared}, no ~, no leading dot or slash
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_saved_dataset(folder: Path) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    markers = ("dataset_dict.json", "dataset_info.json", "state.json")
    return folder.is_dir() and any((folder / marker).is_file() for marker in markers)


def is_hub_id(text: str) -> bool:
    """True for ``owner/name`` that is not an existing local path (a Hub data set id).

    Example:
        >>> is_hub_id("stanfordnlp/imdb"), is_hub_id("/data/reviews.csv")
        (True, False)
    """
    suffix = Path(text).suffix.lower()  # "data/reviews.csv" is a missing file, not a Hub id
    return (bool(HUB_ID.match(text)) and suffix not in (*FILE_BUILDERS, *IMAGE_SUFFIXES)
            and not resolve_path(text).exists())


def _data_files(path: str) -> list[str]:
    """The files a file path or glob names, sorted; empty when it names none."""
    expanded = str(resolve_path(path))
    matches = sorted(glob.glob(expanded, recursive=True)) if glob.has_magic(expanded) else [expanded]
    return [m for m in matches if Path(m).is_file()]


def _builder_of(files: list[str], path: str) -> str:
    suffixes = {Path(f).suffix.lower() for f in files}
    builders = {FILE_BUILDERS.get(s) for s in suffixes}
    if None in builders or len(builders) != 1:
        raise ValueError(
            f"data_path={path!r} names files with suffixes {sorted(suffixes)}; give files of one format: "
            f"{', '.join(FILE_BUILDERS)}."
        )
    return builders.pop()


def _load_files(files: list[str], path: str) -> datasets.DatasetDict:
    builder = _builder_of(files, path)
    kwargs = {"delimiter": "\t"} if all(f.lower().endswith(".tsv") for f in files) else {}
    try:
        return as_dataset_dict(datasets.load_dataset(builder, data_files=files, **kwargs))
    except ValueError as err:
        if "corresponds to no data" not in str(err):
            raise
        raise ValueError(f"the train split is empty: data_path={path!r} holds no rows. Check the file.") from err


def _has_images(folder: Path) -> bool:
    for _, _, names in os.walk(folder):
        if any(name.lower().endswith(IMAGE_SUFFIXES) for name in names):
            return True
    return False


def load_raw_data(
    data_path: str | os.PathLike[str],
    *,
    data_config: str | None = None,
    data_revision: str | None = None,
    mark_entities: bool = True,
    entity_markers: Sequence[str] = ("E1", "E2"),
) -> datasets.DatasetDict:
    """Read ``data_path`` with `datasets` (see the module table); splits as the source has them.

    ``mark_entities`` and ``entity_markers`` apply to WRENCH relation folders
    (:func:`~jal_trainer.data.wrench.load_wrench_folder`).

    Raises:
        FileNotFoundError: the path names nothing readable (the message says what is accepted).

    Example:
        >>> load_raw_data("${shared}/data/wrench/chemprot")["train"].num_rows  # doctest: +SKIP
        12861
    """
    text = os.fspath(data_path)
    path = resolve_path(text)
    if path.is_dir():
        if is_saved_dataset(path):
            return as_dataset_dict(datasets.load_from_disk(str(path)))
        if is_wrench_folder(path):
            return load_wrench_folder(path, mark=mark_entities, markers=entity_markers)
        if _has_images(path):
            return as_dataset_dict(datasets.load_dataset("imagefolder", data_dir=str(path)))
        return as_dataset_dict(datasets.load_dataset(str(path)))
    files = _data_files(text)
    if files:
        return _load_files(files, text)
    if is_hub_id(text):
        return as_dataset_dict(datasets.load_dataset(text, data_config, revision=data_revision))
    raise FileNotFoundError(
        f"data_path={text!r} names no file or folder (resolved to {path}). Give a .csv/.json/.jsonl/.parquet file "
        "or glob, a save_to_disk folder, a WRENCH folder, an image folder, or a Hub id such as 'org/name'."
    )


def data_path_exists(data_path: str | os.PathLike[str]) -> bool:
    """True when ``data_path`` names an existing file or folder, a glob with matches, or a Hub id."""
    text = os.fspath(data_path)
    return resolve_path(text).exists() or bool(_data_files(text)) or is_hub_id(text)


def dataset_name_from_path(data_path: str | os.PathLike[str]) -> str:
    """The name a run gives to data read from ``data_path``: the Hub id, a folder's name or a file's stem.

    Example:
        >>> dataset_name_from_path("/tmp/reviews.csv"), dataset_name_from_path("org/name")
        ('reviews', 'org/name')
    """
    text = os.fspath(data_path)
    if is_hub_id(text):
        return text
    path = resolve_path(text)
    if path.is_dir():
        return path.resolve().name
    if glob.has_magic(text):  # a glob: name it after the folder that holds the files
        return Path(text.split("*")[0]).parent.name or "data"
    return path.stem


def as_dataset_dict(loaded: datasets.Dataset | datasets.DatasetDict) -> datasets.DatasetDict:
    """A ``DatasetDict`` (a single ``Dataset`` becomes its ``train`` split)."""
    if isinstance(loaded, datasets.DatasetDict):
        return loaded
    if isinstance(loaded, datasets.Dataset):
        return datasets.DatasetDict({"train": loaded})
    raise ValueError(f"expected a Dataset or DatasetDict, got {type(loaded).__name__}; load a map-style data set.")


__all__ = ["FILE_BUILDERS", "as_dataset_dict", "data_path_exists", "dataset_name_from_path", "is_hub_id",
           "is_saved_dataset", "load_raw_data"]
