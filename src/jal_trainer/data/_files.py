"""Finding the offline data files, with one error message that says how to fix a wrong path."""

from __future__ import annotations

import os
from pathlib import Path

from jal_trainer.paths import resolve_path, shared_dir


def find_data_file(
    path: str | os.PathLike[str] | None, *, subdir: str, filename: str, what: str, allow_file: bool = True
) -> Path:
    """Return the file ``filename`` of a data set, looking where a recipe's ``path`` may point.

    ``path=None`` means ``<shared>/data/<subdir>/<filename>``. Otherwise ``path`` (``${shared}``
    and ``~`` expanded) may be the file itself, its folder, the ``data`` folder, the shared
    folder, or a sibling folder (so that a CIFAR-10N labels folder also finds the CIFAR images).
    With ``allow_file=False`` (data sets of several files) a file path stands for its folder.

    Raises:
        FileNotFoundError: naming every place looked at and the ``JAL_SHARED_DIR`` variable.

    Example:
        >>> find_data_file(None, subdir="banking77", filename="train.csv", what="Banking77").name
        'train.csv'
    """
    if path is None:
        candidates = [shared_dir() / "data" / subdir / filename]
    else:
        root = resolve_path(path)
        if root.is_file():
            if allow_file:
                return root
            root = root.parent
        leaf = Path(subdir).name
        candidates = [
            root / filename,
            root / subdir / filename,
            root / leaf / filename,
            root / "data" / subdir / filename,
            root.parent / leaf / filename,
        ]
    for candidate in dict.fromkeys(candidates):  # ordered, without repeats
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise FileNotFoundError(
        f"{what}: {filename} not found (looked at {looked}). Pass the file or its folder as path=..., or set the "
        f"environment variable JAL_SHARED_DIR to the folder that holds data/ (now {shared_dir()})."
    )
