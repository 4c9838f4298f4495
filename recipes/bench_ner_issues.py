"""Token label issues on NoiseBench: the final model's word probabilities vs their mean over epochs.

Each cell (noise variant x loss, seed 0) is one ``jal train`` run with the NER benchmark's exact
protocol (`recipes/bench_ner.py`: the same flags, so the training, and the entity F1, are those of
``recipes/results/runs/ner/<variant>/<loss>-seed<k>.json``). The run's ``label_issues.json`` is
scored from the epoch-mean word probabilities (`jal_trainer.ner.epoch_words`); the final model's
issues are recomputed from the saved model of the same run, so both come from one training. Both
are measured on the TRAINING tags against their clean tags (nothing is tuned on the test split).
Each finished cell writes ``recipes/results/runs/ner_token_issues/<variant>/<loss>-seed<k>.json``
and is skipped when rerun; ``report`` writes ``recipes/results/ner_token_issues_epoch_mean.{json,md}``.

Example:
    $ OMP_NUM_THREADS=1 python recipes/bench_ner_issues.py run --cells crowd:ce distant:ce crowd:jal-ce
    $ python recipes/bench_ner_issues.py report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "recipes" / "results"
RUNS = RESULTS / "runs" / "ner_token_issues"
REFERENCE = RESULTS / "runs" / "ner"  # the NER table's runs (final-model issues, entity F1)
TABLE = RESULTS / "ner_token_issues_epoch_mean"
CELLS = ("crowd:ce", "distant:ce", "crowd:jal-ce")
METRICS = ("token_auroc", "token_auprc", "token_precision", "token_recall", "span_precision", "span_recall",
           "span_f1", "flagged_spans")


def protocol(variant: str, loss: str, seed: int, out: str, opts: argparse.Namespace) -> list[str]:
    """`recipes/bench_ner.py`'s ``one_run`` command line, flag for flag."""
    return ["--config", f"ner/noisebench-{variant}", "--loss_type", loss, "--seed", str(seed), "--output_dir", out,
            "--disable_tqdm", "true", "--train_subset", str(opts.train_subset), "--test_subset", str(opts.test_subset),
            "--num_train_epochs", str(opts.epochs), "--max_length", str(opts.max_length), "--logging_strategy", "no",
            "--find_label_issues", "true", "--loss_preset", "finetune", "--train_sampling_strategy", "group_by_length"]


def final_model_issues(run_dir: Path, argv: list[str]) -> dict[str, Any]:
    """The token issues of the run's saved final model (the one ``jal train`` used before the epoch mean)."""
    from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments)

    from jal_trainer.arguments import parse_recipe
    from jal_trainer.config import CLEAN_LABEL_COLUMN
    from jal_trainer.ner.align import align_labels, word_predictions
    from jal_trainer.ner.epoch_words import MODEL_INPUTS, word_indices
    from jal_trainer.ner.issues import find_token_label_issues
    from jal_trainer.ner.noisy import read_tags, tag_names
    from jal_trainer.ner.train import TAGS, apply_token_noise, load_token_data

    data, _, _ = parse_recipe(argv)
    words = apply_token_noise(load_token_data(data), data)[0]["train"]
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    aligned = align_labels(words, tokenizer, max_length=data.max_length, extra_label_columns=(CLEAN_LABEL_COLUMN,))
    model = AutoModelForTokenClassification.from_pretrained(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_eval_batch_size=128, use_cpu=True, report_to=[],
                                 disable_tqdm=True)
        trainer = Trainer(model=model, args=args, data_collator=DataCollatorForTokenClassification(tokenizer))
        logits = trainer.predict(aligned.select_columns([c for c in MODEL_INPUTS if c in aligned.column_names]))
    names = tag_names(words, TAGS)
    probs = word_predictions(logits.predictions, word_indices(aligned), [len(t) for t in words["tokens"]])
    found = find_token_label_issues(probs, read_tags(words, TAGS, names), names,
                                    clean=read_tags(words, CLEAN_LABEL_COLUMN, names))
    return {"probabilities": found["probabilities"], **found["report"]}


def given_spans(run_dir: Path, argv: list[str]) -> int:
    """How many entity spans the training tags give (the denominator of flagging every span)."""
    from jal_trainer.arguments import parse_recipe
    from jal_trainer.ner.noisy import read_tags, tag_names
    from jal_trainer.ner.tags import entity_spans
    from jal_trainer.ner.train import TAGS, apply_token_noise, load_token_data

    data, _, _ = parse_recipe(argv)
    words = apply_token_noise(load_token_data(data), data)[0]["train"]
    return sum(len(entity_spans(t)) for t in read_tags(words, TAGS, tag_names(words, TAGS)))


