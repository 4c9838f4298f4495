"""One optimiser step under a given batch split, shared by the in-process tests and torchrun.

Run as a script under ``torchrun --nproc_per_node 2`` it trains (c) of the exactness issue:
batch 2 per process x 2 accumulation steps x 2 processes, and rank 0 writes the weights and the
logged loss to the JSON file named on the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from torch import nn

NUM_SAMPLES, NUM_FEATURES, NUM_CLASSES = 8, 6, 3


class TinyMLP(nn.Module):
    """A plain nn.Module returning logits, as users write them (no labels argument, no dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NUM_FEATURES, 16), nn.Tanh(), nn.Linear(16, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_dataset() -> Dataset:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(NUM_SAMPLES, NUM_FEATURES, generator=g)
    labels = torch.randint(0, NUM_CLASSES, (NUM_SAMPLES,), generator=g)
    clean = labels.clone()  # an analysis column that must never reach forward
    return Dataset.from_dict({"x": x.tolist(), "labels": labels.tolist(), "clean_label": clean.tolist()}).with_format(
        "torch"
    )


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return TinyMLP()


def tiny_bert() -> nn.Module:
    """A transformers classification head (BERT), no dropout so that forward is deterministic."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=NUM_CLASSES, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config)


def token_dataset() -> Dataset:
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, 50, (NUM_SAMPLES, 5), generator=g)
    labels = torch.randint(0, NUM_CLASSES, (NUM_SAMPLES,), generator=g)
    return Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels.tolist()}).with_format("torch")


def train_one_step(batch_size: int, accumulation: int, trainer_cls: Any = None, model: nn.Module | None = None,
                   dataset: Dataset | None = None, **config: Any) -> dict[str, Any]:
    """Train one optimiser step and return {"weights": {name: list}, "loss": logged loss, ...}."""
    from jal_trainer import JALConfig, JALTrainer

    trainer_cls = trainer_cls or JALTrainer
    settings = dict(
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        max_grad_norm=0.0,  # no clipping: the raw gradient is compared
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        seed=0,
        remove_unused_columns=False,
        disable_tqdm=True,
        loss_type="jal-ce",
        loss_preset="cifar10",
        l1_weight_decay=1e-3,
    )
    settings.update(config)
    model = model if model is not None else make_model()
    dataset = dataset if dataset is not None else make_dataset()
    with tempfile.TemporaryDirectory() as out:
        trainer = trainer_cls(model=model, args=JALConfig(output_dir=out, **settings), train_dataset=dataset)
        trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    return {
        "weights": {k: v.detach().cpu().tolist() for k, v in model.state_dict().items()},
        "loss": logged[0]["loss"],
        "log": logged[0],
        "world_size": trainer.args.world_size,
    }


def plain_trainer_on_bert(batch_size: int, accumulation: int) -> dict[str, Any]:
    """The default Trainer with a transformers head: its loss grows with the batch split."""
    from transformers import Trainer

    return train_one_step(batch_size, accumulation, trainer_cls=Trainer, model=tiny_bert(), dataset=token_dataset())


def max_weight_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest absolute difference between two ``{name: nested list}`` weight records of one model."""
    return max((torch.tensor(a[k]) - torch.tensor(b[k])).abs().max().item() for k in a)


def run_two_processes(script: Path, out: Path, port: int) -> Any:
    """Run ``script out`` under ``torchrun --nproc_per_node 2`` (gloo, one thread each); the JSON rank 0 wrote.

    Each caller passes its own ``port`` so that two such tests never share a rendezvous.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           str(script), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


if __name__ == "__main__":
    results = {
        "jal": train_one_step(batch_size=2, accumulation=2),
        "plain_bert": plain_trainer_on_bert(batch_size=2, accumulation=2),
    }
    if torch.distributed.get_rank() == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f)
    # wait for every rank before gloo is torn down: without it one run in a few aborted rank 1
    # ("terminate called without an active exception"), as in tests/dist_recipes.py
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
