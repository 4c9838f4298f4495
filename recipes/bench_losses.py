"""Speed of the fused JAL-CE loss against F.cross_entropy and the plain reference composition.

Measures forward + backward time of three losses on the same random logits, interleaved
(every repeat runs each loss in turn, so slow drifts of a shared machine hit all of them) and
reports medians over repeats and their ratios:

* ``jal-ce`` (``build_loss("jal-ce", preset="cifar10")``, the fused kernel);
* ``F.cross_entropy``, the floor to compare against;
* the reference composition, as the official code writes JAL-CE: ``log_softmax`` and a one-hot
  for NCE, a separate ``softmax`` and one-hot for AMSE, autograd for the backward.

Targets (the issue's): at N=4096, K=1000, jal-ce within 2x of F.cross_entropy (aim 1.5x) and at
least 3x faster than the reference; at N=512, K in {10, 100}, never slower than the reference.

Writes ``recipes/results/loss_speed.json`` (command, hardware, versions, threads, seed, raw
medians, ratios) and ``recipes/results/loss_speed.md`` (a table).

Example:
    python recipes/bench_losses.py                 # all threads torch uses by default
    python recipes/bench_losses.py --threads 1 --repeats 31
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from jal_trainer.losses import build_loss

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# (N, K): the sizes
CASES = ((4096, 1000), (512, 10), (512, 100))
BIG = (4096, 1000)
TARGET_VS_CE = 2.0  # jal-ce / F.cross_entropy at BIG, at most (aim 1.5)
TARGET_SPEEDUP_BIG = 3.0  # reference / jal-ce at BIG, at least
TARGET_SPEEDUP_SMALL = 1.0  # reference / jal-ce at N=512, at least


def reference_jal_ce(logits: torch.Tensor, labels: torch.Tensor, alpha: float, beta: float, a: float) -> torch.Tensor:
    """JAL-CE composed as the official code does: an NCE module and an AMSE module, each with its
    own one-hot, NCE from ``log_softmax``, AMSE from a separate ``softmax``; autograd backward."""
    num_classes = logits.shape[1]
    logp = F.log_softmax(logits, dim=1)
    one_hot = F.one_hot(labels, num_classes).float()
    nce = -(one_hot * logp).sum(dim=1) / -logp.sum(dim=1)
    probs = F.softmax(logits, dim=1)
    one_hot_amse = F.one_hot(labels, num_classes).float()
    amse = (probs - a * one_hot_amse).pow(2).mean()
    return alpha * nce.mean() + beta * amse


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=21, help="interleaved repeats per case (median taken)")
    parser.add_argument("--min-block-ms", type=float, default=20.0, help="each timed block runs at least this long")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random logits and labels")
    parser.add_argument("--device", default="cpu", help="torch device (the targets are stated for cpu)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where loss_speed.{json,md} go")
    return parser


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _step_fn(loss_fn: LossFn, logits: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One forward + backward of ``loss_fn``, gradients reset first."""

    def step() -> None:
        logits.grad = None
        loss_fn(logits, labels).backward()

    return step


def _calibrate(step: Callable[[], None], device: torch.device, min_block_s: float) -> int:
    """Iterations per timed block so that one block lasts about ``min_block_s``."""
    for _ in range(3):
        step()
    _sync(device)
    start = time.perf_counter()
    step()
    _sync(device)
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, int(min_block_s / once))


