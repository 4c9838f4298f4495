"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

Every cache and state file of a run goes through `atomic_target`. Its temporary file has a
name of its own per call, because the ranks of one distributed run write the same cache file at
the same moment: with one shared temporary name, one rank renamed the other's file away.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_target(folder / "x.npy") as tmp:
    ...     np.save(tmp, np.arange(3))
    >>> np.load(folder / "x.npy").tolist(), sorted(p.name for p in folder.iterdir())
    ([0, 1, 2], ['x.npy'])
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_target(path: str | os.PathLike[str], *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success rename it onto ``path``.

    Args:
        path: the file to write; its folder is created.
        mode: permissions of the result (a temporary file is private; caches may be shared).

    On an error the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the suffix is kept so that np.save / np.savez do not append their own extension
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = ["atomic_target"]
