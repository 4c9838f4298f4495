"""Label issues of token labels: the tokens, and the entity spans, whose given tag the model disagrees with.

The word-level probabilities (each word's first sub-token) of a model trained with a robust loss
on the noisy tags are scored like class labels (`jal_trainer.label_issues`): the class-normalised
shortfall ``1 - p[given] / t_given`` and the ``class-balanced`` rule, over all words at once. A
given entity span is an issue when any of its words is. Against the clean tags (when known) the
result is measured per token (AUROC and AUPRC of the score for "the given tag is wrong") and per
span (precision and recall of the flagged spans for "this span is not a clean entity").

Example:
    >>> import numpy as np
    >>> names = ["O", "B-PER", "I-PER"]
    >>> person, outside = [0.1, 0.8, 0.1], [0.9, 0.05, 0.05]
    >>> probs = [np.array([person, outside])] * 3 + [np.array([person, person])]   # the model's view
    >>> given = [["B-PER", "O"]] * 3 + [["B-PER", "O"]]                            # word 1 of the last: a missed person
    >>> found = find_token_label_issues(probs, given, names)
    >>> found["num_flagged_tokens"], found["sentences"][0]["index"], found["sentences"][0]["tokens"][0]["predicted"]
    (1, 3, 'B-PER')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jal_trainer.label_issues import score_label_issues
from jal_trainer.ner.tags import entity_spans


def _softmax(logits: np.ndarray) -> np.ndarray:
    if np.allclose(logits.sum(-1), 1.0) and (logits >= 0).all():
        return logits  # already probabilities
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def token_quality(scores: np.ndarray, wrong: np.ndarray) -> dict[str, float | None]:
    """AUROC and AUPRC (average precision) of ``scores`` ``(n,)`` for the wrong tags ``(n,)`` bool."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if wrong.all() or not wrong.any():
        return {"token_auroc": None, "token_auprc": None, "wrong_tokens": int(wrong.sum())}
    return {"token_auroc": float(roc_auc_score(wrong, scores)),
            "token_auprc": float(average_precision_score(wrong, scores)),
            "wrong_tokens": int(wrong.sum())}


def span_quality(flagged: list[set], given: list[set], clean: list[set]) -> dict[str, float]:
    """Precision and recall of the flagged given spans for the given spans that are not clean entities."""
    wrong = [g - c for g, c in zip(given, clean)]
    hit = sum(len(f & w) for f, w in zip(flagged, wrong))
    num_flagged, num_wrong = sum(map(len, flagged)), sum(map(len, wrong))
    precision = hit / num_flagged if num_flagged else 0.0
    recall = hit / num_wrong if num_wrong else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"span_precision": precision, "span_recall": recall, "span_f1": f1, "wrong_spans": num_wrong,
            "flagged_spans": num_flagged}


def find_token_label_issues(
    probs: Sequence[np.ndarray], given: Sequence[Sequence[str]], names: Sequence[str], *,
    clean: Sequence[Sequence[str]] | None = None, tokens: Sequence[Sequence[str]] | None = None,
    rule: str = "class-balanced", source: str = "final model, each word's first sub-token",
) -> dict[str, Any]:
    """Flag tokens and spans; the ``label_issues.json`` content of a token run.

    Args:
        probs: per sentence, ``(num_words, K)`` probabilities or logits of each word; NaN rows
            (words cut off by truncation) are never flagged.
        given: the training tags per sentence (strings). names: the tag set, index order of ``K``.
        clean: the clean tags, to measure the issues against. tokens: the words, to show them.
        rule: a rule of `jal_trainer.label_issues.RULES`.
        source: what ``probs`` are, written as the ``probabilities`` field (e.g. the epoch mean).

    Returns:
        ``{"rule", "probabilities", "num_tokens", "num_flagged_tokens", "num_flagged_spans", "report", "sentences"}``;
        ``sentences`` lists each sentence with an issue: ``index``, flagged ``tokens`` (``word``,
        ``text``, ``given``, ``predicted``, ``score``) and ``spans`` (``start``, ``end``, ``type``).
    """
    index = {name: i for i, name in enumerate(names)}
    lengths = [len(g) for g in given]
    stacked = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, len(names)) for p in probs])
    labels = np.array([index[t] for sentence in given for t in sentence], dtype=np.int64)
    known = ~np.isnan(stacked).any(axis=1)
    scores = np.full(len(labels), -np.inf)
    flags = np.zeros(len(labels), dtype=bool)
    if known.any():
        probabilities = _softmax(stacked[known])
        scores[known], flags[known] = score_label_issues(probabilities, labels[known], rule=rule)
    predicted = np.where(known, np.nan_to_num(stacked, nan=-np.inf).argmax(axis=1), labels)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    given_spans = [entity_spans(list(g)) for g in given]
    flagged_spans, sentences = [], []
    for s, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
        row_flags = flags[a:b]
        spans = {span for span in given_spans[s] if row_flags[span[0]:span[1]].any()}
        flagged_spans.append(spans)
        if row_flags.any():
            sentences.append({
                "index": s,
                "tokens": [{"word": int(w), **({"text": tokens[s][w]} if tokens is not None else {}),
                            "given": given[s][w], "predicted": names[int(predicted[a + w])],
                            "score": round(float(scores[a + w]), 4)} for w in np.flatnonzero(row_flags)],
                "spans": [{"start": st, "end": en, "type": ty} for st, en, ty in sorted(spans)],
            })
    report: dict[str, Any] = {}
    if clean is not None:
        wrong = np.array([g != c for gs, cs in zip(given, clean) for g, c in zip(gs, cs)], dtype=bool)
        tp = int((flags & wrong).sum())
        report = {
            **token_quality(scores[known], wrong[known]),
            "token_precision": tp / int(flags.sum()) if flags.any() else 0.0,
            "token_recall": tp / int(wrong.sum()) if wrong.any() else 0.0,
            **span_quality(flagged_spans, given_spans, [entity_spans(list(c)) for c in clean]),
        }
    return {"rule": rule, "probabilities": source, "num_tokens": int(len(labels)),
            "num_flagged_tokens": int(flags.sum()), "num_flagged_spans": int(sum(map(len, flagged_spans))),
            "report": report, "sentences": sentences}


__all__ = ["find_token_label_issues", "span_quality", "token_quality"]
