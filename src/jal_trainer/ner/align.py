"""Word tags -> sub-token labels with the tokenizer's ``word_ids()``, as transformers' NER example does.

A word split into several sub-tokens keeps its tag on the first one; the others, and the special
tokens, get ``-100`` so that the loss, the metric and ``num_items_in_batch`` skip them. Words cut
off by ``max_length`` get no label at all (they are not trained on and not scored).

Example:
    >>> from transformers import AutoTokenizer
    >>> tok = AutoTokenizer.from_pretrained("${shared}/models/all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> encoded = align_labels(dataset, tok, max_length=128)  # doctest: +SKIP
    >>> encoded["train"][0]["labels"][:4]  # doctest: +SKIP
    [-100, 3, -100, 0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict

IGNORE_INDEX = -100


def check_fast_tokenizer(tokenizer: Any) -> None:
    """Raise a clear error unless ``tokenizer`` is a fast (Rust) tokenizer with ``word_ids()``."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"token classification needs a fast tokenizer (word_ids() maps sub-tokens to words), but "
            f"{type(tokenizer).__name__} is a slow (Python) tokenizer. Load one with "
            "AutoTokenizer.from_pretrained(path) from a checkpoint that ships tokenizer.json, "
            "or pick a model that has one."
        )


def word_labels_to_tokens(word_ids: Sequence[int | None], tags: Sequence[int]) -> list[int]:
    """Labels per sub-token: the word's tag on its first sub-token, ``-100`` elsewhere.

    Example:
        >>> word_labels_to_tokens([None, 0, 0, 1, None], [3, 0])
        [-100, 3, -100, 0, -100]
    """
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE_INDEX if word is None or word == previous else int(tags[word]))
        previous = word
    return labels


def first_subtoken_index(word_ids: Sequence[int | None]) -> list[int]:
    """The word index of each first sub-token, ``-1`` elsewhere (maps predictions back to words)."""
    out, previous = [], None
    for word in word_ids:
        out.append(-1 if word is None or word == previous else int(word))
        previous = word
    return out


def _align_split(ds: Dataset, tokenizer: Any, tokens_column: str, label_columns: Sequence[str],
                 max_length: int) -> Dataset:
    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(batch[tokens_column], is_split_into_words=True, truncation=True, max_length=max_length)
        word_ids = [encoded.word_ids(i) for i in range(len(batch[tokens_column]))]
        for column in label_columns:
            name = "labels" if column == label_columns[0] else f"{column}_labels"
            encoded[name] = [word_labels_to_tokens(w, t) for w, t in zip(word_ids, batch[column])]
        encoded["word_index"] = [first_subtoken_index(w) for w in word_ids]
        return dict(encoded)

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Aligning word tags to sub-tokens")


def align_labels(dataset: DatasetDict | Dataset, tokenizer: Any, *, max_length: int = 128,
                 tokens_column: str = "tokens", label_column: str = "ner_tags",
                 extra_label_columns: Sequence[str] = ()) -> DatasetDict | Dataset:
    """Tokenize pre-split words and align their tags to sub-tokens.

    Args:
        dataset: rows with a list of words ``tokens_column`` and tags ``label_column`` (ints).
        tokenizer: a fast tokenizer (checked first).
        max_length: truncation length in sub-tokens.
        extra_label_columns: other tag columns to align too (e.g. ``clean_label``), written as
            ``<name>_labels``; the columns that a split lacks are skipped.

    Returns:
        The same type, with ``input_ids``, ``attention_mask`` (and ``token_type_ids``), ``labels``
        (``-100`` off first sub-tokens), ``word_index`` (word of each first sub-token, -1 elsewhere)
        and any ``<name>_labels``.
    """
    check_fast_tokenizer(tokenizer)
    splits = dataset if isinstance(dataset, DatasetDict) else {"": dataset}
    out = {}
    for name, ds in splits.items():
        missing = [c for c in (tokens_column, label_column) if c not in ds.column_names]
        if missing:
            raise ValueError(f"split {name or 'data'} has no column {missing}; columns: {ds.column_names}.")
        columns = [label_column, *(c for c in extra_label_columns if c in ds.column_names)]
        out[name] = _align_split(ds, tokenizer, tokens_column, columns, max_length)
    return DatasetDict(out) if isinstance(dataset, DatasetDict) else out[""]


def word_predictions(logits: np.ndarray, word_index: Sequence[Sequence[int]],
                     lengths: Sequence[int]) -> list[np.ndarray]:
    """Per sentence, the ``(num_words, K)`` logits of each word's first sub-token.

    ``logits`` is ``(N, L, K)`` (padded); words cut off by truncation get NaN rows.
    """
    out = []
    for row, index, length in zip(logits, word_index, lengths, strict=True):
        words = np.full((length, row.shape[-1]), np.nan, dtype=np.float64)
        index = np.asarray(index)
        positions = np.flatnonzero(index >= 0)
        words[index[positions]] = row[positions]
        out.append(words)
    return out


__all__ = ["IGNORE_INDEX", "align_labels", "check_fast_tokenizer", "first_subtoken_index", "word_labels_to_tokens",
           "word_predictions"]
