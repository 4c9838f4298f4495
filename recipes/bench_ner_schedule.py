"""Does the NER table's 15-epoch schedule reach a plateau? Entity F1 per epoch over a longer schedule.

The NER benchmark (``recipes/bench_ner.py``) trains every loss for 15 epochs and reports the last
epoch. This check trains some of its cells for longer (``--epochs``, default 30) with the same
protocol otherwise, evaluates the clean test subset after every epoch, and keeps the curve. If the
robust losses were still climbing at 15 epochs, the table would under-state them.

Each finished run writes one JSON under ``recipes/results/runs/ner-schedule/`` and is skipped when
rerun. ``report`` writes ``recipes/results/ner_schedule.{json,md,png}``. Nothing is chosen with the
test curves: they only show whether the scores have stopped moving.

Example:
    $ OMP_NUM_THREADS=1 python recipes/bench_ner_schedule.py run --cells crowd:ce crowd:jal-ce --epochs 30
    $ python recipes/bench_ner_schedule.py report
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "recipes" / "results" / "runs" / "ner-schedule"
OUT = ROOT / "recipes" / "results" / "ner_schedule"


def run_file(variant: str, loss: str, seed: int, epochs: int) -> Path:
    return RUNS / f"{variant}-{loss.replace('+', '_')}-seed{seed}-{epochs}ep.json"


def one_run(variant: str, loss: str, seed: int, epochs: int) -> dict:
    """Train one cell with per-epoch evaluation in a fresh process; return its record with the curve."""
    with tempfile.TemporaryDirectory() as out:
        # the NER benchmark's protocol (recipes/bench_ner.py), plus an evaluation after every epoch
        argv = [sys.executable, "-m", "jal_trainer.cli", "train", "--config", f"ner/noisebench-{variant}",
                "--loss_type", loss, "--seed", str(seed), "--output_dir", out, "--disable_tqdm", "true",
                "--train_subset", "500", "--test_subset", "1000", "--num_train_epochs", str(epochs),
                "--max_length", "128", "--loss_preset", "finetune", "--train_sampling_strategy", "group_by_length",
                "--find_label_issues", "false", "--eval_strategy", "epoch", "--logging_strategy", "epoch",
                "--save_strategy", "no"]
        start = time.time()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"run {variant}/{loss}/seed{seed} failed:\n{proc.stderr[-3000:]}")
        history = json.loads((Path(out) / "trainer_state.json").read_text())["log_history"]
    curve = [{"epoch": round(h["epoch"]), "f1": h["eval_f1"]} for h in history if "eval_f1" in h]
    return {"dataset": "noisebench", "noise_type": variant, "loss": loss, "seed": seed, "epochs": epochs,
            "curve": curve, "final_f1": curve[-1]["f1"], "seconds": round(time.time() - start, 1),
            "argv": ["jal", *argv[3:]], "hardware": f"{platform.machine()}, shared CPU, 1 torch thread"}


def run(cells: list[str], seed: int, epochs: int) -> None:
    for cell in cells:
        variant, loss = cell.split(":")
        path = run_file(variant, loss, seed, epochs)
        if path.is_file():
            continue  # finished in an earlier session
        record = one_run(variant, loss, seed, epochs)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))
        print(f"{variant} {loss} seed {seed}: F1 {record['final_f1']:.4f} after {epochs} epochs "
              f"({record['seconds']} s)",
              flush=True)


def report() -> None:
    records = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))]
    if not records:
        sys.exit(f"no finished runs under {RUNS}: run the check first (see --help)")
    rows = []
    for r in records:
        by_epoch = {c["epoch"]: c["f1"] for c in r["curve"]}
        rows.append({"noise_type": r["noise_type"], "loss": r["loss"], "seed": r["seed"], "epochs": r["epochs"],
                     "f1_at_15": by_epoch.get(15), "best_f1": max(by_epoch.values()), "final_f1": r["final_f1"]})
    OUT.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    lines = ["# NER: entity F1 per epoch over a longer schedule", "",
             "Command: `OMP_NUM_THREADS=1 python recipes/bench_ner_schedule.py run --cells ...`, then `report`. "
             "Protocol of `recipes/bench_ner.py` (500 training sentences, 1,000 clean test sentences, finetune preset, "
             "group_by_length) with a longer schedule; the linear decay spans the whole schedule, so epoch 15 here is "
             "not the 15-epoch run's end. Curves: `ner_schedule.png`.", "",
             "| noise | loss | seed | epochs | F1 at epoch 15 | best F1 | final F1 |", "|:--|:--|--:|--:|--:|--:|--:|"]
    for row in rows:
        at15 = "-" if row["f1_at_15"] is None else f"{row['f1_at_15']:.3f}"
        lines.append(f"| {row['noise_type']} | {row['loss']} | {row['seed']} | {row['epochs']} | {at15} | "
                     f"{row['best_f1']:.3f} | {row['final_f1']:.3f} |")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    _plot(records)
    print("\n".join(lines))


def _plot(records: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in records:
        ax.plot([c["epoch"] for c in r["curve"]], [c["f1"] for c in r["curve"]],
                label=f"{r['noise_type']} {r['loss']} (seed {r['seed']})")
    ax.axvline(15, color="grey", linestyle=":", label="the table's schedule")
    ax.set_xlabel("epoch")
    ax.set_ylabel("clean test entity F1")
    ax.set_title("NoiseBench, 500 training sentences")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT.with_suffix(".png"), dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run")
    go.add_argument("--cells", nargs="+", default=["crowd:ce", "crowd:jal-ce"], help="variant:loss pairs")
    go.add_argument("--seed", type=int, default=0)
    go.add_argument("--epochs", type=int, default=30)
    sub.add_parser("report")
    opts = parser.parse_args()
    if opts.command == "run":
        run(opts.cells, opts.seed, opts.epochs)
    else:
        report()


if __name__ == "__main__":
    main()
