"""Text classification data sets as ``datasets.DatasetDict``, and their tokenisation.

Every split has ``text`` (string) and ``label`` (``ClassLabel`` with class names); WRENCH splits
add ``weak_labels`` (one vote per labelling function, -1 = abstain). Files are read from the
shared data folder (see SOURCES.md) or from ``path``.

| loader | splits | classes |
|---|---|---|
| :func:`load_sst2` | train 6920 / validation 872 / test 1821 | negative, positive |
| :func:`load_trec` | train 5452 / test 500 | DESC, ENTY, ABBR, HUM, LOC, NUM |
| :func:`load_banking77` | train 10003 / test 3080 | 77 intents |
| :func:`load_wrench` | train / validation / test | from ``label.json`` |

Example:
    >>> dds = load_trec()
    >>> dds["train"].features["label"].names[:3]
    ['DESC', 'ENTY', 'ABBR']
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets

from jal_trainer.data._files import find_data_file

SST2_CLASSES = ("negative", "positive")
# The label ids of harvardnlp's TREC files: checked against the original coarse classes
# (e.g. "What is the full form of .com ?" is ABBR = 2; class sizes 1162/1250/86/1223/835/896).
TREC_CLASSES = ("DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM")
WRENCH_NAMES = ("youtube", "sms", "trec")

_SST_DIR = "sst_trec_mr"


def _text_dataset(texts: Sequence[str], labels: Sequence[int], names: Sequence[str], **extra: Any) -> datasets.Dataset:
    features = {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(names))}
    if "weak_labels" in extra:
        # Sequence (not List) also exists in datasets 3.x; here it yields List(Value("int64"))
        features["weak_labels"] = datasets.Sequence(datasets.Value("int64"))
    return datasets.Dataset.from_dict(
        {"text": list(texts), "label": list(labels), **extra}, features=datasets.Features(features)
    )


def _read_text(file: Path) -> str:
    raw = file.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # TREC.train.all has one Latin-1 byte ("sister\xf0city"); Latin-1 decodes any byte.
        return raw.decode("latin-1")


def read_labelled_lines(file: Path, num_classes: int) -> tuple[list[str], list[int]]:
    """Parse ``<label> <text>`` lines (harvardnlp format) into texts and integer labels.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "x.txt"; _ = f.write_text("1 good film\\n0 bad\\n")
        >>> read_labelled_lines(f, 2)
        (['good film', 'bad'], [1, 0])
    """
    texts, labels = [], []
    for number, line in enumerate(_read_text(file).splitlines(), start=1):
        if not line.strip():
            continue
        head, _, text = line.partition(" ")
        if not head.isdigit() or not 0 <= int(head) < num_classes or not text.strip():
            raise ValueError(
                f"{file}:{number}: expected '<label 0..{num_classes - 1}> <text>', got {line[:60]!r}; "
                "use the files described in SOURCES.md."
            )
        texts.append(text.strip())
        labels.append(int(head))
    return texts, labels


def load_sst2(path: str | os.PathLike[str] | None = None) -> datasets.DatasetDict:
    """SST-2 (binary sentiment, phrase-free sentence version): train / validation / test.

    Args:
        path: folder with ``stsa.binary.{train,dev,test}`` (default ``<shared>/data/sst_trec_mr``).

    Example:
        >>> load_sst2()["validation"].num_rows
        872
    """
    splits = {}
    for split, suffix in (("train", "train"), ("validation", "dev"), ("test", "test")):
        file = find_data_file(path, subdir=_SST_DIR, filename=f"stsa.binary.{suffix}", what="SST-2", allow_file=False)
        splits[split] = _text_dataset(*read_labelled_lines(file, 2), SST2_CLASSES)
    return datasets.DatasetDict(splits)


def load_trec(path: str | os.PathLike[str] | None = None) -> datasets.DatasetDict:
    """TREC-6 question classification: train (5452) / test (500), coarse classes.

    Args:
        path: folder with ``TREC.{train,test}.all`` (default ``<shared>/data/sst_trec_mr``).

    Example:
        >>> load_trec()["test"].num_rows
        500
    """
    splits = {}
    for split in ("train", "test"):
        file = find_data_file(path, subdir=_SST_DIR, filename=f"TREC.{split}.all", what="TREC", allow_file=False)
        splits[split] = _text_dataset(*read_labelled_lines(file, len(TREC_CLASSES)), TREC_CLASSES)
    return datasets.DatasetDict(splits)


def load_banking77(path: str | os.PathLike[str] | None = None) -> datasets.DatasetDict:
    """Banking77 intent classification: train (10003) / test (3080), 77 classes.

    Class names are the ``category`` strings in case-insensitive alphabetical order (the order
    of the Hub's ``banking77`` data set).

    Args:
        path: folder with ``train.csv`` and ``test.csv`` (``text,category``; default
            ``<shared>/data/banking77``).

    Example:
        >>> load_banking77()["train"].features["label"].num_classes
        77
    """
    rows = {}
    for split in ("train", "test"):
        file = find_data_file(path, subdir="banking77", filename=f"{split}.csv", what="Banking77", allow_file=False)
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
                raise ValueError(f"{file} must have a header 'text,category', got {reader.fieldnames}.")
            rows[split] = [(r["text"], r["category"]) for r in reader]
    names = sorted({c for split_rows in rows.values() for _, c in split_rows}, key=lambda c: (c.lower(), c))
    ids = {name: i for i, name in enumerate(names)}
    return datasets.DatasetDict(
        {
            split: _text_dataset([t for t, _ in split_rows], [ids[c] for _, c in split_rows], names)
            for split, split_rows in rows.items()
        }
    )


def load_wrench(name: str, path: str | os.PathLike[str] | None = None) -> datasets.DatasetDict:
    """A WRENCH weak-supervision set (``youtube``, ``sms`` or ``trec``): train / validation / test.

    Columns: ``text``, ``label`` (gold, ClassLabel with the names of ``label.json``) and
    ``weak_labels`` (list of int, one vote per labelling function, -1 = abstain). The majority
    vote of ``weak_labels`` is a real, programmatic label noise. Any other WRENCH folder (under
    any name) loads with :func:`jal_trainer.data.wrench.load_wrench_folder`.

    Args:
        name: one of :data:`WRENCH_NAMES`.
        path: the set's folder (``train.json``, ``valid.json``, ``test.json``, ``label.json``)
            or the WRENCH root holding ``<name>/`` (default ``<shared>/data/wrench/<name>``).

    Example:
        >>> dds = load_wrench("youtube")
        >>> dds["train"].num_rows, len(dds["train"][0]["weak_labels"])
        (1686, 10)
    """
    if name not in WRENCH_NAMES:
        raise ValueError(f"unknown WRENCH set {name!r}; choose one of {', '.join(WRENCH_NAMES)}.")
    from jal_trainer.data.wrench import load_wrench_folder

    label_file = find_data_file(path, subdir=f"wrench/{name}", filename="label.json", what=f"WRENCH {name}",
                                allow_file=False)
    return load_wrench_folder(label_file.parent, mark=False).remove_columns("id")


def tokenize_dataset(
    dds: datasets.DatasetDict | datasets.Dataset,
    tokenizer: Any,
    *,
    text_column: str = "text",
    text_pair_column: str | None = None,
    max_length: int = 128,
    keep_text: bool = False,
) -> datasets.DatasetDict | datasets.Dataset:
    """Add ``input_ids`` / ``attention_mask`` (truncated to ``max_length``, unpadded) to every split.

    Padding is left to ``DataCollatorWithPadding`` (per batch). All other columns (``label``,
    ``weak_labels``, ``clean_label``, ...) are kept; the raw text is dropped unless
    ``keep_text``, so a collator never meets strings. With ``text_pair_column`` the two texts
    are encoded as a pair (``[CLS] a [SEP] b [SEP]`` for BERT-like tokenizers).

    Example:
        >>> from transformers import AutoTokenizer
        >>> from jal_trainer.paths import shared_dir
        >>> tok = AutoTokenizer.from_pretrained(shared_dir() / "models/all-MiniLM-L6-v2")
        >>> tokenize_dataset(load_trec(), tok, max_length=32)["test"].column_names
        ['label', 'input_ids', 'token_type_ids', 'attention_mask']
    """
    columns = dds.column_names
    present = columns if isinstance(columns, list) else [c for cols in columns.values() for c in cols]
    for name, option in ((text_column, "text_column"), (text_pair_column, "text_pair_column")):
        if name is not None and name not in present:
            raise ValueError(f"text column {name!r} not found (columns: {columns}); pass {option}=.")

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        pair = batch[text_pair_column] if text_pair_column else None
        return tokenizer(batch[text_column], pair, truncation=True, max_length=max_length)

    texts = [c for c in (text_column, text_pair_column) if c]
    return dds.map(encode, batched=True, remove_columns=[] if keep_text else texts, desc="Tokenising")


def join_text_pairs(dds: datasets.DatasetDict, text_column: str, text_pair_column: str | None,
                    tokenizer: Any) -> tuple[datasets.DatasetDict, str]:
    """One text per row for encoders that embed a single text: ``a <sep> b`` in ``text_column``.

    Returns the data set (the pair column removed) and the column to embed; unchanged without a pair.

    Example:
        >>> dds = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"a": ["x"], "b": ["y"]})})
        >>> join_text_pairs(dds, "a", "b", type("T", (), {"sep_token": "[SEP]"})())[0]["train"]["a"][:]
        ['x [SEP] y']
    """
    if not text_pair_column:
        return dds, text_column
    sep = f" {getattr(tokenizer, 'sep_token', None) or '|'} "
    joined = dds.map(
        lambda b: {text_column: [x + sep + y for x, y in zip(b[text_column], b[text_pair_column])]},
        batched=True, remove_columns=[text_pair_column], desc="Joining text pairs",
    )
    return joined, text_column
