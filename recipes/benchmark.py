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

Example:
    $ python recipes/benchmark.py run recipes/grids/cpu.yaml --workers 2
    $ python recipes/benchmark.py aggregate recipes/grids/cpu.yaml --out recipes/results/cpu_table
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS_DIR = ROOT / "recipes" / "results" / "runs"
JAL_LOSSES = ("jal-ce", "jal-fl")
# Flags every benchmark run gets: no checkpoints, no per-epoch evaluation (the metric is the
# last epoch's clean test accuracy, evaluated once at the end), no memorisation pass, quiet.
FAST_FLAGS = {
    "disable_tqdm": True,
    "report_to": "none",
    "save_strategy": "no",
    "eval_strategy": "no",
    "logging_strategy": "no",
    "track_memorisation": False,
    "find_label_issues": False,
}
# Keys of a noise entry that name it in the table rather than being passed to `jal train`.
NOISE_LABEL_KEYS = ("label",)


# ---- the grid -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid: a data set, a noise setting, a loss and a seed, and its argv."""

    grid: str
    dataset: str
    noise_type: str  # the name in the table: symmetric, pairflip, cifar10n-worst, majority-vote
    noise_rate: float | None  # nominal rate of synthetic noise; None for real noise
    loss: str
    seed: int
    argv: tuple[str, ...]
    freeze_encoder: bool = False
    mode: str = ""  # the table's regime (probe, finetune) when a grid compares regimes; "" otherwise

    @property
    def relpath(self) -> str:
        """Path of the run's JSON below ``<runs_dir>/<grid>/`` (``<mode>/`` first when set)."""
        noise = self.noise_type if self.noise_rate is None else f"{self.noise_type}{self.noise_rate:g}"
        path = f"{self.dataset}/{noise}/{self.loss.replace('+', '_')}-seed{self.seed}.json"
        return f"{self.mode}/{path}" if self.mode else path


@dataclass
class Grid:
    """A parsed grid file (see ``recipes/grids/cpu.yaml`` for the schema)."""

    name: str
    seeds: list[int]
    losses: list[str]
    datasets: list[dict[str, Any]]
    regimes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    common: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    notes: list[str] = field(default_factory=list)  # hand-written reading of the results, shown after the verdicts
    title: str = ""  # heading of the report; default names the grid
    # published numbers to compare with: column name ("sym 0.4", "cifar10-asym 0.2") -> loss -> accuracy in %
    reference: dict[str, dict[str, float]] = field(default_factory=dict)
    reference_source: str = ""


