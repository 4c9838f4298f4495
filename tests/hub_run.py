"""The tiny trained run of the hub tests and the helpers they share (fixtures: tests/conftest.py).

One tiny BERT trains for two epochs on 24 noisy samples and is written as a `jal train` run
folder by the real `write_run`; every Hub call of the tests goes to a mock.

Example:
    >>> run = train_run(tmp_path / "trec-sym25-jal-ce")  # doctest: +SKIP
    >>> sorted(run)  # doctest: +SKIP
    ['metrics', 'run', 'train', 'trainer']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from datasets import Dataset
from huggingface_hub import EvalResult
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from jal_trainer import JALConfig
from jal_trainer.arguments import DataArguments, ModelArguments
from jal_trainer.hub import ModelCardMixin
from jal_trainer.callbacks import MemorisationCallback
from jal_trainer.metrics import compute_metrics_fn
from jal_trainer.noise import noise_report_from_labels, transition_matrix
from jal_trainer.paths import shared_dir
from jal_trainer.trainer import JALTrainer
from jal_trainer.run_outputs import write_run

MINILM = shared_dir() / "models" / "all-MiniLM-L6-v2"
K, PER_CLASS, RATE = 3, 8, 0.25
# Symmetric noise at rate 0.25 on K = 3: Theorem 4.1 gives a >= (K-1) / (K-1-K*rate) = 2 / 1.25.
MIN_A_SYMMETRIC = (K - 1) / (K - 1 - K * RATE)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# `JALTrainer(ModelCardMixin, Trainer)` once the mixin is wired in; until then, the same combination here.
# (`class _T(ModelCardMixin, JALTrainer)` would have no consistent MRO once JALTrainer has the mixin.)
_Trainer = JALTrainer if issubclass(JALTrainer, ModelCardMixin) else type("_Trainer", (ModelCardMixin, JALTrainer), {})


def _noisy_labels() -> tuple[np.ndarray, np.ndarray]:
    """8 samples per class; in each class one sample flips to each other class (realised rate 0.25)."""
    clean = np.repeat(np.arange(K), PER_CLASS)
    noisy = clean.copy()
    for c in range(K):
        first = c * PER_CLASS
        noisy[first] = (c + 1) % K
        noisy[first + 1] = (c + 2) % K
    return clean, noisy


def train_run(run: Path) -> dict[str, Any]:
    """Train the tiny BERT for two epochs and write it as the `jal train` run folder ``run``."""
    tokenizer = AutoTokenizer.from_pretrained(str(MINILM))
    clean, noisy = _noisy_labels()
    words = ["apple", "river", "engine"]  # one word per class: learnable in a few steps
    texts = [f"question about {words[c]} number {i}" for i, c in enumerate(clean)]
    encoded = dict(tokenizer(texts, padding="max_length", max_length=12, truncation=True))
    train = Dataset.from_dict({**encoded, "labels": noisy.tolist(), "clean_label": clean.tolist()})
    test = Dataset.from_dict({**encoded, "labels": clean.tolist()})
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=K)  # fmt: skip
    args = JALConfig(output_dir=str(run), loss_type="jal-ce", loss_preset="cifar10", num_train_epochs=2,
                     per_device_train_batch_size=8, eval_strategy="epoch", logging_strategy="epoch",
                     save_strategy="no", learning_rate=0.1, report_to=[], use_cpu=True, seed=0)  # fmt: skip
    trainer = _Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=train,
                       eval_dataset=test, processing_class=tokenizer, compute_metrics=compute_metrics_fn())  # fmt: skip
    trainer.add_callback(MemorisationCallback(train, trainer=trainer, label_column="labels"))  # memorisation.json
    trainer.train()
    test_accuracy = trainer.evaluate(metric_key_prefix="test")["test_accuracy"]
    noisy_accuracy = trainer.evaluate(train, metric_key_prefix="noisy")["noisy_accuracy"]  # labels = noisy ones
    metrics = {"test_accuracy": test_accuracy, "train_noisy_label_accuracy": noisy_accuracy}
    report = noise_report_from_labels(clean, noisy, T=transition_matrix("symmetric", RATE, K))
    data_args = DataArguments(dataset="trec", noise_type="symmetric", noise_rate=RATE, noise_seed=0)
    write_run(trainer, data_args, ModelArguments(model="${shared}/models/all-MiniLM-L6-v2"), args, metrics, report)
    return {"run": run, "trainer": trainer, "metrics": metrics, "train": train}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}  # fmt: skip


def expected_results(run: Path, split_metrics: dict[str, float]) -> list[EvalResult]:
    """The model-index entries a card of this run must hold, written out independently of hub.py."""
    common = dict(
        task_type="text-classification",
        dataset_type="CogComp/trec",
        dataset_name="TREC-6, symmetric noise 0.25",
        dataset_args={"noise_type": "symmetric", "noise_rate": RATE, "noise_seed": 0, "realised_noise_rate": RATE},
        metric_type="accuracy",
    )
    return [
        EvalResult(**common, dataset_split="test", metric_value=round(split_metrics["test_accuracy"], 4),
                   metric_name="Clean test accuracy"),
        EvalResult(**common, dataset_split="train", metric_value=round(split_metrics["train_noisy_label_accuracy"], 4),
                   metric_name="Accuracy on the noisy training labels"),
    ]  # fmt: skip


def no_call(name: str) -> mock.Mock:
    return mock.Mock(side_effect=AssertionError(f"HfApi.{name} must not be called"))

