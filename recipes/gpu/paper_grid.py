"""The paper's CIFAR-10 grid on one GPU within a wall-clock budget: cells in priority order, several at once.

Each cell is one ``jal train`` run of ``recipes/grids/cifar10_paper.yaml`` (the paper's protocol,
120 epochs), run in its own process so that several share the one GPU. The scheduler:

- orders the cells by :func:`priority` (JAL-CE and CE at symmetric 0.8 first; see the issue's list);
- skips cells whose JSON is already under ``--runs-dir`` (committed results), so a later GPU
  session continues with the next cells;
- starts a new cell only while ``elapsed + estimated cell time <= --budget-minutes``; the estimate
  is the longest finished cell so far (the first wave of ``--workers`` cells starts at once);
- after every finished cell rewrites ``<out>/cells.tar`` (atomically) with every JSON finished in
  this call, so a call cut off by its time limit still returns what finished;
- stops cells still running at ``--hard-minutes`` and exits.

How cells train (``--mode``, `paper_grid_mode.py`): on a GPU the default ``auto`` first measures the CUDA-graph step in
bf16 + channels_last and in fp32, each with all workers at once (about a minute), and keeps the
mode and worker count that finish the most cells in the budget; ``probe.json`` records the
measurements. (The first GPU call, in eager mode at 10-15 ms per step, finished no 120-epoch cell
in 8 minutes: ``recipes/results/vision_step_cuda.md``.) Cells never evaluate, checkpoint or run
the per-epoch training-set pass inside the timed training (the runner's ``FAST_FLAGS``).
``seconds_per_epoch`` in each JSON is `Trainer.train`'s runtime over the epochs.

Commands:
    # on a GPU machine (recipes/gpu/paper_grid.sh wraps this with MPS and the data path)
    python recipes/gpu/paper_grid.py run --out "$OUT" --budget-minutes 9 --workers 8
    # back here: merge any number of returned tars, then write the table
    python recipes/benchmark.py aggregate recipes/grids/cifar10_paper.yaml \\
        --merge ret1/cells.tar ret2/cells.tar --out recipes/results/cifar10_paper
    # the CPU rehearsal of the tests: 1,000 images, 1 epoch, 2 processes
    python recipes/gpu/paper_grid.py run --out /tmp/o --workers 2 --train-subset 1000 --test-subset 200 \\
        --epochs 1 --max-cells 3 --runs-dir /tmp/runs
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "recipes"))

import benchmark  # noqa: E402  (recipes/benchmark.py: grid parsing, run_one, aggregation)
from paper_grid_mode import MODES, choose_mode, steps_per_cell  # noqa: E402  (how cells train)

DEFAULT_GRID = ROOT / "recipes" / "grids" / "cifar10_paper.yaml"
TAR_NAME = "cells.tar"
# No per-step host sync for the NaN/inf filter of the logged loss; batches are already on the device.
FAST_LOOP_FLAGS = ("--logging_nan_inf_filter", "false", "--dataloader_pin_memory", "false")
# The order: the headline pair at the hardest noise, the same pair at the other three
# settings, then JAL-FL and NCE+RCE, then the clean-label CE yardstick and the other seeds.
NOISE_ORDER = ("symmetric0.8", "cifar10-asym0.4", "symmetric0.4", "cifar10-asym0.2")


def noise_key(spec: benchmark.RunSpec) -> str:
    """``symmetric0.8``, ``cifar10-asym0.2`` or ``clean``: the cell's noise as one word."""
    return spec.noise_type if spec.noise_rate is None else f"{spec.noise_type}{spec.noise_rate:g}"