def load_grid(path: str | os.PathLike[str]) -> Grid:
    """Read and check a grid YAML file.

    Raises:
        ValueError: a missing key, an empty list, or a data set whose regime is not defined.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Grid file {os.fspath(path)!r} does not exist. Pass a YAML file such as recipes/grids/cpu.yaml.")
    raw = yaml.safe_load(path.read_text()) or {}
    for key in ("name", "seeds", "losses", "datasets"):
        if not raw.get(key):
            raise ValueError(f"Grid {path} needs a non-empty {key!r} entry; see recipes/grids/cpu.yaml for the schema.")
    grid = Grid(name=str(raw["name"]), seeds=[int(s) for s in raw["seeds"]], losses=list(raw["losses"]),
                datasets=list(raw["datasets"]), regimes=raw.get("regimes") or {}, common=raw.get("common") or {},
                description=str(raw.get("description") or ""), notes=[str(n) for n in raw.get("notes") or []],
                title=str(raw.get("title") or ""), reference=raw.get("reference") or {},
                reference_source=str(raw.get("reference_source") or ""))
    for entry in grid.datasets:
        for key in ("name", "config", "noise"):
            if not entry.get(key):
                raise ValueError(f"Data set entry {entry.get('name', entry)!r} in {path} needs {key!r}.")
        regime = entry.get("regime")
        if regime is not None and regime not in grid.regimes:
            raise ValueError(
                f"Data set {entry['name']!r} uses regime {regime!r}, which {path} does not define under 'regimes'. "
                f"Defined: {sorted(grid.regimes)}."
            )
    return grid


def expand(grid: Grid, only: Iterable[str] | None = None) -> list[RunSpec]:
    """All runs of the grid, ordered data set by data set, then seed, noise and loss.

    Seeds are the outer loop within a data set, so a session cut short leaves whole seeds
    (every loss at every noise) rather than a few losses at all seeds.

    Example:
        >>> grid = Grid("g", [0], ["ce"], [{"name": "d", "config": "r.yaml", "noise": [{"noise_type": "symmetric",
        ...     "noise_rate": 0.2}]}])
        >>> expand(grid)[0].argv[:4]
        ('--config', 'r.yaml', '--noise_type', 'symmetric')
    """
    wanted = set(only) if only else None
    specs = []
    for entry in grid.datasets:
        if wanted is not None and not {entry["name"], entry.get("mode"), f"{entry.get('mode')}:{entry['name']}"} & wanted:
            continue
        regime = grid.regimes.get(entry.get("regime"), {})
        for seed in grid.seeds:
            for noise in entry["noise"]:
                for loss in entry.get("losses", grid.losses):
                    specs.append(_spec(grid, entry, noise, loss, seed, regime))
    return specs


def _spec(grid: Grid, entry: dict[str, Any], noise: dict[str, Any], loss: str, seed: int,
          regime: dict[str, dict[str, Any]]) -> RunSpec:
    flags: dict[str, Any] = {}
    flags.update({k: v for k, v in noise.items() if k not in NOISE_LABEL_KEYS})
    flags.update(FAST_FLAGS)
    flags.update(grid.common)
    flags.update(entry.get("overrides") or {})
    # A `<loss>+clean` / `<loss>+relabel` cell (recipes/bench_clean.py) trains <loss> first: its flags are <loss>'s.
    base = next((loss.removesuffix(s) for s in ("+clean", "+relabel") if loss.endswith(s)), loss)
    # Regularisation follows the loss family (the paper: L1 for JAL and ANL, L2 for the others).
    flags.update(regime.get(base, regime.get("default", {})))
    flags.update({"loss_type": base, "seed": seed, "noise_seed": seed})
    argv = ["--config", str(entry["config"])]
    for key, value in flags.items():
        argv += [f"--{key}", _flag_value(value)]
    real = noise.get("noise_type") not in ("symmetric", "pairflip", "cifar10-asym", "cifar100-asym", "instance")
    rate = None if real else float(noise["noise_rate"])
    return RunSpec(grid=grid.name, dataset=str(entry["name"]), noise_type=str(noise.get("label", noise["noise_type"])),
                   noise_rate=rate, loss=loss, seed=seed, argv=tuple(argv),
                   freeze_encoder=bool(flags.get("freeze_encoder", False)), mode=str(entry.get("mode") or ""))


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---- running ------------------------------------------------------------------------------------


def run_one(spec: RunSpec, out_path: str) -> dict[str, Any]:
    """Train one cell in this process and write its JSON to ``out_path`` (atomically).

    The model and Trainer files go to a scratch folder under the temp dir, removed afterwards:
    only the run's JSON (accuracy, seconds, argv, realised noise) is kept.
    """
    from jal_trainer.train import main

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
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = {
        "grid": spec.grid, "dataset": spec.dataset, "noise_type": spec.noise_type, "noise_rate": spec.noise_rate,
        "loss": spec.loss, "seed": spec.seed, "test_accuracy": float(metrics["test_accuracy"]),
        "seconds": round(seconds, 2), "realised_noise_rate": report.get("noise_rate"),
        "epochs": metrics.get("test_epoch"), "train_seconds": metrics.get("train_runtime"),
        "min_a": report.get("min_a"), "num_train": report.get("num_samples"),
        "argv": ["jal", "train", *spec.argv], "metrics": metrics,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra,
    }
    if spec.mode:
        record["regime"] = spec.mode
    _write_json(Path(out_path), record)
    return record


def _run_clean_cell(spec: RunSpec, out_path: str) -> dict[str, Any]:
    """A ``<loss>+clean`` cell: the plain run, then `jal clean` (drop) on it; the same JSON fields plus
    ``plain_test_accuracy``, ``flagged``, ``dropped``, ``trainings``... (`bench_clean.cell_record`)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
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
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **bench_clean.cell_record(cell),
    }
    if spec.mode:
        record["regime"] = spec.mode
    _write_json(Path(out_path), record)
    return record


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


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)  # a killed run never leaves a half-written JSON that resume would trust


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
             only: Iterable[str] | None = None, max_tasks_per_child: int = 20, log=print) -> dict[str, Any]:
    """Run every cell of ``grid`` whose JSON is missing; return counts, failures and wall time.

    ``workers=0`` runs in this process (tests, debugging); otherwise a spawn pool of ``workers``
    processes with ``threads`` torch threads each.
    """
    out_dir = Path(runs_dir) / grid.name
    specs = expand(grid, only)
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
               "command": _python_command(" ".join(sys.argv)) if sys.argv else ""}
    if todo:
        _append_session(out_dir, session)
    return session


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
    _write_json(path, [*sessions, session])


