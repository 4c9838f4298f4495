"""Every example in the package's docstrings runs and prints what it says (the docs stay true)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import jal_trainer

MODULES = sorted(info.name for info in pkgutil.walk_packages(jal_trainer.__path__, "jal_trainer.")
                 if not info.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as err:  # a module of an optional extra (ray, ...) that this install lacks
        pytest.skip(f"{name} needs {err.name}, not installed here")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed (see above)"
