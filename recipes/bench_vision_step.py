"""Benchmark: one CIFAR-10 training step of the paper's protocol, JALTrainer against a bare PyTorch loop.

Same model (the 8-layer CNN), same batch source (`DeviceImageDataset`: uint8 images on the
device, crop and flip there), same loss (JAL-CE, cifar10 preset, float32), same L1 penalty, SGD
with momentum and gradient clipping at 5. The bare loop is what a hand-written script does;
the difference per step is what the Trainer and our subclass add. Steps are timed after a warm-up,
with a device synchronisation only at the ends of each timed block (CUDA timings are then the
steady-state rate of the queue). ``--profile`` also prints the top operators of a few Trainer
steps (``torch.profiler``), to see where the time goes.

Commands (the committed results):
    python recipes/bench_vision_step.py --device cpu --steps 20 --batch-size 128
    python recipes/bench_vision_step.py --device cuda --steps 300 --profile     # on a GPU machine
Writes recipes/results/vision_step_<device>.{json,md} (or under --out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import TrainerCallback

RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).parent))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(device: torch.device, channels_last: bool, train_subset: int, seed: int = 0,
          images: str = "cifar10") -> tuple[Any, Any]:
    """(model, DeviceImageDataset) of the paper's CIFAR-10 protocol on ``device`` (or the 8x8 digits,
    where the convolutions are cheap enough on a CPU for the loop's own cost to show)."""
    from jal_trainer.data import DeviceImageDataset, image_stats, load_cifar10, load_digits
    from jal_trainer.models import build_vision_model

    if images == "digits":
        dds = load_digits()
    else:
        dds = load_cifar10(train_subset=train_subset, test_subset=100) if train_subset else load_cifar10()
    mean, std = image_stats(images)
    data = DeviceImageDataset(dds["train"], augment=True, mean=mean, std=std, seed=seed, device=device,
                              channels_last=channels_last, crop_padding=1 if images == "digits" else 4)
    torch.manual_seed(seed)
    channels, size = data.images.shape[1], data.images.shape[-1]
    model = build_vision_model("cnn8", label_names=[str(i) for i in range(10)], num_channels=channels,
                               image_size=size)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, data


def bare_step_fn(model: torch.nn.Module, data: Any, batch_size: int, bf16: bool, l1: float) -> Callable[[], None]:
    """One hand-written step: batch, forward (bf16 autocast), float32 JAL-CE, L1, backward, clip, SGD."""
    from jal_trainer.losses import build_loss

    loss_fn = build_loss("jal-ce", preset="cifar10")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    device = data.device
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        idx = torch.randint(0, len(data), (batch_size,), device=device, generator=gen)
        batch = data.batch(idx)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(pixel_values=batch["pixel_values"]).logits
        loss = loss_fn(logits.float(), batch["labels"])
        if l1:
            loss = loss + l1 * torch.cat([p.reshape(-1) for p in params]).abs().sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def time_bare(step: Callable[[], None], device: torch.device, steps: int, repeats: int) -> list[float]:
    """Milliseconds per step of ``repeats`` blocks of ``steps`` steps, after 10 warm-up steps."""
    for _ in range(10):
        step()
    _sync(device)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        out.append((time.perf_counter() - start) * 1000 / steps)
    return out


class StepTimer(TrainerCallback):
    """Times blocks of ``steps`` optimiser steps inside ``Trainer.train`` after ``warmup`` steps."""

    def __init__(self, device: torch.device, warmup: int, steps: int, profile_steps: int = 0) -> None:
        self.device, self.warmup, self.steps, self.profile_steps = device, warmup, steps, profile_steps
        self.blocks: list[float] = []
        self._start: float | None = None
        self.profiler = None

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201  (TrainerCallback API)
        done = state.global_step - self.warmup
        if done == 0 or (done > 0 and done % self.steps == 0):
            _sync(self.device)
            now = time.perf_counter()
            if self._start is not None and done > 0:
                self.blocks.append((now - self._start) * 1000 / self.steps)
            self._start = now
        if self.profile_steps and state.global_step == self.warmup // 2:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
            self.profiler = profile(activities=acts)
            self.profiler.__enter__()
        if self.profiler is not None and state.global_step == self.warmup // 2 + self.profile_steps:
            _sync(self.device)
            self.profiler.__exit__(None, None, None)


def time_trainer(model: torch.nn.Module, data: Any, batch_size: int, bf16: bool, l1: float, steps: int,
                 repeats: int, device: torch.device, profile_steps: int = 0,
                 graph: bool = False) -> tuple[list[float], Any]:
    """Milliseconds per step of `JALTrainer.train` with the runner's fast flags; and the profiler."""
    from jal_trainer import JALConfig, JALTrainer
    from jal_trainer.data import DeviceImageCollator

    warmup = max(20, 2 * profile_steps + 2)
    args = JALConfig(
        output_dir=tempfile.mkdtemp(prefix="jal-step-"), loss_type="jal-ce", loss_preset="cifar10",
        l1_weight_decay=l1, weight_decay=0.0, per_device_train_batch_size=batch_size, learning_rate=0.01,
        optim="sgd", optim_args="momentum=0.9", lr_scheduler_type="cosine", max_grad_norm=5.0,
        max_steps=warmup + steps * repeats + 1, bf16=bf16, use_cpu=device.type == "cpu",
        report_to="none", logging_strategy="no", save_strategy="no", eval_strategy="no", disable_tqdm=True,
        remove_unused_columns=False, logging_nan_inf_filter=False, dataloader_pin_memory=False, seed=0,
        cuda_graph_step=graph,
    )
    timer = StepTimer(device, warmup, steps, profile_steps)
    trainer = JALTrainer(model=model, args=args, train_dataset=data, data_collator=DeviceImageCollator(),
                         callbacks=[timer])
    trainer.train()
    return timer.blocks, timer.profiler


