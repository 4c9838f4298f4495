"""Accuracy benchmark runner: JAL against the baselines over a grid of data sets, noise, losses, seeds.

A grid is a YAML file (see ``recipes/grids/cpu.yaml``) naming data sets (each a `jal train`
recipe plus overrides), noise settings, losses, per-loss regularisation regimes and seeds. Every
cell of the grid is one `jal train` run, called in-process as ``jal_trainer.train.main(argv)``;
each finished run writes one JSON under ``<runs_dir>/<grid name>/``, so a cut session resumes
where it stopped (runs whose JSON exists are skipped). ``aggregate`` turns the run files into the
table of clean test accuracy (mean +- std over seeds) as JSON, Markdown and a plot. A loss named
``<loss>+clean`` or ``<loss>+relabel`` is a detect-then-retrain cell (``recipes/bench_clean.py``).

Runs go through a pool of worker processes (``--workers``), each limited to ``--threads`` torch
threads and importing the package once; ``maxtasksperchild`` recycles them to keep memory flat.
On a 2-core machine two single-threaded workers beat one two-threaded process for these small
models (measured: see ``recipes/results/cpu_table.md``).

This file runs cells and holds the command line; what a grid is and where its run files go is in
``recipes/bench_grid.py``, the report (table, verdicts, plot, provenance) in ``recipes/bench_report.py``.
Their names are re-exported here, so ``benchmark.aggregate``, ``benchmark.load_grid`` and so on work.

Example:
    $ python recipes/benchmark.py run recipes/grids/cpu.yaml --workers 2
    $ python recipes/benchmark.py aggregate recipes/grids/cpu.yaml --out recipes/results/cpu_table
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# The grid and the report live beside this file; tests load it by path, so recipes/ must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))
# Re-exported: tests and other recipes reach every part of the benchmark as `benchmark.<name>`.
from bench_grid import (  # noqa: E402, F401
    DEFAULT_RUNS_DIR, FAST_FLAGS, JAL_LOSSES, NOISE_LABEL_KEYS, ROOT, Grid, RunSpec, expand, load_grid, load_runs,
    write_json,
)
from bench_report import (  # noqa: E402, F401
    aggregate, best_losses, column_name, hardware, jal_verdicts, markdown_table, plot, provenance, python_command,
    realised_noise_line, reference_table, verdict_text, write_report,
)

_write_json, _provenance = write_json, provenance  # the names they had before the split

# ---- running ------------------------------------------------------------------------------------


def run_one(spec: RunSpec, out_path: str) -> dict[str, Any]:
    """Train one cell in this process and write its JSON to ``out_path`` (atomically).

    The model and Trainer files go to a scratch folder under the temp dir, removed afterwards:
    only the run's JSON (accuracy, seconds, argv, realised noise) is kept.
    """
    from jal_trainer.train import main

    if Path(out_path).exists():  # written meanwhile, e.g. a plain cell by its `+clean` cell's detecting run
        return json.loads(Path(out_path).read_text())
    if spec.loss.endswith(("+clean", "+relabel")):  # detect, then retrain: two trainings (recipes/bench_clean.py)
        return _run_clean_cell(spec, out_path)
    scratch = tempfile.mkdtemp(prefix=f"jalbench-{spec.dataset}-")
    argv = [*spec.argv, "--output_dir", scratch]
    start = time.perf_counter()
    try:
        metrics = main(argv)
        seconds = time.perf_counter() - start
        report_path = Path(scratch) / "noise_report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        extra = _run_extras(Path(scratch))
        _keep_slice(Path(scratch), Path(out_path))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = {
        "grid": spec.grid, "dataset": spec.dataset, "noise_type": spec.noise_type, "noise_rate": spec.noise_rate,
        "loss": spec.loss, "seed": spec.seed, "test_accuracy": float(metrics["test_accuracy"]),
        "seconds": round(seconds, 2), "realised_noise_rate": report.get("noise_rate"),
        "epochs": metrics.get("test_epoch"), "train_seconds": metrics.get("train_runtime"),
        "min_a": report.get("min_a"), "num_train": report.get("num_samples"),
        "argv": ["jal", "train", *spec.argv], "metrics": metrics,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": run_device(spec.argv), **extra,
    }
    if spec.mode:
        record["regime"] = spec.mode
    write_json(Path(out_path), record)
    return record


def emulated_bf16(specs: list[RunSpec]) -> list[RunSpec]:
    """The CPU runs of ``specs`` that ask for ``--bf16 true`` where this CPU has no native bf16."""
    from jal_trainer.run_summary import cpu_has_native_bf16

    wanted = [s for s in specs if str(dict(zip(s.argv, s.argv[1:])).get("--bf16", "false")).lower() == "true"
              and run_device(s.argv) == "cpu"]
    return [] if not wanted or cpu_has_native_bf16() else wanted


def run_device(argv: list[str] | tuple[str, ...]) -> str:
    """Where a run trained: ``"cpu"``, or ``"cuda: <name>"`` (the Trainer takes the GPU unless ``--use_cpu``)."""
    import torch

    settings = dict(zip(argv, argv[1:]))
    if torch.cuda.is_available() and str(settings.get("--use_cpu", "false")).lower() != "true":
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return "cpu"


def _run_clean_cell(spec: RunSpec, out_path: str) -> dict[str, Any]:
    """A ``<loss>+clean`` cell: the plain run, then `jal clean` (drop) on it; the same JSON fields plus
    ``plain_test_accuracy``, ``flagged``, ``dropped``, ``trainings``... (`bench_clean.cell_record`)."""
    import bench_clean

    cell = bench_clean.run_cell(list(spec.argv), log_dir_prefix=f"jalbench-{spec.dataset}-clean-",
                                act=bench_clean.action(spec.loss))
    metrics, report = cell["metrics"], cell["report"]
    record = {
        "grid": spec.grid, "dataset": spec.dataset, "noise_type": spec.noise_type, "noise_rate": spec.noise_rate,
        "loss": spec.loss, "seed": spec.seed, "test_accuracy": float(metrics["test_accuracy"]),
        "seconds": round(cell["seconds"], 2), "realised_noise_rate": report.get("noise_rate"),
        "epochs": metrics.get("test_epoch"), "train_seconds": metrics.get("train_runtime"),
        "min_a": report.get("min_a"), "num_train": report.get("num_samples"),
        "argv": ["jal", "train", *spec.argv, "--find_label_issues", "true", "&&", "jal", "clean", "<run>",
                 "--action", cell["action"]], "metrics": metrics,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": run_device(spec.argv),
        **bench_clean.cell_record(cell),
    }
    if spec.mode:
        record["regime"] = spec.mode
    write_json(Path(out_path), record)
    _write_plain_cell(spec, Path(out_path), cell, record)
    return record


def _write_plain_cell(spec: RunSpec, out_path: Path, cell: dict[str, Any], clean: dict[str, Any]) -> None:
    """Write the plain ``<loss>`` cell of a ``<loss>+clean`` cell from its detecting run, when it is missing.

    The detecting run is the plain cell's argv plus ``--find_label_issues true``, whose epoch-end
    pass keeps the random state: the same training (the report counts, over the cells where both
    ran, how often the two accuracies agree; 72 of 72 in the probe grid). One training saved.
    """
    import bench_clean

    base = bench_clean.base_loss(spec.loss)
    path = out_path.with_name(f"{base.replace('+', '_')}-seed{spec.seed}.json")
    if path.exists():
        return
    metrics = cell["plain_metrics"]
    record = {**{k: clean[k] for k in ("grid", "dataset", "noise_type", "noise_rate", "seed", "realised_noise_rate",
                                        "min_a", "num_train", "device") if k in clean},
              "loss": base, "test_accuracy": float(metrics["test_accuracy"]), "seconds": cell["plain_seconds"],
              "epochs": metrics.get("test_epoch"), "train_seconds": metrics.get("train_runtime"),
              "argv": ["jal", "train", *spec.argv, "--find_label_issues", "true"], "metrics": metrics,
              "curve": cell["plain_curve"], "derived_from": spec.loss,
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if spec.mode:
        record["regime"] = spec.mode
    write_json(path, record)


def _keep_slice(run_dir: Path, out_path: Path) -> None:
    """Copy auto's held-out slice (candidates' probabilities, noisy and clean labels) to ``<run>.slice.npz``.

    It lets `recipes/auto_slice_check.py evaluate --runs` judge auto's rule on the slice's clean
    training labels in this regime, without retraining a candidate.
    """
    from jal_trainer.auto_search import SLICE_FILE

    if (run_dir / SLICE_FILE).exists():
        out_path.parent.mkdir(parents=True, exist_ok=True)  # the first run of a new column makes its folder
        shutil.copyfile(run_dir / SLICE_FILE, out_path.with_suffix(".slice.npz"))


def _run_extras(run_dir: Path) -> dict[str, Any]:
    """Per-epoch clean test accuracy (``curve``) and, for ``loss_type: auto``, what it chose."""
    extra: dict[str, Any] = {}
    state_path = run_dir / "trainer_state.json"
    if state_path.exists():
        history = json.loads(state_path.read_text()).get("log_history", [])
        extra["curve"] = [[h["epoch"], h["eval_accuracy"]] for h in history if "eval_accuracy" in h]
    selection_path = run_dir / "loss_selection.json"
    if selection_path.exists():
        extra["auto"] = json.loads(selection_path.read_text())
    return extra


def warm_embeddings(spec: RunSpec) -> float:
    """Embed the texts of one (data set, seed) once with the frozen encoder, filling the cache.

    Train subsets depend on the seed, so each seed has its own texts to embed; doing this before
    the pool starts training keeps two workers from embedding the same texts at once.
    """
    from jal_trainer.arguments import parse_recipe
    from jal_trainer.paths import resolve_path
    from jal_trainer.probe import embed_dataset
    from jal_trainer.train import load_data

    start = time.perf_counter()
    data, model, _ = parse_recipe([*spec.argv, "--output_dir", tempfile.gettempdir()])
    path = resolve_path(model.model)
    embed_dataset(load_data(data), str(path) if path.exists() else model.model, text_column=data.text_column,
                  max_length=data.max_length)
    return time.perf_counter() - start


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import jal_trainer.train  # noqa: F401  (import once per worker, not once per run)


def _guarded(job: tuple[str, RunSpec, str]) -> tuple[str, RunSpec, Any, str | None]:
    kind, spec, out = job
    try:
        result = run_one(spec, out) if kind == "train" else warm_embeddings(spec)
        return kind, spec, result, None
    except Exception as err:  # noqa: BLE001  one broken cell must not stop the grid; it is reported at the end
        return kind, spec, None, f"{type(err).__name__}: {err}"


def run_grid(grid: Grid, runs_dir: str | os.PathLike[str] = DEFAULT_RUNS_DIR, *, workers: int = 2, threads: int = 1,
             only: Iterable[str] | None = None, losses: Iterable[str] | None = None,
             seeds: Iterable[int] | None = None, max_tasks_per_child: int = 20, log=print) -> dict[str, Any]:
    """Run every cell of ``grid`` whose JSON is missing; return counts, failures and wall time.

    ``workers=0`` runs in this process (tests, debugging); otherwise a spawn pool of ``workers``
    processes with ``threads`` torch threads each.
    """
    out_dir = Path(runs_dir) / grid.name
    specs = select(expand(grid, only), losses, seeds)
    # Seed-major: a session cut short leaves every setting at fewer seeds, not some settings empty.
    todo = sorted((s for s in specs if not (out_dir / s.relpath).exists()), key=lambda s: s.seed)
    log(f"{len(specs)} runs in grid {grid.name!r}; {len(specs) - len(todo)} already done, {len(todo)} to run")
    seen: set[tuple[str, int]] = set()
    warm = []
    for s in todo:
        if s.freeze_encoder and (s.dataset, s.seed) not in seen:
            seen.add((s.dataset, s.seed))
            warm.append(("warm", s, ""))
    jobs = warm + [("train", s, str(out_dir / s.relpath)) for s in todo]
    start, failures, done = time.time(), [], 0
    for kind, spec, result, error in _execute(jobs, workers, threads, max_tasks_per_child):
        elapsed = time.time() - start
        if error is not None:
            failures.append({"kind": kind, "run": spec.relpath, "error": error})
            log(f"FAILED {kind} {spec.relpath}: {error}")
        elif kind == "warm":
            log(f"[{elapsed:7.0f}s] embeddings ready for {spec.dataset} seed {spec.seed} ({result:.1f}s)")
        else:
            done += 1
            log(f"[{elapsed:7.0f}s] {done}/{len(todo)} {spec.relpath} acc {result['test_accuracy']:.4f} "
                f"({result['seconds']:.1f}s)")
    wall = time.time() - start
    session = {"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start)), "wall_seconds": round(wall, 1),
               "runs_done": done, "failures": failures, "workers": workers, "threads": threads,
               "command": python_command(" ".join(sys.argv)) if sys.argv else ""}
    if todo:
        _append_session(out_dir, session)
    return session


def select(specs: list[RunSpec], losses: Iterable[str] | None, seeds: Iterable[int] | None) -> list[RunSpec]:
    """The cells of ``specs`` with one of ``losses`` and one of ``seeds`` (None: all): a slice of a big grid.

    Example:
        >>> grid = Grid("g", [0, 1], ["ce", "gce"], [{"name": "d", "config": "r.yaml",
        ...     "noise": [{"noise_type": "symmetric", "noise_rate": 0.2}]}])
        >>> [(s.loss, s.seed) for s in select(expand(grid), ["gce"], [1])]
        [('gce', 1)]
    """
    wanted_losses = set(losses) if losses else None
    wanted_seeds = set(seeds) if seeds else None
    return [s for s in specs if (wanted_losses is None or s.loss in wanted_losses)
            and (wanted_seeds is None or s.seed in wanted_seeds)]


def _execute(jobs: list, workers: int, threads: int, max_tasks_per_child: int):
    if workers <= 0:
        for job in jobs:
            yield _guarded(job)
        return
    import multiprocessing as mp

    # OMP/MKL read their thread counts at import: set them before the workers start.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ctx = mp.get_context("spawn")  # no fork after torch is imported
    with ctx.Pool(workers, initializer=_init_worker, initargs=(threads,), maxtasksperchild=max_tasks_per_child) as pool:
        warm = [j for j in jobs if j[0] == "warm"]
        train = [j for j in jobs if j[0] == "train"]
        yield from pool.imap_unordered(_guarded, warm)  # all embeddings first, then training
        yield from pool.imap_unordered(_guarded, train)


def _append_session(out_dir: Path, session: dict[str, Any]) -> None:
    path = out_dir / "_sessions.json"
    sessions = json.loads(path.read_text()) if path.exists() else []
    write_json(path, [*sessions, session])


# ---- command line -------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="Run the grid's missing cells (resumable).")
    run.add_argument("grid", help="Grid YAML file, e.g. recipes/grids/cpu.yaml.")
    run.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR), help="Where run JSONs go (<runs-dir>/<grid name>/).")
    run.add_argument("--workers", type=int, default=2, help="Worker processes; 0 runs in this process.")
    run.add_argument("--threads", type=int, default=1, help="Torch threads per worker.")
    run.add_argument("--only", default=None, help="Comma-separated data set names, modes (probe, finetune) or "
                     "mode:name of the grid to run.")
    run.add_argument("--losses", default=None, help="Comma-separated losses of the grid to run (default: all).")
    run.add_argument("--seeds", default=None, help="Comma-separated seeds of the grid to run (default: all).")
    run.add_argument("--dry-run", action="store_true", help="Print the argv of each missing run and stop.")
    run.add_argument("--allow-emulated-bf16", action="store_true",
                     help="Run --bf16 true cells on a CPU that only emulates bf16 (about 14x slower) anyway.")
    agg = sub.add_parser("aggregate", help="Write the table (JSON, Markdown) and plot from the run JSONs.")
    agg.add_argument("grid", help="Grid YAML file.")
    agg.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR))
    agg.add_argument("--out", default=str(ROOT / "recipes" / "results" / "cpu_table"),
                     help="Output stem: writes <out>.json, <out>.md and <out>.png.")
    agg.add_argument("--merge", nargs="*", default=[], metavar="CELLS_TAR",
                     help="First merge these returned cells.tar files (or folders) of recipes/gpu/paper_grid.py "
                          "into --runs-dir; any number, in any order.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    grid = load_grid(args.grid)
    if args.command == "run":
        only = args.only.split(",") if args.only else None
        losses = args.losses.split(",") if args.losses else None
        seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else None
        if args.dry_run:
            for spec in select(expand(grid, only), losses, seeds):
                if not (Path(args.runs_dir) / grid.name / spec.relpath).exists():
                    print("jal train " + " ".join(spec.argv))
            return 0
        missing = [s for s in select(expand(grid, only), losses, seeds)
                   if not (Path(args.runs_dir) / grid.name / s.relpath).exists()]
        slow = emulated_bf16(missing)
        if slow and not args.allow_emulated_bf16:
            print(f"{len(slow)} missing runs ask for --bf16 true, and this CPU only emulates bf16 (no "
                  "AVX512-BF16 or AMX): about 14x slower than float32 here. Run them on a CPU with native bf16 or "
                  "a GPU, or pass --allow-emulated-bf16.", file=sys.stderr)
            return 2
        session = run_grid(grid, args.runs_dir, workers=args.workers, threads=args.threads, only=only, losses=losses,
                           seeds=seeds)
        print(f"grid {grid.name}: {session['runs_done']} runs in {session['wall_seconds'] / 60:.1f} min, "
              f"{len(session['failures'])} failed")
        return 1 if session["failures"] else 0
    if args.merge:
        sys.path.insert(0, str(ROOT / "recipes" / "gpu"))
        from paper_grid import merge

        print(f"merged {merge(args.merge, args.runs_dir)} cell JSONs from {len(args.merge)} source(s)")
    runs = load_runs(args.runs_dir, grid.name)
    if not runs:  # nothing to tabulate: say where the runs were looked for, not an IndexError in the plot
        print(f"no finished runs of grid {grid.name!r} under {Path(args.runs_dir) / grid.name}: run the grid first "
              "(`benchmark.py run ...`), or pass --merge with the cells.tar a GPU call returned.", file=sys.stderr)
        return 2
    sessions_path = Path(args.runs_dir) / grid.name / "_sessions.json"
    sessions = json.loads(sessions_path.read_text()) if sessions_path.exists() else []
    command = "python recipes/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = write_report(grid, runs, args.out, sessions=sessions, command=command)
    print(f"{len(runs)} runs -> {len(rows)} rows: {args.out}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
