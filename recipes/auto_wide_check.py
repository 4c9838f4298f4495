"""Would `auto` choose better with ``jal-ce+clean`` among its default candidates? Judged on kept slices.

Fine-tuning runs of ``loss_type: auto`` keep their held-out slice beside the run JSON
(``auto-seed<k>.slice.npz``: every default candidate's slice probabilities, the noisy and clean
labels). `capture` trains only the missing candidate, ``jal-ce+clean`` (detect, then retrain: one
full training's cost, half for the trial and half for its retrain), on the same split with the same
argv, checks that the split is the same (rows and noisy labels), and writes the slice with the new
candidate to ``--out``. `evaluate` replays `jal_trainer.auto_decide.decide` with the defaults and
with the defaults plus ``jal-ce+clean`` and reports each choice, its clean slice accuracy (held-out
*training* rows; no test label is read to choose) and, for reading only, the test accuracy of the
chosen loss's own benchmark cell at that seed (``jal-ce_clean-seed<k>.json`` for the new candidate:
it retrains on flags from a full training, where auto uses its trial's flags, so it is a stand-in).

Example:
    $ OMP_NUM_THREADS=1 python recipes/auto_wide_check.py capture --only wrench-trec,trec/pairflip0.4
    $ python recipes/auto_wide_check.py evaluate      # writes recipes/results/auto_wide_check.{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "recipes/results/runs/finetune/finetune"
OUT = ROOT / "recipes/results/auto_wide_slices"
REPORT = ROOT / "recipes/results/auto_wide_check"
NEW = "jal-ce+clean"
DEFAULTS = ["ce", "gce", "sce", "nce+rce", "jal-ce"]


class _Chosen(Exception):
    """Raised once auto has chosen: the slice file is all a capture needs."""


def kept_slices(only: list[str] | None) -> list[Path]:
    """The benchmark's fine-tuning auto slices whose path contains one of ``only`` (all when None)."""
    found = sorted(RUNS.rglob("auto-seed*.slice.npz"))
    return [p for p in found if not only or any(o in str(p.relative_to(RUNS)) for o in only)]


def capture_one(saved_path: Path, out: Path) -> Path:
    """Train ``jal-ce+clean`` alone on ``saved_path``'s split (its run's argv) and save the slice with it."""
    import jal_trainer.auto as auto
    from jal_trainer.auto_search import SLICE_FILE
    from jal_trainer.train import main as train

    from auto_slice_check import run_slice_name  # <dataset>-<noise>-<seed>

    target = out / f"{run_slice_name(saved_path)}.npz"
    if target.exists():
        return target
    run = json.loads(saved_path.with_name(saved_path.name.replace(".slice.npz", ".json")).read_text())
    scratch = Path(tempfile.mkdtemp(prefix="jal-wide-"))
    original_parse, original_select = auto.parse_candidates, auto.select_for_recipe

    def only_new(names, preset):  # CE is always added; its slice probabilities are saved already
        return [c for c in original_parse(names, preset) if c.label != "ce"]

    def stop_after_choice(*args, **kwargs):
        original_select(*args, **kwargs)
        raise _Chosen

    auto.parse_candidates, auto.select_for_recipe = only_new, stop_after_choice
    # budget 2: one training of candidates (a +clean one counts twice), so each gets half a training, as in auto
    argv = [*run["argv"][2:], "--auto_candidates", NEW, "--auto_budget", "2.0", "--output_dir", str(scratch)]
    try:
        train(argv)
    except _Chosen:
        pass
    finally:
        auto.parse_candidates, auto.select_for_recipe = original_parse, original_select
    saved, new = dict(np.load(saved_path)), np.load(scratch / SLICE_FILE)
    for key in ("rows", "noisy"):
        if not np.array_equal(saved[key], new[key]):
            raise RuntimeError(f"{saved_path}: the new split's {key} differ from the saved slice's; not merged.")
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(target, **saved, **{f"p_{NEW}": new[f"p_{NEW}"]})
    return target


