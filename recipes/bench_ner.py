"""NER benchmark on NoiseBench: robust losses against real token-label noise, entity F1 on the clean test.

Each cell (noise variant x loss x seed) is one ``jal train`` run of the packaged recipe ``ner/noisebench-<variant>``
(all-MiniLM-L6-v2, uncased) in a fresh process; each finished run writes one JSON under
``recipes/results/runs/ner/<variant>/<loss>-seed<k>.json`` and is skipped when rerun (resumable).
Runs go seed by seed, so a cut session leaves whole seeds. ``aggregate`` writes
``recipes/results/ner_table.{json,md}`` (rows: dataset, noise_type, loss, n_seeds, mean_f1, std_f1).

CPU protocol (stated in the table): a seeded subset of the training sentences (the same sentences
for every variant, loss and seed: ``subset_seed`` 0 picks them), a seeded subset of the clean test
sentences, a fixed schedule for every loss; nothing is tuned on the test split.

Example:
    $ OMP_NUM_THREADS=1 python recipes/bench_ner.py run --train-subset 500 --test-subset 1000 --epochs 30
    $ python recipes/bench_ner.py aggregate

Protocol history: the first four runs (5 epochs, cifar10 preset) are kept under
``recipes/results/runs/ner-5epochs/``; at 5 epochs every bounded loss was still at the all-``O``
solution (F1 0), so the protocol became 15 epochs with the ``finetune`` preset (those 60 runs are under
``recipes/results/runs/ner-15epochs/``); 15 was not a plateau either (``ner_schedule.md``), so the table's
protocol is 30 epochs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "recipes" / "results" / "runs" / "ner"
TABLE = ROOT / "recipes" / "results" / "ner_table"
VARIANTS = ("crowd", "distant", "weak", "crowdbest", "expert")  # most noisy first: where a robust loss matters
LOSSES = ("ce", "gce", "nce+rce", "jal-ce")
# entity-level noise of the full training set (NoiseBench, 1 - exact-span F1), for the table
FULL_SET_NOISE = {"expert": 0.057, "crowdbest": 0.156, "crowd": 0.367, "distant": 0.322, "weak": 0.388}


def run_file(variant: str, loss: str, seed: int) -> Path:
    return RUNS / variant / f"{loss.replace('+', '_')}-seed{seed}.json"


def one_run(variant: str, loss: str, seed: int, opts: argparse.Namespace) -> dict:
    """Train one cell in a fresh process and return its JSON record."""
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-m", "jal_trainer.cli", "train", "--config", f"ner/noisebench-{variant}",
                "--loss_type", loss, "--seed", str(seed), "--output_dir", out, "--disable_tqdm", "true",
                "--train_subset", str(opts.train_subset), "--test_subset", str(opts.test_subset),
                "--num_train_epochs", str(opts.epochs), "--max_length", str(opts.max_length),
                "--logging_strategy", "no", "--find_label_issues", str(opts.label_issues).lower(),
                "--loss_preset", opts.loss_preset, "--train_sampling_strategy", opts.sampling]
        start = time.time()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"run {variant}/{loss}/seed{seed} failed:\n{proc.stderr[-3000:]}")
        metrics = json.loads((Path(out) / "metrics.json").read_text())
        noise = json.loads((Path(out) / "noise_report.json").read_text())
        issues_path = Path(out) / "label_issues.json"
        issues_file = json.loads(issues_path.read_text()) if issues_path.is_file() else None
        issues = issues_file["report"] if issues_file else None
    return {
        "dataset": "noisebench", "noise_type": variant, "loss": loss, "seed": seed,
        "test_f1": metrics["test_f1"], "test_precision": metrics["test_precision"],
        "test_recall": metrics["test_recall"], "test_token_accuracy": metrics["test_accuracy"],
        "entity_noise": noise["entity_noise"], "token_noise": noise["token_noise"],
        "num_train_sentences": noise["num_sentences"], "label_issues": issues,
        # which probabilities scored them ("epoch mean over 15 epochs, ..."); runs without this field scored
        # predictions that group_by_length had permuted (fixed 2026-11-30) and are left out of the issue columns
        "label_issue_probabilities": issues_file.get("probabilities") if issues_file else None,
        "seconds": round(time.time() - start, 1), "argv": ["jal", *argv[3:]],
    }


def _claim(path: Path) -> bool:
    """Claim a cell for this worker (a ``.lock`` beside its JSON), so several workers share one grid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path.with_suffix(".lock"), "x") as lock:
            lock.write(str(os.getpid()))
        return True
    except FileExistsError:
        return False