# ---- aggregation --------------------------------------------------------------------------------


def load_runs(runs_dir: str | os.PathLike[str], grid_name: str) -> list[dict[str, Any]]:
    """Every run JSON of one grid (files starting with ``_`` are session logs, not runs)."""
    root = Path(runs_dir) / grid_name
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json")) if not p.name.startswith("_")]


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of mean and sample std (ddof 1; 0 for a single seed) of the clean test accuracy.

    Returns:
        One row per (dataset, noise_type, noise_rate, loss): ``{dataset, noise_type, noise_rate,
        loss, n_seeds, mean_accuracy, std_accuracy, realised_noise_rate, mean_seconds}``, accuracy
        as a fraction, in the order the runs first appear.

    Example:
        >>> aggregate([{"dataset": "d", "noise_type": "symmetric", "noise_rate": 0.2, "loss": "ce",
        ...             "seed": s, "test_accuracy": acc, "seconds": 1.0} for s, acc in [(0, 0.5), (1, 0.7)]])[0]["std_accuracy"]
        0.1414
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run.get("regime"), run["dataset"], run["noise_type"], run["noise_rate"], run["loss"]),
                          []).append(run)
    rows = []
    for (regime, dataset, noise_type, rate, loss), members in groups.items():
        accs = [m["test_accuracy"] for m in members]
        mean = sum(accs) / len(accs)
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
        realised = [m["realised_noise_rate"] for m in members if m.get("realised_noise_rate") is not None]
        rows.append({
            **({"regime": regime} if regime else {}), "dataset": dataset, "noise_type": noise_type, "noise_rate": rate, "loss": loss, "n_seeds": len(accs),
            "mean_accuracy": round(mean, 4), "std_accuracy": round(std, 4),
            "realised_noise_rate": round(sum(realised) / len(realised), 4) if realised else None,
            "mean_seconds": round(sum(m.get("seconds", 0.0) for m in members) / len(members), 1),
        })
    return rows


def column_name(noise_type: str, rate: float | None) -> str:
    """Header of a noise setting: ``sym 0.4``, ``pairflip 0.4`` or the real noise's name."""
    if rate is None:
        return noise_type
    short = {"symmetric": "sym", "pairflip": "pairflip"}.get(noise_type, noise_type)
    return f"{short} {rate:g}"


def _columns(rows: list[dict[str, Any]]) -> list[tuple[str, float | None]]:
    order = {"symmetric": 0, "pairflip": 1}
    keys = {(r["noise_type"], r["noise_rate"]) for r in rows}
    return sorted(keys, key=lambda k: (order.get(k[0], 2), k[0], k[1] if k[1] is not None else 0.0))


