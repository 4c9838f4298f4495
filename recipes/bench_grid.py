"""The accuracy benchmark's grid and its run files (the runner is ``recipes/benchmark.py``).

A grid is a YAML file (see ``recipes/grids/cpu.yaml``) naming data sets (each a `jal train`
recipe plus overrides), noise settings, losses, per-loss regularisation regimes and seeds.
`load_grid` reads and checks it; `expand` turns it into one `RunSpec` (an argv for `jal train`)
per cell. Each finished cell is one JSON at ``<runs_dir>/<grid name>/<RunSpec.relpath>``,
written atomically by `write_json` and read back by `load_runs`.

Example:
    >>> grid = Grid("g", [0], ["ce"], [{"name": "d", "config": "r.yaml", "noise": [{"noise_type": "symmetric",
    ...     "noise_rate": 0.2}]}])
    >>> expand(grid)[0].relpath
    'd/symmetric0.2/ce-seed0.json'
"""

from __future__ import annotations

import json
import os
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
        raise ValueError(f"Grid file {os.fspath(path)!r} does not exist. "
                         "Pass a YAML file such as recipes/grids/cpu.yaml.")
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
        names = {entry["name"], entry.get("mode"), f"{entry.get('mode')}:{entry['name']}"}
        # `mode:name:noise` (the noise's table name, e.g. finetune:wrench-sms:majority-vote) picks one column
        columns = {w.rsplit(":", 1)[1] for w in wanted or () if w.count(":") == 2 and w.rsplit(":", 1)[0] in names}
        if wanted is not None and not (names & wanted or columns):
            continue
        regime = grid.regimes.get(entry.get("regime"), {})
        for seed in grid.seeds:
            for noise in entry["noise"]:
                if columns and not names & wanted and _noise_name(noise) not in columns:
                    continue
                for loss in entry.get("losses", grid.losses):
                    specs.append(_spec(grid, entry, noise, loss, seed, regime))
    return specs


def _noise_name(noise: dict[str, Any]) -> str:
    """A noise entry's name in the table and run paths (its ``label``, else its ``noise_type``)."""
    return str(noise.get("label", noise["noise_type"]))


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
    per_loss = regime.get(base, regime.get("default", {}))
    flags.update(per_loss)
    # A label may name a variant of a loss (e.g. `auto-wide`: auto with more candidates): its regime entry
    # then sets `loss_type` itself.
    flags.update({"loss_type": per_loss.get("loss_type", base), "seed": seed, "noise_seed": seed})
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


# ---- run files ----------------------------------------------------------------------------------


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` through a temporary file (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)  # a killed run never leaves a half-written JSON that resume would trust


def load_runs(runs_dir: str | os.PathLike[str], grid_name: str) -> list[dict[str, Any]]:
    """Every run JSON of one grid (files starting with ``_`` are session logs, not runs)."""
    root = Path(runs_dir) / grid_name
    return [json.loads(p.read_text()) for p in sorted(root.rglob("*.json")) if not p.name.startswith("_")]