def replay(path: Path) -> dict[str, Any]:
    """Choices with the defaults and with ``jal-ce+clean`` added, and every candidate's clean slice accuracy."""
    from auto_tie_order import slice_digest
    from jal_trainer.auto import parse_candidates
    from jal_trainer.auto_decide import decide

    z = np.load(path)
    seed = int(path.stem.rsplit("-", 1)[1])
    # Labels and predictions name a slice: a grid column that trains on the same rows (sms and youtube
    # without coin flips, which auto leaves out itself) numbers them differently but is the same evidence.
    digest = slice_digest(z, [k for k in z.files if k != "rows"])
    probs = {c: z[f"p_{c}"].astype(np.float32) for c in [*DEFAULTS, NEW] if f"p_{c}" in z.files}
    clean = {c: round(float((p.argmax(1) == z["clean"]).mean() * 100), 1) for c, p in probs.items()}
    out = {"slice": path.stem, "rows": int(len(z["noisy"])), "content": digest[:12],
           "clean_slice_accuracy": clean}
    for name, labels in (("defaults", DEFAULTS), ("wide", [*DEFAULTS, NEW])):
        chosen = decide(parse_candidates(labels, "finetune"), {c: probs[c] for c in labels}, {}, z["noisy"],
                        {"seed": seed})
        out[name] = chosen.chosen.label
    return out


def _run_file(slice_path: Path, name: str) -> Path | None:
    """``<dataset>/<noise>/<name>`` of the benchmark setting a captured slice came from, or None.

    ``<dataset>-<noise>`` is matched whole: data set names have dashes."""
    setting = slice_path.stem.rsplit("-", 1)[0]
    folder = next((f for f in RUNS.glob("*/*") if f"{f.parent.name}-{f.name}" == setting), None)
    return None if folder is None else folder / name


def test_accuracy(slice_path: Path, loss: str) -> float | None:
    """The benchmark cell of ``loss`` at the slice's seed and setting, in %, or None when not run."""
    seed = slice_path.stem.rsplit("-", 1)[1]
    cell = _run_file(slice_path, f"{loss.replace('+', '_')}-seed{seed}.json")
    return round(json.loads(cell.read_text())["test_accuracy"] * 100, 1) if cell and cell.exists() else None


def evaluate(out: Path) -> list[dict[str, Any]]:
    """Replay every captured slice; the test accuracy of auto's own run, and of the wide choice's stand-in."""
    rows = []
    for path in sorted(out.glob("*.npz")):
        row = replay(path)
        own = test_accuracy(path, "auto")  # the benchmark's auto run: the defaults' choice, retrained as auto does
        real = test_accuracy(path, "auto-wide")  # a real run of the wide set, where the benchmark has one
        if real is not None:
            wide = real
        elif row["wide"] == row["defaults"]:
            wide = own  # the same choice: the same final training (checked: TREC pair-flip seeds 0 and 2)
        elif _drops_coin_flips(path):
            wide = None  # the stand-in cell trains on the coin flips that auto leaves out: not comparable
        else:
            wide = test_accuracy(path, row["wide"])
        row["test"] = {"defaults": own, "wide": wide}
        rows.append(row)
    return rows


def _drops_coin_flips(slice_path: Path) -> bool:
    """Whether the benchmark's auto run of this slice left coin-flip rows out of its training."""
    run = _run_file(slice_path, f"auto-seed{slice_path.stem.rsplit('-', 1)[1]}.json")
    return bool(run and json.loads(run.read_text()).get("auto", {}).get("coin_flip_rows"))


