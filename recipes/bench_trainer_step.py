"""Benchmark: one training step of `JALTrainer` (JAL-CE) against `transformers.Trainer` (CE).

Both trainers wrap the same small model (a 2-layer BERT classifier built from a config, so no
download) and take the same batch. One "step" is ``training_step`` (forward, loss, backward) plus
the optimiser step and ``zero_grad``, which is what the training loop repeats. The two are timed
side by side in one process, interleaved, and the ratio of medians is reported.

Command (the committed results):
    python recipes/bench_trainer_step.py --repeats 30
Writes recipes/results/trainer_step.json and recipes/results/trainer_step.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer

from jal_trainer import JALConfig, JALTrainer
from jal_trainer.run_outputs import package_versions

RESULTS = Path(__file__).parent / "results"


def make_model(seed: int, num_labels: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=4000, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=1024, num_labels=num_labels)
    return BertForSequenceClassification(config)


def make_batch(batch_size: int, seq_len: int, num_labels: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1, 4000, (batch_size, seq_len), generator=g),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "labels": torch.randint(0, num_labels, (batch_size,), generator=g),
    }


def make_trainer(kind: str, out: str, num_labels: int, l1: float) -> Trainer:
    common = dict(output_dir=out, report_to=[], use_cpu=True, per_device_train_batch_size=32, optim="sgd",
                  learning_rate=1e-3, disable_tqdm=True)
    model = make_model(0, num_labels)
    if kind == "trainer-ce":
        args = JALConfig(**common, loss_type="ce")
        trainer = Trainer(model=model, args=args)
    else:
        args = JALConfig(**common, loss_type="jal-ce", loss_preset="cifar10", l1_weight_decay=l1)
        trainer = JALTrainer(model=model, args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=10_000)
    return trainer


def one_step(trainer: Trainer, batch: dict[str, torch.Tensor]) -> float:
    n = torch.tensor(int(batch["labels"].numel()))
    start = time.perf_counter()
    trainer.training_step(trainer.model, dict(batch), n)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--num-labels", type=int, default=10)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    cli = parser.parse_args()
    if cli.threads:
        torch.set_num_threads(cli.threads)

    batch = make_batch(32, cli.seq_len, cli.num_labels, seed=1)
    kinds = {"trainer-ce": 0.0, "jal-ce": 0.0, "jal-ce+l1": 5e-5}
    with tempfile.TemporaryDirectory() as out:
        trainers = {k: make_trainer(k.split("+")[0] if k != "trainer-ce" else k, out, cli.num_labels, l1)
                    for k, l1 in kinds.items()}
        times: dict[str, list[float]] = {k: [] for k in trainers}
        order = list(trainers)
        rng = random.Random(0)
        for i in range(cli.warmup + cli.repeats):
            rng.shuffle(order)  # interleaved, in a new order each round: load drift and cache effects hit all alike
            for name in order:
                t = one_step(trainers[name], batch)
                if i >= cli.warmup:
                    times[name].append(t)
    medians = {k: statistics.median(v) for k, v in times.items()}
    base = medians["trainer-ce"]
    result = {
        "command": f"python recipes/bench_trainer_step.py --repeats {cli.repeats}"
        + (f" --threads {cli.threads}" if cli.threads else ""),
        "what": "training_step + optimizer.step + zero_grad, BERT 2x256 classifier, batch 32, seq 64, SGD",
        "hardware": {"machine": platform.machine(), "processor": platform.processor(),
                     "torch_threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0]},
        "versions": package_versions(),
        "seeds": {"model": 0, "batch": 1},
        "repeats": cli.repeats,
        "median_seconds": medians,
        "ratio_to_trainer_ce": {k: v / base for k, v in medians.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trainer_step.json").write_text(json.dumps(result, indent=2))
    rows = "\n".join(f"| {k} | {medians[k] * 1e3:.1f} | {medians[k] / base:.3f} |" for k in medians)
    (RESULTS / "trainer_step.md").write_text(
        "# One training step: JALTrainer against Trainer (CE)\n\n"
        f"Command: `{result['command']}`; {result['what']}; CPU, {result['hardware']['torch_threads']} threads; "
        f"median of {cli.repeats} interleaved repeats in shuffled order; 1-minute load average "
        f"{result['hardware']['load_average_1min']:.2f} at the end; torch {result['versions']['torch']}, "
        f"transformers {result['versions']['transformers']}.\n\n"
        "| trainer / loss | median ms | ratio to Trainer CE |\n|---|---|---|\n" + rows + "\n"
    )
    print(json.dumps(result["ratio_to_trainer_ce"], indent=2))


if __name__ == "__main__":
    main()
