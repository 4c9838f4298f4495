"""IOB2 tags and entity spans: the vocabulary every token-classification module shares.

A sentence's tags are strings such as ``["B-PER", "I-PER", "O", "B-LOC"]``; its entities are
exact spans ``(start, end, type)`` with ``end`` exclusive. Decoding follows conlleval (and
NoiseBench's ``measure_noise.py``): an ``I-X`` after ``O`` or after another type starts a new
entity, so noisy label sets with stray ``I-`` tags are read as their annotators meant them.

Example:
    >>> sorted(entity_spans(["B-PER", "I-PER", "O", "I-LOC"]))
    [(0, 2, 'PER'), (3, 4, 'LOC')]
    >>> spans_to_tags({(0, 2, "PER")}, 3)
    ['B-PER', 'I-PER', 'O']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Span = tuple[int, int, str]
OUTSIDE = "O"


def entity_spans(tags: Sequence[str]) -> set[Span]:
    """The entities ``{(start, end, type)}`` of one sentence's IOB2 tags (``end`` exclusive)."""
    spans: set[Span] = set()
    start, kind = None, None
    for i, tag in enumerate([*tags, OUTSIDE]):
        begins = tag.startswith("B-") or (tag.startswith("I-") and tag[2:] != kind)
        if tag == OUTSIDE or begins:
            if start is not None:
                spans.add((start, i, kind))
            start, kind = (i, tag[2:]) if begins else (None, None)
    return spans


def spans_to_tags(spans: Iterable[Span], length: int) -> list[str]:
    """IOB2 tags of ``length`` tokens holding ``spans`` (which must not overlap)."""
    tags = [OUTSIDE] * length
    for start, end, kind in sorted(spans):
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end):
            tags[i] = f"I-{kind}"
    return tags


def entity_types(names: Sequence[str]) -> list[str]:
    """The entity types of a tag set, in first-seen order: ``["O", "B-PER", "I-PER"] -> ["PER"]``.

    Raises:
        ValueError: a tag that is neither ``O`` nor ``B-X`` / ``I-X`` (the tag set is not IOB2).
    """
    kinds: list[str] = []
    for name in names:
        if name == OUTSIDE:
            continue
        if len(name) < 3 or name[:2] not in ("B-", "I-"):
            raise ValueError(
                f"tag {name!r} is not IOB2 (O, B-TYPE, I-TYPE); convert the tags to IOB2 first "
                "(IOBES and BILOU sets are not read)."
            )
        if name[2:] not in kinds:
            kinds.append(name[2:])
    return kinds


def iob2_names(types: Sequence[str]) -> list[str]:
    """The full IOB2 tag set of ``types``: ``O`` then ``B-X``, ``I-X`` per type, e.g. for a ClassLabel."""
    return [OUTSIDE, *(f"{prefix}-{kind}" for kind in types for prefix in ("B", "I"))]


def span_scores(clean: Iterable[set[Span]], noisy: Iterable[set[Span]]) -> dict[str, float]:
    """Exact-span precision, recall and F1 of ``noisy`` against ``clean``, sentence by sentence.

    Returns ``{"precision", "recall", "f1", "clean_entities", "noisy_entities", "matched"}``.
    """
    matched = num_clean = num_noisy = 0
    for a, b in zip(clean, noisy, strict=True):
        matched += len(a & b)
        num_clean += len(a)
        num_noisy += len(b)
    precision = matched / num_noisy if num_noisy else 1.0
    recall = matched / num_clean if num_clean else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "clean_entities": num_clean,
            "noisy_entities": num_noisy, "matched": matched}


__all__ = ["OUTSIDE", "Span", "entity_spans", "entity_types", "iob2_names", "span_scores", "spans_to_tags"]