def replayed_runs(runs: list[dict[str, Any]], report: Path = REPORT.with_suffix(".json")) -> list[dict[str, Any]]:
    """Fine-tuning ``auto-wide`` results that `evaluate`'s replays establish without running them.

    Where a seed's replayed slice gives the wide set the same choice as the defaults, and the
    benchmark's ``auto`` run at that seed recorded that choice, an ``auto-wide`` run would hold out
    the same slice and retrain the same loss on the same rows: the same final training (checked on
    five real pairs, TREC pair-flip seeds 0 and 2, TREC symmetric seed 0, WRENCH trec and chemprot
    seed 0: equal test accuracy). Each such ``auto`` run comes back as an ``auto-wide`` one marked
    ``replayed_from``; seeds with a real ``auto-wide`` run, no captured slice, or another choice get none.

    Example:
        >>> row = {"slice": "trec-pairflip0.4-0", "defaults": "gce", "wide": "gce"}
        >>> run = {"regime": "finetune", "dataset": "trec", "noise_type": "pairflip", "noise_rate": 0.4,
        ...        "seed": 0, "loss": "auto", "auto": {"chosen": "gce"}, "test_accuracy": 0.75}
        >>> import tempfile; report = Path(tempfile.mkdtemp()) / "r.json"; _ = report.write_text(json.dumps([row]))
        >>> [(r["loss"], r["replayed_from"]) for r in replayed_runs([run], report)]
        [('auto-wide', 'auto')]
    """
    if not report.exists():
        return []
    same = {r["slice"]: r["defaults"] for r in json.loads(report.read_text()) if r["wide"] == r["defaults"]}
    real = {_seed_key(r) for r in runs if r.get("regime") == "finetune" and r["loss"] == "auto-wide"}
    out = []
    for run in runs:
        if run.get("regime") != "finetune" or run["loss"] != "auto" or _seed_key(run) in real:
            continue
        noise = run["noise_type"] if run["noise_rate"] is None else f"{run['noise_type']}{run['noise_rate']:g}"
        if same.get(f"{run['dataset']}-{noise}-{run['seed']}") == (run.get("auto") or {}).get("chosen"):
            out.append({**run, "loss": "auto-wide", "replayed_from": "auto"})
    return out


def _seed_key(run: dict[str, Any]) -> tuple:
    return run["dataset"], run["noise_type"], run["noise_rate"], run["seed"]


def markdown(rows: list[dict[str, Any]], command: str) -> str:
    from auto_slice_capture import platform_line

    lines = ["# auto with `jal-ce+clean` among its candidates (fine-tuning, kept slices)", "",
             f"Command: `{command}` ({platform_line()}). Each slice: the noisy training rows a benchmark `auto` run "
             "held out, with the default candidates' saved predictions and `jal-ce+clean` trained on the same split "
             "(half a training for its trial, half for its retrain, as `auto` gives it). *clean slice accuracy*: "
             "the held-out rows' clean labels, never read to choose. *test* (for reading only): the defaults' is the "
             "benchmark's own `auto` run; the wide set's is its real `auto-wide` run where there is one, else the "
             "`auto` run where the choice is the same (the same final training), else the chosen loss's own cell at "
             "that seed (for `jal-ce+clean`, the `jal-ce+clean` cell, which flags with a full training where auto "
             "uses its trial's flags: a stand-in; n/a where auto left coin flips out and the cell did not).", "",
             "| slice | rows | clean slice accuracy (%) | defaults choose | + jal-ce+clean chooses | test: defaults' | "
             "test: wide's |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = ", ".join(f"{k} {v}" for k, v in r["clean_slice_accuracy"].items())
        t = r["test"]
        lines.append(f"| {r['slice']} | {r['rows']} | {acc} | {r['defaults']} | {r['wide']} | "
                     f"{t['defaults'] if t['defaults'] is not None else 'n/a'} | "
                     f"{t['wide'] if t['wide'] is not None else 'n/a'} |")
    distinct = list({r["content"]: r for r in rows}.values())
    changed = [r for r in distinct if r["defaults"] != r["wide"]]
    gains = [r["clean_slice_accuracy"][r["wide"]] - r["clean_slice_accuracy"][r["defaults"]] for r in changed]
    repeats = len(rows) - len(distinct)
    same = f" ({repeats} slices repeat another's content: counted once)" if repeats else ""
    lines += ["", f"The choice changes on {len(changed)} of {len(distinct)} distinct slices{same}"
              + (f"; clean slice accuracy of the new choice minus the old: {', '.join(f'{g:+.1f}' for g in gains)} pt."
                 if changed else ".")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["capture", "evaluate"])
    parser.add_argument("--only", default="", help="comma-separated parts of the slice paths, e.g. wrench-trec")
    parser.add_argument("--out", type=Path, default=OUT)
    opts = parser.parse_args(argv)
    if opts.command == "capture":
        for path in kept_slices([o for o in opts.only.split(",") if o] or None):
            print("captured", capture_one(path, opts.out), flush=True)
        return 0
    rows = evaluate(opts.out)
    command = "python recipes/auto_wide_check.py evaluate"
    REPORT.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    REPORT.with_suffix(".md").write_text(markdown(rows, command))
    print(markdown(rows, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