def priority(spec: benchmark.RunSpec) -> tuple[int, int, int, int]:
    """Sort key: (group, seed, noise position, loss position); lower runs first.

    Example:
        >>> s = benchmark.RunSpec("g", "cifar10", "symmetric", 0.8, "jal-ce", 0, ())
        >>> priority(s)
        (0, 0, 0, 0)
    """
    noise = noise_key(spec)
    pos = NOISE_ORDER.index(noise) if noise in NOISE_ORDER else len(NOISE_ORDER)
    headline = spec.loss in ("jal-ce", "ce")
    loss_pos = ("jal-ce", "ce", "jal-fl", "nce+rce").index(spec.loss) if spec.loss in (
        "jal-ce", "ce", "jal-fl", "nce+rce") else 9
    if spec.seed == 0 and headline and noise == "symmetric0.8":
        group = 0
    elif spec.seed == 0 and headline and noise in NOISE_ORDER:
        group = 1
    elif spec.seed == 0 and noise in NOISE_ORDER:
        group = 2
    elif spec.seed == 0:  # the clean-label yardstick
        group = 3
    else:
        group = 4
    return group, spec.seed, pos, loss_pos


@dataclass
class Cell:
    """A running or finished cell: its spec, process, output JSON and timing."""

    spec: benchmark.RunSpec
    json_path: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0
    ended: float | None = None
    returncode: int | None = None
    extra: list[str] = field(default_factory=list)


def cell_command(grid: Path, spec: benchmark.RunSpec, json_path: Path, extra: list[str]) -> list[str]:
    """The ``python paper_grid.py cell ...`` command line that trains ``spec`` in a new process."""
    return [sys.executable, str(Path(__file__).resolve()), "cell", "--grid", str(grid), "--run", spec.relpath,
            "--json", str(json_path), "--", *extra]


def extra_flags(args: argparse.Namespace, mode: str) -> list[str]:
    """Flags appended to every cell's ``jal train`` argv (later flags override the recipe's)."""
    flags = [*FAST_LOOP_FLAGS, *MODES[mode][1]]
    if args.compile:
        flags += ["--torch_compile", "true"]
    if args.train_subset:
        flags += ["--train_subset", str(args.train_subset)]
    if args.test_subset:
        flags += ["--test_subset", str(args.test_subset)]
    if args.epochs:
        flags += ["--num_train_epochs", str(args.epochs)]
    return flags


def pack(cells: list[Cell], out: Path, grid_name: str) -> int:
    """Rewrite ``out/cells.tar`` with every finished cell's JSON (as ``<grid>/<relpath>``); return the count."""
    buffer = io.BytesIO()
    count = 0
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for cell in cells:
            if cell.json_path.is_file():
                tar.add(cell.json_path, arcname=f"{grid_name}/{cell.spec.relpath}")
                count += 1
    tmp = out / (TAR_NAME + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, out / TAR_NAME)  # a call killed mid-write still returns the previous complete tar
    return count


def warm_cache(train_subset: int | None) -> float:
    """Decode CIFAR-10 once into the on-disk cache so the cells only read it (about 8 s)."""
    start = time.perf_counter()
    if not train_subset:  # subsets decode only their own images and do not use the cache
        from jal_trainer.data import load_cifar10

        load_cifar10()  # the recipes' ${shared}/data/cifar10_jpeg, found through JAL_SHARED_DIR
    return time.perf_counter() - start


