"""How the cells of `paper_grid.py` train on the GPU: measured, not guessed.

On a GPU, ``--mode auto`` first measures the CUDA-graph step in bf16 + channels_last and in
fp32, each with all workers at once (about a minute), and keeps the mode and worker count that
finish the most cells in the budget; ``probe.json`` records the measurements. (The first GPU
call, in eager mode at 10-15 ms per step, finished no 120-epoch cell in 8 minutes:
``recipes/results/vision_step_cuda.md``.)

Example:
    >>> cells_in_budget(4.0, 8, 46_920, 540)   # 4 ms/step: 228 s per cell, two waves of 8
    16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# How a cell trains: the `bench_vision_step.py` variant that measures it, and its `jal train` flags.
# bf16 autocast only for the model (losses stay float32); the graph modes replay one CUDA graph per step.
MODES: dict[str, tuple[str, tuple[str, ...]]] = {
    "bf16-graph": ("trainer bf16 + channels_last graph",
                   ("--bf16", "true", "--channels_last", "true", "--cuda_graph_step", "true")),
    "fp32-graph": ("trainer fp32 graph", ("--cuda_graph_step", "true")),
    "bf16": ("trainer bf16 + channels_last", ("--bf16", "true", "--channels_last", "true")),
    "fp32": ("trainer fp32", ()),
}
AUTO_CANDIDATES = ("bf16-graph", "fp32-graph")
# Per cell beyond its steps: process start, data, model, capture and the final evaluation (seconds).
CELL_OVERHEAD_S = 40.0


def steps_per_cell(args: argparse.Namespace) -> int:
    """Optimiser steps of one cell: ceil(train rows / 128) x epochs (46,920 for the paper's 120 epochs)."""
    rows = args.train_subset or 50_000
    return -(-rows // 128) * int(args.epochs or 120)


def probe(variant: str, workers: int, out: Path, steps: int = 150) -> float | None:
    """Median ms per step of ``workers`` concurrent `bench_vision_step.py` runs of ``variant`` (None: failed)."""
    procs = []
    for i in range(workers):
        json_path = out / f"probe-{i}.json"
        json_path.unlink(missing_ok=True)
        cmd = [sys.executable, str(ROOT / "recipes" / "bench_vision_step.py"), "--device", "cuda", "--only", variant,
               "--steps", str(steps), "--repeats", "1", "--train-subset", "5000", "--out", str(out / f"p{i}"),
               "--json", str(json_path)]
        procs.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=ROOT), json_path))
    times = []
    deadline = time.time() + 100  # one shared deadline: a hung probe must not eat the grid's budget
    for proc, json_path in procs:
        try:
            proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
        if json_path.is_file():
            times.extend(v["ms_per_step"] for v in json.loads(json_path.read_text()).values())
    return sorted(times)[len(times) // 2] if len(times) == workers else None


def cells_in_budget(ms_per_step: float, workers: int, steps: int, seconds: float) -> int:
    """Cells that finish within ``seconds`` when ``workers`` train at once at ``ms_per_step`` each.

    Example:
        >>> cells_in_budget(4.0, 8, 46_920, 540)   # 4 ms/step: 228 s per cell, two waves of 8
        16
    """
    per_cell = steps * ms_per_step / 1000 * 1.05 + CELL_OVERHEAD_S
    return workers * int(seconds // per_cell)


def choose_mode(args: argparse.Namespace, steps: int, log, measure=probe) -> tuple[str, int]:
    """Measure the candidate modes with all workers at once; pick the mode and worker count that finish most cells.

    Each candidate is probed with ``args.workers`` concurrent processes (the contention a wave
    sees); the fastest is probed again with half as many, and the count whose waves finish more
    cells within the budget wins (ties: fewer workers, whose cells finish sooner). A mode whose
    probe fails (a GPU without graph support, say) is skipped; if all fail, ``fp32`` eager runs.
    """
    out = Path(args.scratch) / "probe"
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for mode in AUTO_CANDIDATES:
        results[(mode, args.workers)] = measure(MODES[mode][0], args.workers, out)
        log(f"probe {mode} x{args.workers}: {results[(mode, args.workers)]} ms/step")
    ok = {k: v for k, v in results.items() if v is not None}
    if not ok:
        log("every probe failed: training eagerly in fp32")
        return "fp32", args.workers
    best = min(ok, key=ok.get)[0]
    half = max(1, args.workers // 2)
    if half != args.workers:
        results[(best, half)] = measure(MODES[best][0], half, out)
        log(f"probe {best} x{half}: {results[(best, half)]} ms/step")
    seconds = args.budget_minutes * 60 - 60  # the probes and the first cell's start already took about this
    options = [(cells_in_budget(v, w, steps, seconds), -w, w) for (m, w), v in results.items() if m == best and v]
    cells, _, workers = max(options)
    log(f"chose {best} with {workers} workers: about {cells} cells expected")
    (Path(args.out) / "probe.json").write_text(json.dumps(
        {f"{m} x{w}": v for (m, w), v in results.items()} | {"chosen": f"{best} x{workers}"}, indent=2))
    return best, workers
