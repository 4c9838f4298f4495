"""Noisy token classification (NER): robust losses, entity-level noise and label issues for token tags.

* losses and `JALTrainer` take token logits ``(N, L, K)`` with labels ``(N, L)`` and skip ``-100``
  (padding, special tokens, non-first sub-tokens); ``num_items_in_batch`` counts tokens, so the
  update is the same under any split into accumulation steps and processes;
* `jal_trainer.ner.noise`: entity-level noise (wrong type, wrong boundary, missed, spurious) at an
  entity-level rate, and the token- / entity-level noise report;
* `jal_trainer.ner.noisy`: the same on a ``Sequence(ClassLabel)`` column (``add_label_noise``
  dispatches here), including real noise from a column of tag sequences;
* `jal_trainer.data.conll`: CoNLL two-column files; `jal_trainer.ner.align`: word tags to
  sub-tokens with ``word_ids()``; `jal_trainer.ner.metrics`: seqeval entity F1, offline;
* `jal_trainer.ner.issues`: token and span label issues, scored by `jal train` with the epoch-mean
  word probabilities of `jal_trainer.ner.epoch_words`; `jal_trainer.ner.card`: the model card;
* `jal_trainer.ner.train`: ``jal train`` with ``task: token-classification``.

Example:
    >>> from jal_trainer.ner import entity_noise, token_noise_report
    >>> clean = [["B-PER", "I-PER", "O", "B-LOC"]] * 100
    >>> round(token_noise_report(clean, entity_noise(clean, 0.3, seed=0)).entity_noise, 2)
    0.3
"""

from __future__ import annotations

from jal_trainer.ner.noise import ENTITY_ERRORS, TokenNoiseReport, entity_noise, token_noise_report
from jal_trainer.ner.tags import entity_spans, spans_to_tags

__all__ = ["ENTITY_ERRORS", "TokenNoiseReport", "entity_noise", "entity_spans", "spans_to_tags", "token_noise_report"]
