"""Tiny NER fixtures with invented words (never real corpus text) and the token exactness runs.

Run as a script under ``torchrun --nproc_per_node 2`` it trains one optimiser step of a tiny
`BertForTokenClassification` with batch 2 per process x 2 accumulation steps x 2 processes, and
rank 0 writes the weights and the logged loss to the JSON file named on the command line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

sys.path.insert(0, str(Path(__file__).parent))
from exactness_runs import train_one_step  # noqa: E402

TAGS = ["O", "B-ZIP", "I-ZIP", "B-QUO", "I-QUO"]
WORDS = ["blorf", "zindle", "quaxo", "mipple", "trundo", "vesk", "glimmer", "snoof", "yarrow", "plin"]


def tiny_tokenizer() -> Any:
    """A fast WordPiece tokenizer over the invented words; some split into two sub-tokens."""
    from transformers import BertTokenizer

    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS[:6], "glim", "##mer", "sno", "##of", "yar", "##row",
              "pl", "##in"]
    return BertTokenizer(vocab={p: i for i, p in enumerate(pieces)})


def tiny_token_bert() -> torch.nn.Module:
    """A 1-layer BERT token classifier, no dropout so that forward is deterministic."""
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=len(TAGS), hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return BertForTokenClassification(config)


def word_rows(num: int = 8, seed: int = 3) -> list[tuple[list[str], list[int]]]:
    """``num`` seeded sentences of 2 to 7 invented words with random tag ids."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(num):
        length = int(torch.randint(2, 8, (1,), generator=g))
        words = [WORDS[int(i)] for i in torch.randint(0, len(WORDS), (length,), generator=g)]
        tags = [int(t) for t in torch.randint(0, len(TAGS), (length,), generator=g)]
        rows.append((words, tags))
    return rows


def token_batch_dataset() -> Dataset:
    """Aligned rows of different lengths (padding), first sub-tokens labelled, and two all -100 rows."""
    from jal_trainer.ner.align import word_labels_to_tokens

    tok = tiny_tokenizer()
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for i, (words, tags) in enumerate(word_rows()):
        enc = tok(words, is_split_into_words=True)
        labels = word_labels_to_tokens(enc.word_ids(), tags)
        if i in (2, 5):  # sentences with no usable label at all
            labels = [-100] * len(labels)
        rows["input_ids"].append(enc["input_ids"])
        rows["attention_mask"].append(enc["attention_mask"])
        rows["labels"].append(labels)
    return Dataset.from_dict(rows)


def token_step(batch_size: int, accumulation: int, **config: Any) -> dict[str, Any]:
    """One optimiser step of the tiny token BERT with JAL-CE, padding per micro-batch by the collator."""
    from transformers import DataCollatorForTokenClassification

    from jal_trainer import JALTrainer

    collator = DataCollatorForTokenClassification(tiny_tokenizer())

    class TokenTrainer(JALTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, data_collator=collator, **kwargs)

    return train_one_step(batch_size, accumulation, trainer_cls=TokenTrainer, model=tiny_token_bert(),
                          dataset=token_batch_dataset(), **{"learning_rate": 0.5, **config})


def write_conll(path: Path, rows: list[tuple[list[str], list[str]]], *, docstart: bool = True) -> Path:
    """Write sentences ``(words, tags)`` as a two-column CoNLL file."""
    lines = ["-DOCSTART-\tO", ""] if docstart else []
    for words, tags in rows:
        lines += [f"{w}\t{t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    result = token_step(batch_size=2, accumulation=2)
    if torch.distributed.get_rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(result, f)
    # wait for every rank before gloo is torn down: without it one run in a few aborted rank 1
    # ("terminate called without an active exception"), as in tests/dist_recipes.py
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
