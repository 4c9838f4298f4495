"""Label noise for token labels: entity-level corruption, real noisy tag columns, and its report.

Named-entity noise is not a class flip per token: annotators, distant supervision and rules get
whole entities wrong. :func:`entity_noise` makes entity errors until the entity-level noise
(1 - exact-span F1 against the clean tags) is ``rate``, each error one of

* ``"type"``: the entity keeps its span but gets another type (``B-PER I-PER -> B-ORG I-ORG``);
* ``"boundary"``: the span grows by one neighbouring ``O`` token, or shrinks by one token;
* ``"missed"``: the entity is dropped (all its tags become ``O``);
* ``"spurious"``: a one-token entity of a random type appears on an ``O`` token.

Events are drawn with a seeded NumPy generator from the whole label set at once, so the result
is deterministic for a seed. :func:`token_noise_report` measures any noisy tag set against the
clean one at the token level (share of tags changed) and at the entity level (1 - exact-span F1,
as NoiseBench reports it).

Example:
    >>> clean = [["B-PER", "I-PER", "O", "O"], ["O", "B-LOC"]] * 50
    >>> noisy = entity_noise(clean, 0.2, seed=0)
    >>> round(token_noise_report(clean, noisy).entity_noise, 1)
    0.2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from jal_trainer.ner.tags import Span, entity_spans, span_scores, spans_to_tags

#: The kinds of entity error and their default share of the events.
ENTITY_ERRORS: dict[str, float] = {"type": 0.25, "boundary": 0.25, "missed": 0.25, "spurious": 0.25}


def _check_rate(rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"entity noise rate must be a number in [0, 1], got {rate!r}.")
    return float(rate)


def _check_mix(mix: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    unknown = sorted(set(mix) - set(ENTITY_ERRORS))
    weights = np.array([float(mix.get(k, 0.0)) for k in ENTITY_ERRORS])
    if unknown or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(
            f"errors={dict(mix)} is not a mix of {', '.join(ENTITY_ERRORS)} with non-negative weights "
            "(at least one positive); e.g. errors={'type': 1.0} for type errors only."
        )
    return list(ENTITY_ERRORS), weights / weights.sum()


def _boundary(span: Span, taken: np.ndarray, rng: np.random.Generator) -> Span | None:
    """The span grown by one free neighbour, or shrunk by one token; None when neither is possible."""
    start, end, kind = span
    options: list[Span] = []
    if start > 0 and not taken[start - 1]:
        options.append((start - 1, end, kind))
    if end < len(taken) and not taken[end]:
        options.append((start, end + 1, kind))
    if end - start > 1:
        options += [(start + 1, end, kind), (start, end - 1, kind)]
    return options[rng.integers(len(options))] if options else None


def _corrupt_entity(spans: set[Span], span: Span, error: str, types: list[str], length: int,
                    rng: np.random.Generator) -> bool:
    """Apply one ``type`` / ``boundary`` / ``missed`` error to ``span`` in place; False if impossible."""
    spans.discard(span)
    taken = np.zeros(length, dtype=bool)
    for start, end, _ in spans:
        taken[start:end] = True
    others = [t for t in types if t != span[2]]
    if error == "type" and others:
        spans.add((span[0], span[1], others[rng.integers(len(others))]))
        return True
    if error == "boundary":
        moved = _boundary(span, taken, rng)
        if moved is not None:
            spans.add(moved)
            return True
    if error == "missed":
        return True
    spans.add(span)  # not applicable (one type only, a one-token span between entities)
    return False


def _spurious(spans: set[Span], length: int, types: list[str], rng: np.random.Generator) -> bool:
    """Add a one-token entity on a free token; False when the sentence has none."""
    taken = np.zeros(length, dtype=bool)
    for start, end, _ in spans:
        taken[start:end] = True
    free = np.flatnonzero(~taken)
    if free.size == 0:
        return False
    i = int(free[rng.integers(free.size)])
    spans.add((i, i + 1, types[rng.integers(len(types))]))
    return True


def event_counts(num_entities: int, rate: float, weights: np.ndarray) -> np.ndarray:
    """Errors of each kind (in :data:`ENTITY_ERRORS` order) that make 1 - F1 equal ``rate``.

    With ``t, b, m, s`` type, boundary, missed and spurious errors on ``n`` clean entities, the
    exact-span F1 of the noisy labels is ``2 (n - t - b - m) / (2 n - m + s)``; for ``E`` events
    split by ``weights`` this solves to ``E = 2 n r / (2 (w_t + w_b + w_m) + (1 - r)(w_s - w_m))``.
    Counts are rounded by largest remainder, so they add up to ``round(E)``.
    """
    w_t, w_b, w_m, w_s = weights
    denominator = 2 * (w_t + w_b + w_m) + (1 - rate) * (w_s - w_m)
    total = 2 * num_entities * rate / denominator if denominator > 0 else 0.0
    # the entity errors cannot exceed the entities there are
    total = min(total, num_entities / max(w_t + w_b + w_m, 1e-12))
    raw = total * weights
    counts = np.floor(raw).astype(np.int64)
    extra = int(round(total)) - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:max(extra, 0)]] += 1
    return counts


def entity_noise(
    tags: Sequence[Sequence[str]],
    rate: float,
    *,
    seed: int | np.random.Generator,
    types: Sequence[str] | None = None,
    errors: Mapping[str, float] | None = None,
) -> list[list[str]]:
    """Corrupt IOB2 tag sequences at the entity level, to an entity-level noise (1 - F1) of ``rate``.

    Args:
        tags: one list of IOB2 tags per sentence (the clean labels).
        rate: the entity-level noise to reach, 1 - exact-span F1 against the clean tags, in [0, 1]
            (the number NoiseBench quotes: 0.367 for its crowd labels).
        seed: int or ``numpy.random.Generator``.
        types: entity types to draw wrong and spurious types from (default: those in ``tags``).
        errors: share of each error kind (default :data:`ENTITY_ERRORS`, a quarter each).

    Returns:
        The noisy tags, one list per sentence, same lengths. Each clean entity is corrupted at most
        once; an entity where the drawn error cannot apply (a boundary move with no room) is left
        clean and the error goes to the next one.

    Example:
        >>> entity_noise([["B-PER", "O"]], 1.0, seed=0, errors={"missed": 1})
        [['O', 'O']]
    """
    rate = _check_rate(rate)
    kinds, weights = _check_mix(errors or ENTITY_ERRORS)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    spans = [entity_spans(list(sentence)) for sentence in tags]
    lengths = [len(sentence) for sentence in tags]
    types = list(types) if types is not None else sorted({s[2] for sent in spans for s in sent})
    entities = [(i, span) for i, sent in enumerate(spans) for span in sorted(sent)]
    counts = event_counts(len(entities), rate, weights)
    if counts.sum() and not types:
        raise ValueError("the tags hold no entity type to corrupt towards; pass types=['PER', ...].")
    queue = rng.permutation(len(entities)).tolist()  # each clean entity corrupted at most once
    for error, count in zip(kinds, counts.tolist()):
        if error == "spurious":
            continue
        made, unused = 0, []
        while made < count and queue:
            index = queue.pop()
            sent, span = entities[index]
            if _corrupt_entity(spans[sent], span, error, types, lengths[sent], rng):
                made += 1
            else:
                unused.append(index)  # this error cannot apply here; another kind may
        queue += unused[::-1]
    spurious = counts[kinds.index("spurious")]
    for _ in range(50 * int(spurious)):
        if spurious == 0:
            break
        sent = int(rng.integers(len(spans)))
        spurious -= _spurious(spans[sent], lengths[sent], types, rng)
    return [spans_to_tags(s, n) for s, n in zip(spans, lengths, strict=True)]


@dataclass
class TokenNoiseReport:
    """Realised noise of token labels: token level and entity level (exact spans).

    Attributes:
        num_sentences, num_tokens: sizes. token_noise: share of tokens whose tag changed.
        sentence_noise: share of sentences with at least one changed tag.
        entity_noise: 1 - F1 of the noisy spans against the clean spans (NoiseBench's number);
        entity_precision, entity_recall: of the noisy spans against the clean ones.
        per_type: ``{type: 1 - F1}`` of that type's spans.
    """

    num_sentences: int
    num_tokens: int
    token_noise: float
    sentence_noise: float
    entity_noise: float
    entity_precision: float
    entity_recall: float
    clean_entities: int
    noisy_entities: int
    per_type: dict[str, float] = field(default_factory=dict)

    @property
    def noise_rate(self) -> float:
        """The entity-level rate, the number a token model's card reports."""
        return self.entity_noise

    def to_dict(self) -> dict[str, Any]:
        return {"level": "token", **asdict(self)}

    def __str__(self) -> str:
        return (f"{self.num_sentences} sentences, {self.num_tokens} tokens: {self.token_noise:.1%} of tags changed; "
                f"entity-level noise (1 - F1) {self.entity_noise:.1%} (P {self.entity_precision:.3f}, "
                f"R {self.entity_recall:.3f}; {self.clean_entities} clean / {self.noisy_entities} noisy entities)")


def token_noise_report(clean: Sequence[Sequence[str]], noisy: Sequence[Sequence[str]]) -> TokenNoiseReport:
    """Measure noisy IOB2 tags against clean ones (same sentences, same lengths).

    Example:
        >>> token_noise_report([["B-PER", "O"]], [["B-LOC", "O"]]).entity_noise
        1.0
    """
    if len(clean) != len(noisy):
        raise ValueError(f"clean and noisy tags cover {len(clean)} and {len(noisy)} sentences; "
                         "pass the same sentences.")
    changed = tokens = dirty = 0
    for i, (a, b) in enumerate(zip(clean, noisy)):
        if len(a) != len(b):
            raise ValueError(f"sentence {i} has {len(a)} clean and {len(b)} noisy tags; the token lists must match.")
        diff = sum(x != y for x, y in zip(a, b))
        changed, tokens, dirty = changed + diff, tokens + len(a), dirty + (diff > 0)
    clean_spans = [entity_spans(list(s)) for s in clean]
    noisy_spans = [entity_spans(list(s)) for s in noisy]
    overall = span_scores(clean_spans, noisy_spans)
    types = sorted({s[2] for sent in clean_spans + noisy_spans for s in sent})
    per_type = {
        t: 1.0 - span_scores([{s for s in c if s[2] == t} for c in clean_spans],
                             [{s for s in n if s[2] == t} for n in noisy_spans])["f1"]
        for t in types
    }
    return TokenNoiseReport(
        num_sentences=len(clean), num_tokens=tokens, token_noise=changed / tokens if tokens else 0.0,
        sentence_noise=dirty / len(clean) if len(clean) else 0.0, entity_noise=1.0 - overall["f1"],
        entity_precision=overall["precision"], entity_recall=overall["recall"],
        clean_entities=overall["clean_entities"], noisy_entities=overall["noisy_entities"], per_type=per_type,
    )


__all__ = ["ENTITY_ERRORS", "TokenNoiseReport", "entity_noise", "event_counts", "token_noise_report"]
