"""bf16 autocast against float32 when fine-tuning all-MiniLM-L6-v2 on a CPU (README, "Speed on a CPU").

Two measurements, written to ``recipes/results/cpu_bf16.{json,md}``:

1. **Step time**: one AdamW training step (forward, backward, update) of the sequence- and the
   token-classification head, float32 and bf16 autocast interleaved in the same process (so a busy
   machine slows both alike), ``--repeats`` steps each after one warm-up step.
2. **Whole runs** (optional, ``--runs``): run folders of the same `jal train` command with
   ``--bf16 false`` and ``--bf16 true`` (folder names ``<loss>-false`` / ``<loss>-true``): their
   clean test accuracy and training time from ``metrics.json``.

Example:
    $ OMP_NUM_THREADS=1 python recipes/bench_cpu_bf16.py --model ../shared/models/all-MiniLM-L6-v2 --runs /tmp/bf16
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "recipes" / "results" / "cpu_bf16"
SHAPES = {"sequence": (32, 32, 2), "token": (16, 48, 9)}  # batch, tokens, classes


def step_times(model_path: str, task: str, repeats: int) -> dict[str, float]:
    """Mean seconds of one training step in float32 and in bf16 autocast, interleaved."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    batch, length, classes = SHAPES[task]
    cls = AutoModelForSequenceClassification if task == "sequence" else AutoModelForTokenClassification
    torch.manual_seed(0)
    model = cls.from_pretrained(model_path, num_labels=classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(1000, 20000, (batch, length))
    labels = torch.randint(0, classes, (batch,) if task == "sequence" else (batch, length))

    def step(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - start

    step(False), step(True)  # warm-up
    totals = {"float32": 0.0, "bf16": 0.0}
    for _ in range(repeats):
        totals["float32"] += step(False)
        totals["bf16"] += step(True)
    means = {k: v / repeats for k, v in totals.items()}
    return {**means, "speedup": means["float32"] / means["bf16"]}


def whole_runs(folder: Path) -> list[dict[str, Any]]:
    """Accuracy and training time of each ``<loss>-{false,true}`` run folder under ``folder``."""
    rows = []
    for run in sorted(p for p in folder.iterdir() if (p / "metrics.json").is_file()):
        loss, _, bf16 = run.name.rpartition("-")
        metrics = json.loads((run / "metrics.json").read_text())
        rows.append({"loss": loss, "bf16": bf16 == "true", "test_accuracy": metrics["test_accuracy"],
                     "train_runtime": metrics.get("train_runtime")})
    return rows


def report(result: dict[str, Any]) -> str:
    lines = ["# bf16 autocast against float32 on a CPU (all-MiniLM-L6-v2 fine-tuning)", "",
             f"Command: `{result['command']}`. Machine: {result['machine']}; "
             f"torch {result['torch']}. {result['note']}", "",
             "| head | batch x tokens | float32 s/step | bf16 s/step | speed-up |", "|---|---|--:|--:|--:|"]
    for task, t in result["steps"].items():
        b, n, _ = SHAPES[task]
        lines.append(f"| {task} | {b} x {n} | {t['float32']:.3f} | {t['bf16']:.3f} | {t['speedup']:.2f}x |")
    if result["runs"]:
        lines += ["", "Whole runs (" + result["runs_command"] + "):", "",
                  "| loss | bf16 | clean test accuracy | training s |", "|---|---|--:|--:|"]
        lines += [f"| {r['loss']} | {r['bf16']} | {r['test_accuracy']:.3f} | {r['train_runtime']:.0f} |"
                  for r in result["runs"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"))
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--runs", type=Path, default=None, help="folder of <loss>-false / <loss>-true run folders")
    parser.add_argument("--runs-command", default="", help="the jal train command of those runs, for the table")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    result = {"command": "OMP_NUM_THREADS=1 python recipes/bench_cpu_bf16.py" + (" --runs ..." if opts.runs else ""),
              "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread, "
                         f"avx512_bf16={torch.cpu._is_avx512_bf16_supported()}",
              "torch": torch.__version__,
              "note": "The machine was shared with two benchmark processes: the ratio is the measure, not the seconds.",
              "steps": {task: step_times(opts.model, task, opts.repeats) for task in SHAPES},
              "runs": whole_runs(opts.runs) if opts.runs else [], "runs_command": opts.runs_command}
    OUT.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    OUT.with_suffix(".md").write_text(report(result))
    print(report(result))


if __name__ == "__main__":
    main()
