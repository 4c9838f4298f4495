"""The recipes that ship inside the package, and the ``jal recipes`` command that lists them.

A recipe is a YAML file whose keys are exactly the `jal train` field names. The ones here are
package data, so an installed wheel runs them from any folder: ``jal train --config quickstart``
reads ``jal_trainer/recipes/quickstart.yaml`` and ``--config ner/noisebench-crowd`` the recipe in
its ``ner/`` folder. A ``--config`` value that names an existing file is read as that file; else
it is a packaged recipe's name (``.yaml`` optional).

Example:
    >>> from jal_trainer.recipes import recipe_path, recipe_names
    >>> recipe_path("quickstart").name
    'quickstart.yaml'
    >>> "quickstart" in recipe_names()
    True
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent


def recipe_names() -> list[str]:
    """Names of the packaged recipes, sorted: file stems, with their folder (``ner/noisebench-crowd``)."""
    return sorted(p.relative_to(RECIPES_DIR).with_suffix("").as_posix() for p in RECIPES_DIR.rglob("*.yaml"))


def recipe_path(name: str) -> Path:
    """Path of the packaged recipe ``name`` (``quickstart``, ``quickstart.yaml`` or ``ner/noisebench-crowd``).

    Raises:
        ValueError: no packaged recipe has that name (the message suggests the closest).
    """
    stem = name[:-5] if name.endswith(".yaml") else name
    if stem not in recipe_names():  # also keeps "../x" from reaching outside the folder
        close = difflib.get_close_matches(stem, recipe_names(), n=1)
        hint = f"Did you mean --config {close[0]}? " if close else ""
        raise ValueError(f"No packaged recipe named {name!r}. {hint}Pass a packaged recipe name (`jal recipes` "
                         "lists them) or the path of a YAML file to --config.")
    return RECIPES_DIR / f"{stem}.yaml"


def resolve_recipe(value: str | os.PathLike[str]) -> Path:
    """The file a ``--config`` value means: an existing file, else a packaged recipe by name.

    Raises:
        ValueError: neither exists; names the packaged recipe of the same name when there is one.

    Example:
        >>> resolve_recipe("quickstart") == recipe_path("quickstart")
        True
    """
    path = Path(value)
    if path.is_file():
        return path
    text = os.fspath(value)
    name = text[:-5] if text.endswith(".yaml") else text
    if name in recipe_names():
        return RECIPES_DIR / f"{name}.yaml"
    if path.name == text:  # a bare name, no folder in it (not a suffix test: cifar10_sym0.4 has ".4")
        return recipe_path(text)
    # an old checkout path such as recipes/ner/noisebench-crowd.yaml
    packaged = name.split("recipes/", 1)[-1]
    hint = (f" The packaged recipe {packaged!r} has that name: pass --config {packaged}."
            if packaged in recipe_names()
            else " Pass an existing YAML file to --config, or a packaged recipe name (`jal recipes` lists them).")
    raise ValueError(f"Recipe file {text!r} does not exist.{hint}")


def describe(path: Path, width: int = 110) -> str:
    """A recipe's one-line description: the first sentence of its leading comment.

    Parenthesised details are dropped when the sentence is longer than ``width`` characters.
    """
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#") or ":  " in line:  # end of the header, or a "Command:  ..." line
            break
        lines.append(line.lstrip("#").strip())
    sentence = " ".join(lines).split(". ")[0].rstrip(".")
    if len(sentence) > width:
        sentence = re.sub(r"\s*\([^()]*\)", "", sentence)
    return sentence


def make_parser() -> argparse.ArgumentParser:
    """The ``jal recipes`` parser (no options besides ``--help``)."""
    return argparse.ArgumentParser(prog="jal recipes", allow_abbrev=False,
                                   description="List the recipes that ship with the package, one line each. "
                                               "Run one with `jal train --config NAME`.")


def main(argv: list[str] | None = None) -> int:
    """Print ``name  description`` for every packaged recipe; return 0."""
    make_parser().parse_args(argv)
    names = recipe_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {describe(RECIPES_DIR / f'{name}.yaml')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