def schedule(args: argparse.Namespace, log) -> dict[str, Any]:
    """Run the grid's missing cells in priority order within the budget; return a summary."""
    import torch

    cuda = torch.cuda.is_available()
    grid = benchmark.load_grid(args.grid)
    out, runs_dir = Path(args.out), Path(args.runs_dir) / grid.name
    out.mkdir(parents=True, exist_ok=True)
    work = out / "cells" if args.keep_in_out else Path(args.scratch) / grid.name
    specs = sorted(benchmark.expand(grid), key=priority)
    todo = [s for s in specs if not (runs_dir / s.relpath).exists()]
    if args.max_cells:
        todo = todo[: args.max_cells]
    log(f"{len(specs)} cells in {grid.name}; {len(specs) - len(todo) if not args.max_cells else 'n/a'} done; "
        f"{len(todo)} to try; workers {args.workers}; budget {args.budget_minutes} min; "
        f"device {torch.cuda.get_device_name(0) if cuda else 'cpu'}")
    log(f"data cache warm in {warm_cache(args.train_subset):.1f}s")
    start = time.time()
    mode, workers = args.mode, args.workers
    if mode == "auto":
        mode, workers = choose_mode(args, steps_per_cell(args), log)
    args.workers = workers
    extra = extra_flags(args, mode)
    log(f"mode {mode}: {' '.join(extra)}; {workers} workers")
    budget, hard = args.budget_minutes * 60, (args.hard_minutes or args.budget_minutes + 0.5) * 60
    running: list[Cell] = []
    finished: list[Cell] = []
    pending = list(todo)
    while pending or running:
        now = time.time() - start
        for cell in list(running):
            if cell.proc.poll() is not None:
                cell.ended, cell.returncode = time.time() - start, cell.proc.returncode
                running.remove(cell)
                finished.append(cell)
                log(_finish_line(cell))
                pack(finished, out, grid.name)
        durations = [c.ended - c.started for c in finished if c.returncode == 0]
        estimate = max(durations) if durations else None
        while pending and len(running) < args.workers:
            fits = estimate is None and not finished or estimate is not None and now + estimate * 1.02 <= budget
            if not fits:
                log(f"[{now:6.0f}s] budget: {len(pending)} cells not started (estimate "
                    f"{(estimate or 0):.0f}s per cell, {budget - now:.0f}s left)")
                pending.clear()
                break
            spec = pending.pop(0)
            running.append(_start(args.grid, spec, work, extra, start))
            log(f"[{now:6.0f}s] start {spec.relpath}")
        if now > hard:
            for cell in running:
                cell.proc.kill()
                log(f"[{now:6.0f}s] stopped at the hard limit: {cell.spec.relpath}")
            break
        time.sleep(args.poll_seconds)
    done = [c for c in finished if c.returncode == 0]
    return {"finished": len(done), "failed": len(finished) - len(done), "stopped": len(running), "mode": mode,
            "workers": workers, "wall_seconds": round(time.time() - start, 1), "packed": pack(finished, out, grid.name)}


def _start(grid: str, spec: benchmark.RunSpec, work: Path, extra: list[str], t0: float) -> Cell:
    json_path = work / spec.relpath
    log_path = json_path.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = log_path.open("w")
    proc = subprocess.Popen(cell_command(Path(grid), spec, json_path, extra), stdout=handle,
                            stderr=subprocess.STDOUT, cwd=ROOT)
    return Cell(spec, json_path, log_path, proc, started=time.time() - t0, extra=extra)


def _finish_line(cell: Cell) -> str:
    took = cell.ended - cell.started
    if cell.returncode == 0 and cell.json_path.is_file():
        record = json.loads(cell.json_path.read_text())
        return (f"[{cell.ended:6.0f}s] done  {cell.spec.relpath}: acc {record['test_accuracy']:.4f}, "
                f"{record.get('seconds_per_epoch') or 0:.2f} s/epoch, {took:.0f}s")
    tail = cell.log_path.read_text()[-2000:] if cell.log_path.is_file() else ""
    return f"[{cell.ended:6.0f}s] FAILED {cell.spec.relpath} (exit {cell.returncode}, {took:.0f}s):\n{tail}"


# ---- one cell (a child process) -----------------------------------------------------------------