def one_cell(variant: str, loss: str, seed: int, opts: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir="/tmp") as out:
        argv = protocol(variant, loss, seed, out, opts)
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "jal_trainer.cli", "train", *argv], cwd=ROOT, capture_output=True,
                              text=True)
        seconds = round(time.time() - start, 1)
        if proc.returncode != 0:
            raise RuntimeError(f"run {variant}/{loss}/seed{seed} failed:\n{proc.stderr[-3000:]}")
        metrics = json.loads((Path(out) / "metrics.json").read_text())
        issues = json.loads((Path(out) / "label_issues.json").read_text())
        final = final_model_issues(Path(out), argv)
        spans = given_spans(Path(out), argv)
    reference_path = REFERENCE / variant / f"{loss.replace('+', '_')}-seed{seed}.json"
    reference = json.loads(reference_path.read_text()) if reference_path.is_file() else None
    return {
        "dataset": "noisebench", "noise_type": variant, "loss": loss, "seed": seed, "test_f1": metrics["test_f1"],
        "reference_test_f1": reference["test_f1"] if reference else None,
        "epoch_mean": {"probabilities": issues["probabilities"], **issues["report"]},
        "final_model": final, "reference_final_model": reference["label_issues"] if reference else None,
        "given_spans": spans, "seconds": seconds, "argv": ["jal", "train", *argv],
    }


def run(opts: argparse.Namespace) -> None:
    for cell in opts.cells:
        variant, loss = cell.split(":")
        path = opts.runs / variant / f"{loss.replace('+', '_')}-seed{opts.seed}.json"
        if path.is_file():
            continue
        record = one_cell(variant, loss, opts.seed, opts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2))
        print(f"{variant} {loss}: F1 {record['test_f1']:.4f} (table {record['reference_test_f1']}); token AUROC "
              f"final {record['final_model']['token_auroc']:.3f} -> "
              f"epoch mean {record['epoch_mean']['token_auroc']:.3f}"
              f" ({record['seconds']} s)", flush=True)


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def report(opts: argparse.Namespace) -> None:
    records = [json.loads(p.read_text()) for p in sorted(opts.runs.glob("*/*.json"))]
    rows = []
    for r in records:
        for source in ("final_model", "epoch_mean"):
            rows.append({"noise_type": r["noise_type"], "loss": r["loss"], "seed": r["seed"], "probabilities": source,
                         "test_f1": r["test_f1"], "reference_test_f1": r["reference_test_f1"],
                         "flag_every_span_precision": r[source]["wrong_spans"] / r["given_spans"],
                         **{k: r[source].get(k) for k in METRICS}})
    import torch
    import transformers

    meta = {"command": "OMP_NUM_THREADS=1 python recipes/bench_ner_issues.py run --cells " + " ".join(CELLS),
            "protocol": records[0]["argv"] if records else None, "seeds": sorted({r["seed"] for r in records}),
            "hardware": f"shared CPU ({os.cpu_count()} cores visible), one single-threaded run at a time",
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "same_training_as_ner_table": all(r["test_f1"] == r["reference_test_f1"] for r in records)}
    table = opts.table
    table.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = ["# Token label issues on NoiseBench: final model vs epoch mean", "",
             "Training tags flagged by `find_token_label_issues` (class-balanced rule), scored against the clean "
             "training tags. *final model*: the word probabilities of the model after the last epoch, recomputed in "
             "data-set order from the run's saved model (what the NER table's label-issue columns meant to show); "
             "*epoch mean*: the mean over the 15 epochs of each epoch-end model's word "
             "probabilities (`jal_trainer.ner.epoch_words`). Both come from the same run; its entity F1 on the clean "
             "test subset is that of the NER table's run (same seed, same training) when the last two columns agree. "
             "*every span*: the precision of flagging every given span (the share of given spans that are wrong).",
             "", f"Protocol: `{' '.join(meta['protocol'] or [])}` (output dir under /tmp); seeds {meta['seeds']}.", "",
             f"Hardware: {meta['hardware']}; {meta['platform']}; versions {meta['versions']}.", "",
             f"Command: `{meta['command']}`, then `python recipes/bench_ner_issues.py report`.", "",
             "| noise | loss | probabilities | token AUROC | token AUPRC | token precision | token recall "
             "| span precision | span recall | span F1 | flagged spans | every span | entity F1 | table F1 |",
             "|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['noise_type']} | {r['loss']} | {r['probabilities'].replace('_', ' ')} | "
                     + " | ".join(_cell(r[k]) for k in METRICS) + f" | {_cell(r['flag_every_span_precision'])} | "
                     f"{r['test_f1']:.4f} | {_cell(r['reference_test_f1'])} |")
    notes = TABLE.parent / "ner_token_issues_notes.md"  # hand-written reading, kept across reports
    if notes.is_file():
        lines += ["", notes.read_text().rstrip()]
    table.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run")
    go.add_argument("--cells", nargs="+", default=list(CELLS), help="variant:loss pairs")
    go.add_argument("--seed", type=int, default=0)
    go.add_argument("--train-subset", dest="train_subset", type=int, default=500)
    go.add_argument("--test-subset", dest="test_subset", type=int, default=1000)
    go.add_argument("--epochs", type=int, default=15)
    go.add_argument("--max-length", dest="max_length", type=int, default=128)
    go.add_argument("--runs", type=Path, default=RUNS, help="where each cell's JSON goes (a smoke test: under /tmp)")
    rep = sub.add_parser("report")
    rep.add_argument("--runs", type=Path, default=RUNS)
    rep.add_argument("--table", type=Path, default=TABLE, help="path of the table, without suffix")
    opts = parser.parse_args(argv)
    run(opts) if opts.command == "run" else report(opts)


if __name__ == "__main__":
    main()
