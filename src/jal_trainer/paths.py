"""Where the offline data and models live.

Recipes name data by path or Hub id. On machines without network the real data sets and the
MiniLM encoder sit in a ``shared`` folder beside the project checkout; ``JAL_SHARED_DIR``
points elsewhere.

Example:
    >>> from jal_trainer.paths import shared_dir
    >>> (shared_dir() / "data").name
    'data'
"""

from __future__ import annotations

import os
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """Return the folder holding ``data/`` and ``models/`` (``$JAL_SHARED_DIR`` or ``<root>/../shared``)."""
    env = os.environ.get("JAL_SHARED_DIR")
    return Path(env).expanduser().resolve() if env else (_PROJECT_ROOT.parent / "shared").resolve()


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """Resolve a recipe path: ``${shared}/...`` expands to :func:`shared_dir`, ``~`` to the home folder.

    Example:
        >>> resolve_path("${shared}/data").parts[-1]
        'data'
    """
    text = os.fspath(path).replace("${shared}", str(shared_dir()))
    return Path(os.path.expanduser(text))