def run_cell(grid_path: str, relpath: str, json_path: str, extra: list[str]) -> dict[str, Any]:
    """Train the grid's cell ``relpath`` with ``extra`` flags; write its JSON with device and timing."""
    import torch

    grid = benchmark.load_grid(grid_path)
    spec = next((s for s in benchmark.expand(grid) if s.relpath == relpath), None)
    if spec is None:
        raise ValueError(f"no cell {relpath!r} in grid {grid_path}; list them with benchmark.py run --dry-run.")
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
    spec = benchmark.RunSpec(**{**spec.__dict__, "argv": (*spec.argv, *extra)})
    record = benchmark.run_one(spec, json_path)
    epochs = record.get("epochs") or 0
    record["seconds_per_epoch"] = round(record["train_seconds"] / epochs, 3) if epochs and record.get(
        "train_seconds") else None
    record["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    record["hardware"] = benchmark.hardware()
    from jal_trainer.train import package_versions

    record["versions"] = {k: v for k, v in package_versions().items() if k != "platform"}
    benchmark.write_json(Path(json_path), record)
    return record


# ---- merging returned tars ----------------------------------------------------------------------


def merge(sources: list[str], runs_dir: str | os.PathLike[str]) -> int:
    """Extract the cell JSONs of returned ``cells.tar`` files (or folders) into ``runs_dir``; return the count.

    Only ``.json`` members under a relative path are taken (no absolute paths, no ``..``), so a
    tar cannot write outside ``runs_dir``. A later source overwrites an earlier copy of a cell.
    """
    root = Path(runs_dir).resolve()
    count = 0
    for source in sources:
        path = Path(source)
        if path.is_dir():
            members = [(p.relative_to(path).as_posix(), p.read_bytes()) for p in path.rglob("*.json")]
        else:
            with tarfile.open(path) as tar:
                members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
        for name, data in members:
            target = (root / name).resolve()
            if not name.endswith(".json") or root not in target.parents:
                continue
            json.loads(data)  # a truncated file fails here, before it replaces a good one
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            count += 1
    return count


# ---- command line -------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="Run the missing cells within the budget.", allow_abbrev=False)
    run.add_argument("--grid", default=str(DEFAULT_GRID))
    run.add_argument("--out", default=os.environ.get("OUT", "gpu_out"), help="Where cells.tar goes ($OUT).")
    run.add_argument("--runs-dir", default=str(benchmark.DEFAULT_RUNS_DIR),
                     help="Cells with a JSON here are done and skipped (the committed results).")
    run.add_argument("--scratch", default="/tmp/jal-paper-grid", help="Where cells write JSONs and logs.")
    run.add_argument("--keep-in-out", action="store_true", help="Write cell JSONs and logs under <out>/cells.")
    run.add_argument("--workers", type=int, default=8, help="Cells trained at once (processes sharing the GPU).")
    run.add_argument("--budget-minutes", type=float, default=9.0, help="Start no cell that would end after this.")
    run.add_argument("--hard-minutes", type=float, default=None, help="Stop running cells (default budget + 0.5).")
    run.add_argument("--max-cells", type=int, default=None, help="Try at most this many cells (rehearsals).")
    run.add_argument("--train-subset", type=int, default=None)
    run.add_argument("--test-subset", type=int, default=None)
    run.add_argument("--epochs", type=float, default=None, help="Override the recipes' 120 epochs (rehearsals).")
    run.add_argument("--compile", action="store_true", help="torch.compile the model (adds compile time per cell).")
    run.add_argument("--mode", default=None, choices=["auto", *MODES],
                     help="How cells train; auto (the default on a GPU) measures the graph modes first.")
    run.add_argument("--poll-seconds", type=float, default=1.0)
    cell = sub.add_parser("cell", help="Train one cell (used by run).", allow_abbrev=False)
    cell.add_argument("--grid", required=True)
    cell.add_argument("--run", required=True, help="The cell's relpath, e.g. cifar10/symmetric0.8/ce-seed0.json.")
    cell.add_argument("--json", required=True)
    cell.add_argument("extra", nargs="*", help="Flags appended to the cell's jal train argv (after --).")
    mrg = sub.add_parser("merge", help="Extract returned cells.tar files into the runs folder.", allow_abbrev=False)
    mrg.add_argument("sources", nargs="+")
    mrg.add_argument("--runs-dir", default=str(benchmark.DEFAULT_RUNS_DIR))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.command == "cell":
        try:
            run_cell(args.grid, args.run, args.json, args.extra)
        except Exception:  # noqa: BLE001  the parent shows the log tail
            traceback.print_exc()
            return 1
        return 0
    if args.command == "merge":
        print(f"merged {merge(args.sources, args.runs_dir)} cell JSONs into {args.runs_dir}")
        return 0
    if args.command == "run" and args.mode is None:
        import torch

        args.mode = "auto" if torch.cuda.is_available() else "fp32"
    summary = schedule(args, log=lambda line: print(line, flush=True))
    print(json.dumps(summary), flush=True)
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