def time_case(num: int, num_classes: int, args: argparse.Namespace) -> dict[str, object]:
    """Median forward+backward milliseconds of the three losses at one size."""
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    logits = (3.0 * torch.randn(num, num_classes, generator=gen)).to(device).requires_grad_()
    labels = torch.randint(0, num_classes, (num,), generator=gen).to(device)
    jal = build_loss("jal-ce", preset="cifar10")
    hp = jal.hparams
    losses = {
        "jal-ce": jal,
        "cross_entropy": F.cross_entropy,
        "reference": lambda z, y: reference_jal_ce(z, y, hp["alpha"], hp["beta"], hp["a"]),
    }
    with torch.no_grad():
        value_gap = abs(jal(logits, labels).item() - losses["reference"](logits, labels).item())
    steps = {name: _step_fn(fn, logits, labels) for name, fn in losses.items()}
    inner = {name: _calibrate(step, device, args.min_block_ms / 1e3) for name, step in steps.items()}
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():  # interleaved
            _sync(device)
            start = time.perf_counter()
            for _ in range(inner[name]):
                step()
            _sync(device)
            samples[name].append((time.perf_counter() - start) / inner[name] * 1e3)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "N": num,
        "K": num_classes,
        "median_ms": medians,
        "iterations_per_block": inner,
        "samples_ms": samples,
        "jal_over_cross_entropy": medians["jal-ce"] / medians["cross_entropy"],
        "reference_over_jal": medians["reference"] / medians["jal-ce"],
        "abs_value_gap_vs_reference": value_gap,
    }


def _checks(cases: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    checks = {}
    for case in cases:
        key = f"N={case['N']},K={case['K']}"
        if (case["N"], case["K"]) == BIG:
            checks[f"{key}: jal-ce / cross_entropy <= {TARGET_VS_CE}"] = {
                "value": case["jal_over_cross_entropy"],
                "ok": case["jal_over_cross_entropy"] <= TARGET_VS_CE,
            }
            target = TARGET_SPEEDUP_BIG
        else:
            target = TARGET_SPEEDUP_SMALL
        checks[f"{key}: reference / jal-ce >= {target}"] = {
            "value": case["reference_over_jal"],
            "ok": case["reference_over_jal"] >= target,
        }
    return checks


def _hardware() -> dict[str, object]:
    info: dict[str, object] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch_parallel_info": torch.__config__.parallel_info(),
    }
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        info["cpu_model"] = model
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def _load_average() -> float | None:
    """One-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _markdown(report: dict[str, object]) -> str:
    lines = [
        "# Loss speed: fused JAL-CE vs F.cross_entropy and the reference composition",
        "",
        f"Command: `{report['command']}`  ",
        f"torch {report['torch_version']}, {report['threads']} thread(s), device {report['device']}, "
        f"CPU {report['hardware'].get('cpu_model', report['hardware']['processor'])}, "
        f"seed {report['seed']}, median of {report['repeats']} interleaved repeats, "
        f"1-minute load average before / after {report['load_average_before_after']}.",
        "",
        "Forward + backward, milliseconds per call:",
        "",
        "| N | K | jal-ce | F.cross_entropy | reference | jal-ce / CE | reference / jal-ce |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in report["cases"]:
        med = case["median_ms"]
        lines.append(
            f"| {case['N']} | {case['K']} | {med['jal-ce']:.3f} | {med['cross_entropy']:.3f} | "
            f"{med['reference']:.3f} | {case['jal_over_cross_entropy']:.2f} | {case['reference_over_jal']:.2f} |"
        )
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for name, check in report["checks"].items():
        lines.append(f"| {name} | {check['value']:.2f} | {'yes' if check['ok'] else 'NO'} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = make_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = _load_average()
    cases = [time_case(num, k, args) for num, k in CASES]
    report = {
        "command": " ".join(["python", "recipes/bench_losses.py", *(sys.argv[1:] if argv is None else argv)]),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": args.device,
        "seed": args.seed,
        "repeats": args.repeats,
        "min_block_ms": args.min_block_ms,
        "hardware": _hardware(),
        # other processes share the CPU when these exceed the thread count: timings are then contended
        "load_average_before_after": [load_before, _load_average()],
        "loss_hparams": build_loss("jal-ce", preset="cifar10").hparams,
        "cases": cases,
        "checks": _checks(cases),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "loss_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    (args.out_dir / "loss_speed.md").write_text(markdown)
    print(markdown)
    return report


if __name__ == "__main__":
    main()