def profile_table(profiler: Any, device: torch.device, rows: int = 25) -> str:
    """The profiler's top operators by self time on the device (CUDA) or the host (CPU)."""
    if profiler is None:
        return ""
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=key, row_limit=rows) + "\n" + profiler.key_averages().table(
        sort_by="cpu_time_total", row_limit=rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=100, help="Steps per timed block.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-subset", type=int, default=5000, help="0 = all 50,000 images.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", default="cifar10", choices=["cifar10", "digits"],
                        help="digits: 8x8 images, so that on a CPU the loop's own cost is visible.")
    parser.add_argument("--profile", action="store_true", help="Print the top operators of 10 Trainer steps.")
    parser.add_argument("--only", default=None, help="Run one variant, e.g. 'trainer bf16 + channels_last graph'.")
    parser.add_argument("--json", default=None, help="Also write this run's results to this JSON file.")
    parser.add_argument("--out", default=str(RESULTS), help="Folder for vision_step_<device>.{json,md}.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results: dict[str, dict[str, Any]] = {}
    variants = [("fp32", False, False, False)]
    if device.type == "cuda":  # CUDA graphs and bf16 only pay (or run) on a GPU
        variants += [("bf16 + channels_last", True, True, False), ("fp32 graph", False, False, True),
                     ("bf16 + channels_last graph", True, True, True)]
    for name, bf16, channels_last, graph in variants:
        for loop in ("bare", "trainer"):
            if args.only and args.only != f"{loop} {name}" or graph and loop == "bare":
                continue
            model, data = build(device, channels_last, args.train_subset, images=args.images)
            if loop == "bare":
                blocks = time_bare(bare_step_fn(model, data, args.batch_size, bf16, 5e-5), device, args.steps,
                                   args.repeats)
                prof = None
            else:
                blocks, prof = time_trainer(model, data, args.batch_size, bf16, 5e-5, args.steps, args.repeats,
                                            device, profile_steps=10 if args.profile and not graph else 0,
                                            graph=graph)
            results[f"{loop} {name}"] = {"ms_per_step": round(statistics.median(blocks), 3),
                                         "blocks": [round(b, 3) for b in blocks]}
            print(f"{loop:8s} {name:22s} {statistics.median(blocks):8.3f} ms/step  {blocks}", flush=True)
            if prof is not None:
                print(profile_table(prof, device), flush=True)
    write(results, args, device)
    if args.json:
        Path(args.json).write_text(json.dumps(results))
    return 0


def write(results: dict[str, dict[str, Any]], args: argparse.Namespace, device: torch.device) -> None:
    from jal_trainer.run_outputs import package_versions

    sys.path.insert(0, str(Path(__file__).parent))
    import benchmark

    hw = benchmark.hardware()
    tag = device.type
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"device": hw["gpu"] if tag == "cuda" else hw["cpu"], "hardware": hw, "versions": package_versions(),
               "batch_size": args.batch_size, "steps_per_block": args.steps, "repeats": args.repeats,
               "threads": args.threads, "results": results}
    tag = tag if args.images == "cifar10" else f"{tag}_{args.images}"
    (out / f"vision_step_{tag}.json").write_text(json.dumps(payload, indent=2))
    lines = [f"# One {args.images} training step: JALTrainer against a bare PyTorch loop ({tag})", "",
             f"Command: `python recipes/bench_vision_step.py {' '.join(sys.argv[1:])}`; "
             f"8-layer CNN ({args.images}), batch "
             f"{args.batch_size}, JAL-CE (cifar10 preset, float32) + L1 5e-5, "
             "SGD momentum 0.9, clipping 5, crop + flip "
             f"on the device; median of {args.repeats} blocks of {args.steps} steps after a warm-up; "
             f"{payload['device']}, {args.threads} torch thread(s); torch {payload['versions']['torch']}, "
             f"transformers {payload['versions']['transformers']}.", "",
             "| loop | precision | ms / step | ratio to bare |", "|---|---|---|---|"]
    for key, value in results.items():
        loop, name = key.split(" ", 1)
        bare = results.get(f"bare {name.removesuffix(' graph')}", value)["ms_per_step"]
        lines.append(f"| {loop} | {name} | {value['ms_per_step']:.2f} | {value['ms_per_step'] / bare:.2f} |")
    (out / f"vision_step_{tag}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