def best_losses(rows: list[dict[str, Any]]) -> set[str]:
    """Losses whose mean equals the highest mean of ``rows`` at the table's precision (0.01 %)."""
    top = max(round(r["mean_accuracy"] * 100, 2) for r in rows)
    return {r["loss"] for r in rows if round(r["mean_accuracy"] * 100, 2) == top}


def markdown_table(rows: list[dict[str, Any]], losses: list[str]) -> str:
    """A Markdown table of one data set: rows = losses, columns = noise settings, best in bold."""
    columns = _columns(rows)
    cells = {(r["loss"], r["noise_type"], r["noise_rate"]): r for r in rows}
    bold = {col: best_losses([r for r in rows if (r["noise_type"], r["noise_rate"]) == col]) for col in columns}
    lines = ["| loss | " + " | ".join(column_name(*c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for loss in losses:
        if not any(key[0] == loss for key in cells):
            continue
        out = []
        for col in columns:
            row = cells.get((loss, *col))
            if row is None:
                out.append("n/a")
                continue
            text = f"{row['mean_accuracy'] * 100:.2f} ± {row['std_accuracy'] * 100:.2f}"
            if row["n_seeds"] < max(r["n_seeds"] for r in rows):
                text += f" (n={row['n_seeds']})"
            out.append(f"**{text}**" if loss in bold[col] else text)
        lines.append(f"| {loss.upper()} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def realised_noise_line(rows: list[dict[str, Any]]) -> str:
    """The fraction of training labels actually wrong per column (mean over seeds).

    Synthetic noise flips floor(T[i, j] * n_i) samples per class pair, so on small classes the
    realised rate sits below the nominal one (digits, about 130 per class: sym 0.2 -> about 0.14).
    """
    parts = []
    for col in _columns(rows):
        realised = [r["realised_noise_rate"] for r in rows
                    if (r["noise_type"], r["noise_rate"]) == col and r.get("realised_noise_rate") is not None]
        if realised:
            parts.append(f"{column_name(*col)}: {sum(realised) / len(realised) * 100:.1f}%")
    return "Realised training-label noise (fraction of wrong training labels): " + (", ".join(parts) or "n/a") + "."


def jal_verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (data set, noise setting): the best JAL loss against the best baseline.

    ``clear`` is True when the gap exceeds the larger of the two standard deviations, a rough
    guard against calling seed noise a win.
    """
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        ds_rows = [r for r in rows if r["dataset"] == dataset]
        for col in _columns(ds_rows):
            cell = [r for r in ds_rows if (r["noise_type"], r["noise_rate"]) == col]
            jal = [r for r in cell if r["loss"] in JAL_LOSSES]
            base = [r for r in cell if r["loss"] not in JAL_LOSSES]
            if not jal or not base:
                continue
            j = max(jal, key=lambda r: r["mean_accuracy"])
            b = max(base, key=lambda r: r["mean_accuracy"])
            gap = j["mean_accuracy"] - b["mean_accuracy"]
            ce = next((r["mean_accuracy"] for r in cell if r["loss"] == "ce"), None)
            out.append({"dataset": dataset, "setting": column_name(*col), "jal": j["loss"], "jal_mean": j["mean_accuracy"],
                        "ce_mean": ce,
                        "baseline": b["loss"], "baseline_mean": b["mean_accuracy"], "gap": gap,
                        # One seed has no spread to compare the gap with: never call it clear.
                        "clear": min(j["n_seeds"], b["n_seeds"]) > 1
                        and abs(gap) > max(j["std_accuracy"], b["std_accuracy"])})
    return out


def verdict_text(verdicts: list[dict[str, Any]]) -> str:
    """The "where JAL wins and where it does not" paragraph, computed from the verdicts."""
    if not verdicts:
        return "No setting has both a JAL loss and a baseline yet."
    wins = [v for v in verdicts if v["gap"] > 0]
    losses = [v for v in verdicts if v["gap"] <= 0]

    def fmt(v: dict[str, Any]) -> str:
        sign = "+" if v["gap"] > 0 else "-"
        clear = "" if v["clear"] else ", within one std or a single seed"
        return (f"{v['dataset']} {v['setting']} ({v['jal'].upper()} {v['jal_mean'] * 100:.2f} vs "
                f"{v['baseline'].upper()} {v['baseline_mean'] * 100:.2f}, {sign}{abs(v['gap']) * 100:.2f} pt{clear})")

    clear_wins = sum(v["clear"] for v in wins)
    clear_losses = sum(v["clear"] for v in losses)
    text = [(f"Best JAL loss vs best baseline, per setting: JAL is ahead in {len(wins)} of {len(verdicts)} settings "
             f"({clear_wins} by more than one std) and behind or tied in {len(losses)} ({clear_losses} by more than "
             "one std). A gap is called clear when it exceeds the larger of the two standard deviations over seeds.")]
    against_ce = [v for v in verdicts if v.get("ce_mean") is not None]
    if against_ce:
        above = sum(v["jal_mean"] > v["ce_mean"] for v in against_ce)
        text[0] += f" Against plain CE alone, the best JAL loss is ahead in {above} of {len(against_ce)} settings."
    if wins:
        text.append("JAL ahead: " + "; ".join(fmt(v) for v in wins) + ".")
    if losses:
        text.append("JAL not ahead: " + "; ".join(fmt(v) for v in losses) + ".")
    return "\n\n".join(text)


def plot(rows: list[dict[str, Any]], losses: list[str], path: str | os.PathLike[str]) -> None:
    """Top row: accuracy vs symmetric noise rate per loss, one panel per data set with at least two
    rates. Bottom row: bars for every other setting (pair-flip, real noise, single rates).
    Error bars are one std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates: dict[str, set] = {}
    for r in rows:
        if r["noise_type"] == "symmetric":
            rates.setdefault(r["dataset"], set()).add(r["noise_rate"])
    sym_sets = [d for d, rs in rates.items() if len(rs) > 1]
    other = [c for c in dict.fromkeys((r["dataset"], r["noise_type"], r["noise_rate"]) for r in rows)
             if not (c[1] == "symmetric" and c[0] in sym_sets)]
    cols = max(len(sym_sets), 1)
    fig = plt.figure(figsize=(4.5 * cols, 8.2 if other and sym_sets else 4.2))
    grid = fig.add_gridspec(2 if other and sym_sets else 1, cols)
    colours = {loss: plt.cm.tab10(i) for i, loss in enumerate(losses)}
    for i, dataset in enumerate(sym_sets):
        ax = fig.add_subplot(grid[0, i])
        for loss in losses:
            pts = sorted((r["noise_rate"], r["mean_accuracy"], r["std_accuracy"]) for r in rows
                         if r["dataset"] == dataset and r["noise_type"] == "symmetric" and r["loss"] == loss)
            if pts:
                x, y, e = zip(*pts)
                jal = loss in JAL_LOSSES
                ax.errorbar(x, [v * 100 for v in y], yerr=[v * 100 for v in e], label=loss.upper(), marker="o",
                            ms=3, capsize=2, color=colours[loss], linestyle="-" if jal else "--",
                            linewidth=2 if jal else 1)
        ax.set_title(f"{dataset}: symmetric noise")
        ax.set_xlabel("nominal noise rate")
        ax.set_ylabel("clean test accuracy (%)")
        ax.grid(alpha=0.3)
    if other:
        ax = fig.add_subplot(grid[-1, :])
        width = 0.8 / len(losses)
        for i, loss in enumerate(losses):
            vals = [next((r for r in rows if (r["dataset"], r["noise_type"], r["noise_rate"]) == c and r["loss"] == loss),
                         None) for c in other]
            xs = [k + (i - (len(losses) - 1) / 2) * width for k, v in enumerate(vals) if v]
            ax.bar(xs, [v["mean_accuracy"] * 100 for v in vals if v], width,
                   yerr=[v["std_accuracy"] * 100 for v in vals if v], color=colours[loss], label=loss.upper(),
                   capsize=1.5)
        ax.set_xticks(range(len(other)))
        ax.set_xticklabels([f"{d}\n{column_name(t, r)}" for d, t, r in other], fontsize=8)
        ax.set_title("pair-flip, real noise and single settings")
        ax.set_ylabel("clean test accuracy (%)")
        ax.grid(alpha=0.3, axis="y")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(losses), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reference_table(rows: list[dict[str, Any]], runs: list[dict[str, Any]], grid: Grid, *,
                    tolerance: float = 1.5) -> str:
    """Markdown: each (setting, loss) with a published number, ours beside it, and the time per epoch.

    ``within`` is ``yes`` when |ours - paper| <= ``tolerance`` points. Time per epoch is the
    training time of a run (``train_seconds``, from `Trainer.train`) over its epochs, mean over
    seeds; the full-run column multiplies it by the epochs run.
    """
    lines = ["| setting | loss | ours (%) | paper (%) | ours - paper | within " + f"{tolerance:g} pt | "
             "seconds / epoch | seconds / run |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        col = column_name(row["noise_type"], row["noise_rate"])
        paper = grid.reference.get(col, {}).get(row["loss"])
        members = [r for r in runs if (r["dataset"], r["noise_type"], r["noise_rate"], r["loss"]) ==
                   (row["dataset"], row["noise_type"], row["noise_rate"], row["loss"]) and r.get("train_seconds")]
        per_epoch = [r["train_seconds"] / r["epochs"] for r in members if r.get("epochs")]
        timing = (f"{sum(per_epoch) / len(per_epoch):.2f} | "
                  f"{sum(r['train_seconds'] for r in members) / len(members):.0f}") if per_epoch else "n/a | n/a"
        ours = f"{row['mean_accuracy'] * 100:.2f} ± {row['std_accuracy'] * 100:.2f}"
        if paper is None:
            lines.append(f"| {row['dataset']} {col} | {row['loss'].upper()} | {ours} | - | - | - | {timing} |")
            continue
        gap = row["mean_accuracy"] * 100 - float(paper)
        lines.append(f"| {row['dataset']} {col} | {row['loss'].upper()} | {ours} | {float(paper):.2f} | {gap:+.2f} | "
                     f"{'yes' if abs(gap) <= tolerance else 'no'} | {timing} |")
    if grid.reference_source:
        lines += ["", f"Published numbers: {grid.reference_source}"]
    return "\n".join(lines)


def hardware() -> dict[str, Any]:
    """CPU model (``lscpu``), core count and OS of this machine."""
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), model)
    except OSError:  # no lscpu (macOS, Windows): fall back to platform's answer
        pass
    return {"cpu": model, "cores": os.cpu_count(), "gpu": _gpu_name(), "os": platform.platform()}


def _gpu_name() -> str:
    """Name of CUDA device 0 (what `jal train` uses by default), or "none"."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"


def write_report(grid: Grid, runs: list[dict[str, Any]], out: str | os.PathLike[str], *,
                 sessions: list[dict[str, Any]] | None = None, command: str = "") -> list[dict[str, Any]]:
    """Write ``<out>.json`` (rows), ``<out>.md`` (tables, verdicts, provenance) and ``<out>.png``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = aggregate(runs)
    _write_json(out.with_suffix(".json"), rows)
    plot(rows, grid.losses, out.with_suffix(".png"))
    expected = len(expand(grid))
    sessions = sessions or []
    lines = [f"# {grid.title or f'Clean test accuracy of JAL and baselines, grid `{grid.name}`'}", ""]
    if grid.description:
        lines += [grid.description.strip(), ""]
    lines += _provenance(grid, runs, expected, sessions, command)
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        ds_rows = [r for r in rows if r["dataset"] == dataset]
        lines += [f"## {dataset}", "", markdown_table(ds_rows, grid.losses), ""]
        lines += [realised_noise_line(ds_rows), ""]
    if grid.reference:
        lines += ["## Against the published numbers", "", reference_table(rows, runs, grid), ""]
    lines += ["## Where JAL wins and where it does not", "", verdict_text(jal_verdicts(rows)), ""]
    if grid.notes:
        lines += ["## Reading the table", "", *[f"- {note.strip()}" for note in grid.notes], ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    return rows


def _provenance(grid: Grid, runs: list[dict[str, Any]], expected: int, sessions: list[dict[str, Any]],
                command: str) -> list[str]:
    from jal_trainer.run_outputs import package_versions

    # Runs measured elsewhere (the GPU cells of recipes/gpu/paper_grid.py) carry their own hardware.
    hw = next((r["hardware"] for r in runs if r.get("hardware")), None) or hardware()
    versions = next((r["versions"] for r in runs if r.get("versions")), None) or package_versions()
    wall = sum(s.get("wall_seconds", 0.0) for s in sessions)
    per_set: dict[str, list[float]] = {}
    for run in runs:
        per_set.setdefault(run["dataset"], []).append(run.get("seconds", 0.0))
    costs = ", ".join(f"{d} {sum(v) / len(v):.1f} s" for d, v in per_set.items())
    run_cmds = sorted({_python_command(s["command"]) for s in sessions if s.get("command")})
    lines = [
        (f"- Runs: {len(runs)} of {expected} in the grid; seeds {grid.seeds} (seed s trains with `--seed s "
         "--noise_seed s`); mean ± sample std (ddof 1) over seeds, in %; best mean per column in bold."),
        f"- Commands: `{' ; '.join(run_cmds) or 'python recipes/benchmark.py run ' + grid.name}` then `{command}`.",
        (f"- Hardware: {hw['cpu']}, {hw['cores']} cores, no GPU ({hw['os']}); shared with other jobs, so times are "
         "contended." if hw["gpu"] == "none" else
         f"- Hardware: one {hw['gpu']}, {hw['cpu']}, {hw['cores']} cores ({hw['os']})."),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "platform") + ".",
        (f"- Wall time of the grid: {wall / 60:.1f} min over {len(sessions)} session(s) "
         f"({', '.join(str(s.get('workers')) + 'x' + str(s.get('threads')) for s in sessions)} workers x threads); "
         f"mean seconds per run: {costs}."),
        "- Each run's full argv, realised noise and time: `recipes/results/runs/" + grid.name + "/<dataset>/<noise>/<loss>-seed<s>.json`.",
        "",
    ]
    return lines


# ---- command line -------------------------------------------------------------------------------


def _python_command(command: str) -> str:
    return command if command.startswith("python") else f"python {command}"


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
    run.add_argument("--dry-run", action="store_true", help="Print the argv of each missing run and stop.")
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
        if args.dry_run:
            for spec in expand(grid, only):
                if not (Path(args.runs_dir) / grid.name / spec.relpath).exists():
                    print("jal train " + " ".join(spec.argv))
            return 0
        session = run_grid(grid, args.runs_dir, workers=args.workers, threads=args.threads, only=only)
        print(f"grid {grid.name}: {session['runs_done']} runs in {session['wall_seconds'] / 60:.1f} min, "
              f"{len(session['failures'])} failed")
        return 1 if session["failures"] else 0
    if args.merge:
        sys.path.insert(0, str(ROOT / "recipes" / "gpu"))
        from paper_grid import merge

        print(f"merged {merge(args.merge, args.runs_dir)} cell JSONs from {len(args.merge)} source(s)")
    runs = load_runs(args.runs_dir, grid.name)
    sessions_path = Path(args.runs_dir) / grid.name / "_sessions.json"
    sessions = json.loads(sessions_path.read_text()) if sessions_path.exists() else []
    command = "python recipes/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = write_report(grid, runs, args.out, sessions=sessions, command=command)
    print(f"{len(runs)} runs -> {len(rows)} rows: {args.out}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