def run(opts: argparse.Namespace) -> None:
    for seed in range(opts.seeds):
        for variant in opts.variants:
            for loss in opts.losses:
                path = run_file(variant, loss, seed)
                if path.is_file() or not _claim(path):
                    continue  # finished, or another worker is on it
                try:
                    record = one_run(variant, loss, seed, opts)
                    path.write_text(json.dumps(record, indent=2))
                finally:
                    path.with_suffix(".lock").unlink(missing_ok=True)
                print(f"{variant:10s} {loss:8s} seed {seed}: F1 {record['test_f1']:.4f} ({record['seconds']} s)",
                      flush=True)


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _settings(argv: list[str]) -> dict[str, str]:
    """The ``--flag value`` pairs of a run's command line."""
    return {a[2:]: b for a, b in zip(argv, argv[1:]) if a.startswith("--")}


def _issue_means(cell: list[dict]) -> dict[str, float | None]:
    """Mean over seeds of the token label issues' quality (token AUROC/AUPRC, span precision/recall)."""
    out = {}
    for key in ("token_auroc", "token_auprc", "span_precision", "span_recall"):
        values = [r["label_issues"][key] for r in cell
                  if r.get("label_issue_probabilities") and r["label_issues"].get(key) is not None]
        out[key] = round(sum(values) / len(values), 4) if values else None
    return out


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def aggregate(opts: argparse.Namespace) -> None:
    records = [json.loads(p.read_text()) for p in sorted(RUNS.glob("*/*.json"))]
    rows = []
    for variant in VARIANTS:
        for loss in LOSSES:
            cell = [r for r in records if r["noise_type"] == variant and r["loss"] == loss]
            if not cell:
                continue
            mean, std = _mean_std([r["test_f1"] for r in cell])
            issues = _issue_means(cell)
            rows.append({"dataset": "noisebench", "noise_type": variant, "loss": loss, "n_seeds": len(cell),
                         "mean_f1": round(mean, 4), "std_f1": None if std is None else round(std, 4),
                         "entity_noise_subset": round(cell[0]["entity_noise"], 4),
                         "entity_noise_full_set": FULL_SET_NOISE[variant],
                         "seeds": sorted(r["seed"] for r in cell), **issues})
    first = records[0] if records else {}
    settings = _settings(first.get("argv") or [])
    protocols = {json.dumps({k: v for k, v in _settings(r["argv"]).items() if k not in ("loss_type", "seed",
                 "output_dir", "config")}, sort_keys=True) for r in records}
    if len(protocols) > 1:  # a table mixes protocols only by mistake: move the old runs aside first
        raise ValueError(f"runs under {RUNS} use {len(protocols)} different protocols; move the old runs to a "
                         "sibling folder (as runs/ner-5epochs/) and aggregate again.")
    meta = {"command": ("OMP_NUM_THREADS=1 python recipes/bench_ner.py run --train-subset "
                        f"{settings.get('train_subset')} --test-subset {settings.get('test_subset')} --epochs "
                        f"{settings.get('num_train_epochs')}"),
            "hardware": f"shared CPU ({os.cpu_count()} cores visible), single-threaded runs, "
                        "two at a time (two workers)",
            "platform": platform.platform(), "python": platform.python_version(),
            "protocol": first.get("argv"), "num_runs": len(records),
            "model": "all-MiniLM-L6-v2 (uncased)", "metric": "seqeval entity F1 (micro) on the clean test subset"}
    try:
        import torch
        import transformers

        meta["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    except ImportError:  # pragma: no cover
        pass
    TABLE.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = ["# NER under real token-label noise (NoiseBench), CPU subset", "",
             f"Entity F1 (seqeval, micro, exact spans) on a seeded subset of {settings.get('test_subset', '?')} clean "
             f"test sentences, after fine-tuning all-MiniLM-L6-v2 (**uncased**) on a seeded subset of "
             f"{settings.get('train_subset', '?')} training sentences (the same sentences for every noise variant, "
             f"loss and seed) for {settings.get('num_train_epochs', '?')} epochs, max_length "
             f"{settings.get('max_length', '?')} sub-tokens, batches grouped by length "
             f"({settings.get('train_sampling_strategy', 'random')}), the recipe's fixed schedule (AdamW lr 1e-4, "
             "linear decay after 10% warm-up, batch 16) for every loss, nothing tuned on the test split. Loss "
             f"parameters: the `{settings.get('loss_preset', 'cifar10')}` preset (GCE q 0.7, NCE+RCE alpha 10 beta "
             f"0.1, JAL-CE alpha 10 beta 1 a 5). {len(records)} runs finished; std is over seeds (n/a with one "
             "seed).", "",
             f"Hardware: {meta['hardware']}; {meta['platform']}; versions {meta.get('versions')}.", "",
             f"Command: `{meta['command']}`, then `python recipes/bench_ner.py aggregate`.", "",
             "Label issues (the last four columns, mean over seeds): each run flags the training tags that the mean "
             "over epochs of its word probabilities disagrees with (`find_token_label_issues`, class-balanced rule), "
             "scored against the clean tags: "
             "token AUROC / AUPRC of the score, and precision / recall of the flagged entity spans for \"this span "
             "is not a clean entity\". Flagging every span would give a precision near the entity noise. \"-\": a run "
             "that scored predictions `group_by_length` had permuted (before 2026-11-30; fixed), left out.", "",
             "| dataset | noise_type | entity noise (subset / full) | loss | n_seeds | mean_f1 | std_f1 "
             "| token AUROC | token AUPRC | span precision | span recall |",
             "|:--|:--|--:|:--|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        std = "n/a" if r["std_f1"] is None else f"{r['std_f1']:.4f}"
        lines.append(f"| {r['dataset']} | {r['noise_type']} | {r['entity_noise_subset']:.3f} / "
                     f"{r['entity_noise_full_set']:.3f} | {r['loss']} | {r['n_seeds']} | {r['mean_f1']:.4f} | {std} "
                     f"| {_cell(r['token_auroc'])} | {_cell(r['token_auprc'])} | {_cell(r['span_precision'])} "
                     f"| {_cell(r['span_recall'])} |")
    notes = TABLE.parent / "ner_table_notes.md"  # hand-written trials and readings, kept across aggregations
    if notes.is_file():
        lines += ["", notes.read_text().rstrip()]
    TABLE.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run")
    go.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    go.add_argument("--losses", nargs="+", default=list(LOSSES))
    go.add_argument("--seeds", type=int, default=3)
    go.add_argument("--train-subset", dest="train_subset", type=int, default=500)
    go.add_argument("--test-subset", dest="test_subset", type=int, default=1000)
    go.add_argument("--epochs", type=int, default=30)  # 15 was not a plateau for the bounded losses (ner_schedule.md)
    go.add_argument("--loss-preset", dest="loss_preset", default="finetune")
    go.add_argument("--sampling", default="group_by_length", help="train_sampling_strategy of every run")
    go.add_argument("--max-length", dest="max_length", type=int, default=128)
    go.add_argument("--no-label-issues", dest="label_issues", action="store_false")
    sub.add_parser("aggregate")
    opts = parser.parse_args(argv)
    run(opts) if opts.command == "run" else aggregate(opts)


if __name__ == "__main__":
    main()
