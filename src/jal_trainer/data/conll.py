"""CoNLL-style token files -> a ``DatasetDict`` with ``tokens`` and ``ner_tags`` (``Sequence(ClassLabel)``).

A CoNLL file has one token per line, the token in the first column and its tag in the last
(tab- or space-separated), sentences split by blank lines; ``-DOCSTART-`` lines are skipped.

A folder is read in one of two layouts:

* ``train.txt`` / ``test.txt`` (also ``.conll``, ``.tsv``, ``.iob``, or no suffix; ``dev`` or
  ``validation`` for the development split);
* ``<name>.<split>`` files, as NoiseBench ships them: ``clean.train``, ``clean.test``, and label
  sets ``noise_crowd.train`` ... over the same tokens. The ``clean`` set (or the only one) fills
  ``ner_tags``; each other set becomes a column of its own, named after it (``noise_crowd``), to
  be used as real noise (``noise_type: column``, ``noise_column: noise_crowd``).

Every tag column shares one ``ClassLabel``: ``O`` then ``B-X``, ``I-X`` for the types of the main
label set, in sorted order. A tag outside it (in a noisy set or the test split) is an error.

Example:
    >>> dds = load_conll("${shared}/data/noisebench")  # doctest: +SKIP
    >>> dds["train"].features["ner_tags"].feature.names[:3]  # doctest: +SKIP
    ['O', 'B-LOC', 'I-LOC']
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from jal_trainer.ner.tags import entity_types, iob2_names
from jal_trainer.paths import resolve_path

TOKENS, TAGS = "tokens", "ner_tags"
SPLIT_ALIASES = {"train": "train", "test": "test", "dev": "validation", "validation": "validation"}
SUFFIXES = ("", ".txt", ".conll", ".tsv", ".iob")
MAIN_LABEL_SET = "clean"

Sentence = tuple[list[str], list[str]]


def read_conll(path: str | os.PathLike[str]) -> list[Sentence]:
    """Sentences ``(tokens, tags)`` of one CoNLL file, ``-DOCSTART-`` skipped.

    Raises:
        ValueError: a non-blank line with fewer than two columns (line number given).
    """
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                if tokens:
                    sentences.append((tokens, tags))
                tokens, tags = [], []
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            if len(parts) < 2:
                raise ValueError(
                    f"{os.fspath(path)}:{number}: expected 'token<TAB>tag', got {line!r}; a CoNLL file has the "
                    "token in the first column and the tag in the last, sentences split by blank lines."
                )
            tokens.append(parts[0])
            tags.append(parts[-1])
    if tokens:
        sentences.append((tokens, tags))
    return [s for s in sentences if s[0][0] != "-DOCSTART-"]


def is_conll_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a local folder with a CoNLL training file (``train.txt`` or ``<set>.train``).

    Example:
        >>> is_conll_folder("no/such/folder")
        False
    """
    folder = resolve_path(path)
    return folder.is_dir() and "train" in _label_sets(folder)


def _label_sets(folder: Path) -> dict[str, dict[str, Path]]:
    """``{split: {label set: file}}`` of a folder in either layout."""
    found: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.iterdir()):
        if not file.is_file():
            continue
        stem, suffix = file.stem, file.suffix
        if suffix in SUFFIXES and stem.lower() in SPLIT_ALIASES:  # train.txt
            found.setdefault(SPLIT_ALIASES[stem.lower()], {})[MAIN_LABEL_SET] = file
        elif suffix[1:].lower() in SPLIT_ALIASES:  # clean.train, noise_crowd.train
            found.setdefault(SPLIT_ALIASES[suffix[1:].lower()], {})[stem] = file
    return found


def _encode(sentences: list[Sentence], names: list[str], file: Path) -> list[list[int]]:
    index = {name: i for i, name in enumerate(names)}
    encoded = []
    for number, (_, tags) in enumerate(sentences):
        unknown = sorted(set(tags) - set(index))
        if unknown:
            raise ValueError(
                f"{os.fspath(file)}: sentence {number} has tags {unknown} outside the tag set {names} of the main "
                "label set; fix the tags or add that type to the training labels."
            )
        encoded.append([index[t] for t in tags])
    return encoded


def _split(sets: dict[str, Path], names: list[str] | None) -> tuple[dict[str, list], list[str]]:
    main = MAIN_LABEL_SET if MAIN_LABEL_SET in sets else sorted(sets)[0]
    sentences = read_conll(sets[main])
    names = names or iob2_names(sorted(entity_types(sorted({t for _, tags in sentences for t in tags}))))
    columns: dict[str, list] = {TOKENS: [s[0] for s in sentences], TAGS: _encode(sentences, names, sets[main])}
    for name, file in sets.items():
        if name == main:
            continue
        other = read_conll(file)
        if [s[0] for s in other] != columns[TOKENS]:
            raise ValueError(
                f"{os.fspath(file)} does not hold the same sentences and tokens as {os.fspath(sets[main])}; a label "
                "set of a split must list the same tokens in the same order."
            )
        columns[name] = _encode(other, names, file)
    return columns, names


def load_conll(path: str | os.PathLike[str]) -> datasets.DatasetDict:
    """Read a folder of CoNLL files (see the module docstring) into a ``DatasetDict``.

    Returns:
        Splits ``train`` and ``test`` (and ``validation`` when present) with ``tokens``
        (list of strings), ``ner_tags`` and one column per extra label set, all
        ``Sequence(ClassLabel)`` with the same names.

    Raises:
        ValueError: a missing folder, no train or test file, or tags outside the tag set.
    """
    folder = resolve_path(path)
    if not folder.is_dir():
        raise ValueError(f"CoNLL data_path {os.fspath(path)!r} is not a folder; point data_path at the folder "
                         "holding train.txt and test.txt (or clean.train and clean.test).")
    found = _label_sets(folder)
    missing = [split for split in ("train", "test") if split not in found]
    if missing:
        raise ValueError(f"{os.fspath(folder)} has no {' or '.join(missing)} file; name them train.txt and test.txt, "
                         "or clean.train and clean.test.")
    train, names = _split(found["train"], None)
    splits = {"train": train}
    for split in ("validation", "test"):
        if split in found:
            splits[split] = _split(found[split], names)[0]
    tag_feature = datasets.Sequence(datasets.ClassLabel(names=names))
    out = {}
    for split, columns in splits.items():
        features = datasets.Features({TOKENS: datasets.Sequence(datasets.Value("string")),
                                      **{name: tag_feature for name in columns if name != TOKENS}})
        out[split] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(out)


__all__ = ["TAGS", "TOKENS", "load_conll", "read_conll"]
