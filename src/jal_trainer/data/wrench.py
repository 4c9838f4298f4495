"""Any WRENCH weak-supervision folder, by path: text, gold labels, weak labels, entity markers.

A WRENCH folder holds ``label.json`` (``{"0": "name", ...}``) and ``train.json``,
``valid.json``, ``test.json``, each ``{"<id>": {"label": int, "weak_labels": [int, ...],
"data": {"text": ..., ...}}}`` with -1 for an abstaining labelling function. The data set is
named after the folder, so a copy under any name keeps its own name in the run and the card.

Relation sets (chemprot, semeval) also give ``data.entity1``/``entity2`` and their character
spans ``span1``/``span2``. The relation is about that pair, so by default both entities are
marked in the text (``"... [E1]GLUT2[/E1] ... [E2]STZ[/E2] ..."``); without the markers the
model cannot tell which pair of a sentence the label is about.

Example:
    >>> dds = load_wrench_folder("${shared}/data/wrench/chemprot")  # doctest: +SKIP
    >>> dds["validation"][1]["text"][:60]  # doctest: +SKIP
    'We conclude that expression of [E1]GLUT2[/E1] is required for'
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets

from jal_trainer.paths import resolve_path

WRENCH_SPLITS = (("train", "train"), ("validation", "valid"), ("test", "test"))


def is_wrench_folder(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds WRENCH's ``label.json`` and ``train.json``."""
    path = Path(folder)
    return path.is_dir() and (path / "label.json").is_file() and (path / "train.json").is_file()


def _span(text: str, span: Sequence[int], entity: str | None) -> tuple[int, int]:
    """(start, end) with an exclusive end; WRENCH files use exclusive ends, an inclusive one is detected."""
    start, end = int(span[0]), int(span[1])
    if entity and text[start:end] != entity and text[start : end + 1] == entity:
        end += 1
    if not 0 <= start <= end <= len(text):
        raise ValueError(f"entity span {list(span)} lies outside a text of {len(text)} characters: {text[:60]!r}.")
    return start, end


def mark_entities(text: str, spans: Sequence[tuple[int, int]], markers: Sequence[str]) -> str:
    """Wrap each ``text[start:end]`` in ``[NAME]`` ... ``[/NAME]``, one marker name per span.

    Nested or touching spans stay well formed: at one position closing markers come first, and
    the longer span opens first.

    Example:
        >>> mark_entities("aspirin inhibits COX1", [(17, 21), (0, 7)], ["E1", "E2"])
        '[E2]aspirin[/E2] inhibits [E1]COX1[/E1]'
    """
    if len(markers) < len(spans):
        raise ValueError(f"{len(spans)} entity spans need {len(spans)} marker names, got {list(markers)}.")
    events = []  # (position, 0 = close / 1 = open, order within the position, marker)
    for (start, end), name in zip(spans, markers):
        events.append((start, 1, -end, f"[{name}]"))
        events.append((end, 0, -start, f"[/{name}]"))
    pieces, last = [], 0
    for position, _, _, marker in sorted(events):
        pieces += [text[last:position], marker]
        last = position
    return "".join(pieces) + text[last:]


def _text_of(record: Mapping[str, Any], markers: Sequence[str] | None) -> str:
    data = record["data"]
    text = data["text"]
    if markers and "span1" in data and "span2" in data:
        spans = [_span(text, data["span1"], data.get("entity1")), _span(text, data["span2"], data.get("entity2"))]
        return mark_entities(text, spans, markers)
    return text


def _read_split(file: Path, names: list[str], markers: Sequence[str] | None) -> datasets.Dataset:
    records = json.loads(file.read_text(encoding="utf-8"))
    keys = sorted(records, key=lambda k: (0, int(k)) if str(k).lstrip("-").isdigit() else (1, str(k)))
    ordered = [records[key] for key in keys]
    labels = [int(r["label"]) for r in ordered]
    bad = sorted({label for label in labels if not 0 <= label < len(names)})
    if bad:
        raise ValueError(f"{file}: labels {bad[:5]} are outside the {len(names)} classes of label.json; "
                         "fix label.json.")
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names),
         "weak_labels": datasets.Sequence(datasets.Value("int64")), "id": datasets.Value("string")}
    )
    return datasets.Dataset.from_dict(
        {"text": [_text_of(r, markers) for r in ordered], "label": labels,
         "weak_labels": [[int(v) for v in r["weak_labels"]] for r in ordered], "id": [str(k) for k in keys]},
        features=features,
    )


def load_wrench_folder(
    folder: str | os.PathLike[str], *, mark: bool = True, markers: Sequence[str] = ("E1", "E2")
) -> datasets.DatasetDict:
    """Load a WRENCH folder: ``train`` / ``validation`` / ``test`` (those present), named by the folder.

    Columns: ``text`` (entities marked when the rows have spans and ``mark``), ``label`` (gold,
    ClassLabel with the names of ``label.json``), ``weak_labels`` (one vote per labelling
    function, -1 = abstain) and ``id`` (the row's key in the file). Rows are in id order.

    Args:
        folder: the set's folder (``${shared}`` and ``~`` expand).
        mark: mark ``entity1``/``entity2`` in the text where the rows have ``span1``/``span2``.
        markers: the two marker names.

    Example:
        >>> load_wrench_folder("${shared}/data/wrench/youtube")["train"].num_rows  # doctest: +SKIP
        1686
    """
    root = resolve_path(folder)
    if not is_wrench_folder(root):
        raise FileNotFoundError(
            f"{root} is not a WRENCH folder (it needs label.json and train.json, plus valid.json and test.json). "
            "Point data_path at the set's own folder."
        )
    id2name = json.loads((root / "label.json").read_text(encoding="utf-8"))
    try:
        names = [str(id2name[str(i)]) for i in range(len(id2name))]
    except KeyError as err:
        raise ValueError(f"{root / 'label.json'} must map '0'..'{len(id2name) - 1}' to class names.") from err
    splits = {
        split: _read_split(root / f"{stem}.json", names, list(markers) if mark else None)
        for split, stem in WRENCH_SPLITS
        if (root / f"{stem}.json").is_file()
    }
    return datasets.DatasetDict(splits)


__all__ = ["WRENCH_SPLITS", "is_wrench_folder", "load_wrench_folder", "mark_entities"]
