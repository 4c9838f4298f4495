"""Benchmark: find the wrong labels of real-noise sets, against cleanlab, ranking and flags.

For each data set with real (or synthetic) label noise and known clean labels, and each training
seed, every method below scores every training row; we report the flags (precision, recall, F1)
and the ranking of ``label_issue_score`` against the truly wrong rows (AUROC, AUPRC, precision at
the true number of wrong rows), with wall and CPU seconds:

- **jal-ce / ce epoch-mean + class-balanced**: ONE training (JAL-CE, or plain CE: "the rule on one
  CE training") with a prediction pass over the training rows at the end of every epoch
  (`jal_trainer.callbacks.EpochProbabilitiesCallback`); `jal_trainer.label_issues.find_label_issues`
  on the mean of those probabilities, default rule ``class-balanced``.
- **ce + jal-ce epoch-mean + class-balanced**: the mean of both trainings' epoch-mean
  probabilities (`find_label_issues([ce_callback, jal_callback], ...)`); costs both trainings. The
  same with both trainings at half the epochs: about the cost of one full training.
- **+ flag-margin / + noise-margin**: the same flags, ranked by `jal_trainer.issue_scores.flag_margin_scores`
  (each row's place inside its class's flagged set) or `noise_margin_scores` (its place among its class's
  wrong labels as confident learning estimates them, classes weighed by that noise rate to a power: the
  library's 0.75, and 0, 0.5, 1 on the half-epoch pair) instead of the shortfall ``1 - p[given] / t_given``.
- **AUM** (area under the margin, Pleiss et al., NeurIPS 2020): mean over epochs of the given
  label's logit minus the largest other logit, from the same passes; flags the rows with AUM < 0.
- **cleanlab (5-fold, same model)**: out-of-fold probabilities from 5 CE trainings of the same
  model, ``cleanlab.filter.find_label_issues`` for the flags and
  ``cleanlab.rank.get_label_quality_scores`` for the ranking; and our rule on those probabilities.
- **cleanlab (5-fold, logistic regression)** (text only): the same with scikit-learn's
  ``LogisticRegression`` on the same frozen sentence embeddings.
- **flag every row**: F1 = 2r/(1+r) at noise rate r, random ranking (AUROC 0.5, AUPRC r).

Resumable: every finished (data set, seed) writes ``<out>/label_issues_runs/<dataset>-seed<k>.json``;
a rerun skips those and rebuilds ``label_issues.{json,md}`` from all of them.

Scale (2 shared CPU cores, ``OMP_NUM_THREADS=1``, one process): text sets are a head on frozen
all-MiniLM-L6-v2 embeddings (computed once, cached, never counted); cifar10n-worst is a
3,000-image stratified subset with CIFAR-10N ``worse_label`` and a narrow CNN trained from scratch.
Needs the ``bench`` extra (``pip install -e .[bench]``: cleanlab, scikit-learn).

Example:
    $ OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python recipes/bench_label_issues.py
    $ python recipes/bench_label_issues.py --datasets youtube --seeds 0 --out /tmp/bench
    $ python recipes/bench_label_issues.py --render   # rewrite the .md from the per-run JSONs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PrinterCallback

from jal_trainer import JALConfig, JALTrainer
from jal_trainer.callbacks import MemorisationCallback
from jal_trainer.label_issues import (
    DEFAULT_RULE, column_array, find_label_issues, issue_report, label_margins, noise_margin_scores,
    resolve_ranking, softmax, trainer_logits)
from jal_trainer.label_quality import flag_everything_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_label_issues_report import write_outputs  # noqa: E402
from bench_label_issues_tasks import SETTINGS, Task, load_task  # noqa: E402  (the data sets)

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = "label_issues_runs"

# ---- settings (the data sets and their training settings: bench_label_issues_tasks.py) -------------
SEEDS = (0, 1, 2)  # training seeds (model init, batch order, cleanlab's folds): mean +- std over them
FOLDS = 5  # cleanlab's default number of cross-validation folds
RULE = DEFAULT_RULE
RANKINGS = ("flag-margin", "noise-margin")  # besides the default shortfall (`jal_trainer.issue_scores`)
POWERS = (0.0, 0.5, 1.0)  # the noise-margin's power, beside the library's NOISE_MARGIN_POWER (0.75)
JAL = {"loss_type": "jal-ce", "loss_preset": "cifar10"}  # alpha 1, beta 1, a 30: the paper's CIFAR-10 values


# ---- training --------------------------------------------------------------------------------------


@dataclass
class Cost:
    """Wall-clock and CPU seconds (CPU: all threads of this process; steadier on a shared machine)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.wall + other.wall, self.cpu + other.cpu)

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.wall - other.wall, self.cpu - other.cpu)


class Stopwatch:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> Cost:
        return Cost(time.perf_counter() - self.wall, time.process_time() - self.cpu)


class TimedMemorisation(MemorisationCallback):
    """`MemorisationCallback` that times its passes (and the evaluations after them) and sums margins (AUM).

    ``passes`` is the time inside on_epoch_end (part of the method: it gives the epoch-mean
    probabilities); ``evaluations`` the span from its end to on_evaluate (watching only, left out of
    every cost). ``margin_sum``: per row, the sum over epochs of the given label's logit minus the
    largest other logit (AUM = margin_sum / epochs).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passes, self.evaluations = Cost(), Cost()
        self.margin_sum = np.zeros(len(self.labels))
        self._watch: Stopwatch | None = None

    def on_epoch_end(self, *args: Any, **kwargs: Any) -> None:
        watch = Stopwatch()
        super().on_epoch_end(*args, **kwargs)
        self.passes = self.passes + watch.elapsed()
        self._watch = Stopwatch()

    def on_evaluate(self, *args: Any, **kwargs: Any) -> None:
        super().on_evaluate(*args, **kwargs)
        if self._watch is not None:
            self.evaluations = self.evaluations + self._watch.elapsed()
            self._watch = None

    def _record_epoch(self, logits: np.ndarray, *args: Any, **kwargs: Any) -> None:
        super()._record_epoch(logits, *args, **kwargs)
        self.margin_sum += label_margins(logits, self.labels)  # a running area_under_margin

    @property
    def aum(self) -> np.ndarray:
        return self.margin_sum / max(self.epochs_seen, 1)


def accuracy(eval_pred: Any) -> dict[str, float]:
    logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    return {"accuracy": float((logits.argmax(-1) == eval_pred.label_ids).mean())}


def fit(task: Task, loss: dict[str, Any], train: Any, out: str, *, seed: int, passes: bool,
        watch: bool = False, epochs: int | None = None) -> tuple[JALTrainer, Cost, TimedMemorisation | None]:
    """Train on ``train``; ``passes``: per-epoch passes on it; ``watch``: also evaluate on the test set."""
    cfg = task.settings
    torch.manual_seed(seed)
    args = JALConfig(
        output_dir=out, num_train_epochs=epochs or cfg["epochs"], per_device_train_batch_size=cfg["batch"],
        per_device_eval_batch_size=512, learning_rate=cfg["lr"], optim="adamw_torch", weight_decay=0.0,
        lr_scheduler_type="cosine", max_grad_norm=5.0, eval_strategy="epoch" if watch else "no",
        save_strategy="no", logging_strategy="no", log_level="error", report_to=[], use_cpu=True, seed=seed,
        disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=task.settings["kind"] == "text", **loss,
    )
    wrapped = task.wrap(train)
    callback = TimedMemorisation(wrapped, plot=False, save_probabilities=False) if passes else None
    trainer = JALTrainer(model=task.make_model(), args=args, train_dataset=wrapped,
                         eval_dataset=task.wrap(task.test) if watch else None, data_collator=task.collator,
                         compute_metrics=accuracy, callbacks=[callback] if callback else None)
    trainer.remove_callback(PrinterCallback)  # no per-epoch log lines in the benchmark's output
    clock = Stopwatch()
    trainer.train()
    cost = clock.elapsed() - (callback.evaluations if callback else Cost())
    return trainer, cost, callback


def out_of_fold(task: Task, out: str, seed: int) -> tuple[np.ndarray, Cost]:
    """(N, K) held-out CE probabilities of the same model from FOLDS trainings, and their total cost."""
    from sklearn.model_selection import StratifiedKFold

    labels = column_array(task.train, "label")
    probs = np.zeros((len(labels), task.train.features["label"].num_classes))
    cost = Cost()
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    for i, (train_idx, held_idx) in enumerate(folds.split(np.zeros(len(labels)), labels)):
        trainer, fold_cost, _ = fit(task, {"loss_type": "ce"}, task.train.select(train_idx), f"{out}/fold{i}",
                                    seed=seed, passes=False)
        clock = Stopwatch()
        held = softmax(trainer_logits(trainer, task.wrap(task.train.select(held_idx))))
        probs[held_idx, : held.shape[1]] = held
        cost = cost + fold_cost + clock.elapsed()
    return probs, cost


def out_of_fold_logistic(task: Task, seed: int) -> tuple[np.ndarray, Cost]:
    """(N, K) held-out probabilities of scikit-learn's LogisticRegression on the frozen embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    clock = Stopwatch()
    features, labels = column_array(task.train, "embeddings"), column_array(task.train, "label")
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    probs = cross_val_predict(LogisticRegression(max_iter=1000), features, labels, cv=folds, method="predict_proba")
    return probs, clock.elapsed()


# ---- one data set, one seed --------------------------------------------------------------------------


def run_task(task: Task, out: str, seed: int, *, watch: bool) -> dict[str, Any]:
    """Every method on one data set and one seed: result rows (and, with ``watch``, memorisation curves)."""
    from cleanlab.filter import find_label_issues as cleanlab_find
    from cleanlab.rank import get_label_quality_scores

    labels = column_array(task.train, "label")
    wrong = labels != column_array(task.train, "clean_label")
    rows: list[dict[str, Any]] = []

    def add(method: str, cost: Cost, *, probs: np.ndarray | None = None, issues: np.ndarray | None = None,
            scores: np.ndarray | None = None, trainings: int = 1, ranking: str = "shortfall",
            power: float | None = None, **extra: Any) -> None:
        """One row: our rule on ``probs``, or given flags and scores (higher = more likely wrong).

        ``power``: the noise-margin ranking at another power than the library's (the grid behind it).
        """
        clock = Stopwatch()
        if probs is not None:
            found = find_label_issues(probs, task.train, rule=RULE, ranking=ranking)
            issues, scores = found.issues, found.scores
            if power is not None:
                scores = noise_margin_scores(probs, labels, power=power)
        report = issue_report(issues, wrong, scores)
        total = cost + clock.elapsed()
        rows.append({"dataset": task.name, "method": method, "seed": seed, "trainings": trainings,
                     **{k: round(float(v), 4) for k, v in report.items() if v is not None},
                     "seconds": round(total.wall, 2), "cpu_seconds": round(total.cpu, 2), **extra})

    def cleanlab_rows(name: str, probs: np.ndarray, cost: Cost, trainings: int) -> None:
        clock = Stopwatch()
        flags = cleanlab_find(labels, probs)
        quality = get_label_quality_scores(labels, probs)  # low = likely wrong: rank by its negative
        add(f"cleanlab ({name})", cost + clock.elapsed(), issues=flags, scores=-quality, trainings=trainings)
        add(f"{name} + {RULE}", cost, probs=probs, trainings=trainings)

    fits, curves = {}, {}
    for name, loss in (("jal-ce", JAL), ("ce", {"loss_type": "ce"})):
        trainer, cost, callback = fit(task, loss, task.train, f"{out}/{name}", seed=seed, passes=True, watch=watch)
        fits[name] = (cost, callback)
        curves[name] = callback.rows
        accuracy_ = callback.rows[-1]["test_accuracy"] if watch else None
        add(f"{name} epoch-mean + {RULE}", cost, probs=callback.mean_probabilities, test_accuracy=accuracy_)
        for ranking in RANKINGS:
            add(f"{name} epoch-mean + {RULE} + {ranking}", cost, probs=callback.mean_probabilities, ranking=ranking)
        add(f"{name} AUM < 0", cost, issues=callback.aum < 0, scores=-callback.aum)
        print(f"  {name}: {cost.wall:.1f} s ({cost.cpu:.1f} CPU s)", flush=True)
    (ce_cost, ce), (jal_cost, jal) = fits["ce"], fits["jal-ce"]
    for ranking, suffix in (("shortfall", ""), *((r, f" + {r}") for r in RANKINGS)):
        add(f"ce + jal-ce epoch-mean + {RULE}{suffix}", ce_cost + jal_cost,
            probs=(ce.mean_probabilities + jal.mean_probabilities) / 2, trainings=2, ranking=ranking)
    add("ce + jal-ce AUM < 0", ce_cost + jal_cost, issues=(ce.aum + jal.aum) < 0, scores=-(ce.aum + jal.aum),
        trainings=2)
    # the same pair at half the epochs each: the ensemble at the cost of about one full training
    half = max(task.settings["epochs"] // 2, 1)
    short = [fit(task, loss, task.train, f"{out}/{name}-half", seed=seed, passes=True, epochs=half)
             for name, loss in (("jal-ce", JAL), ("ce", {"loss_type": "ce"}))]
    pair = (short[0][2].mean_probabilities + short[1][2].mean_probabilities) / 2
    for ranking, suffix in (("shortfall", ""), *((r, f" + {r}") for r in RANKINGS)):
        add(f"ce + jal-ce epoch-mean ({half} epochs each) + {RULE}{suffix}", short[0][1] + short[1][1], probs=pair,
            trainings=2, ranking=ranking)
    for power in POWERS:
        add(f"ce + jal-ce epoch-mean ({half} epochs each) + {RULE} + noise-margin (power {power})",
            short[0][1] + short[1][1], probs=pair, trainings=2, power=power)
    add(f"ce + jal-ce epoch-mean ({half} epochs each) + {RULE} + auto", short[0][1] + short[1][1], probs=pair,
        trainings=2, ranking="auto", ranking_chosen=resolve_ranking(pair, "auto"))
    probs, cost = out_of_fold(task, out, seed)
    cleanlab_rows(f"{FOLDS}-fold CE, same model", probs, cost, FOLDS)
    if "embeddings" in task.train.column_names:
        probs, cost = out_of_fold_logistic(task, seed)
        cleanlab_rows(f"{FOLDS}-fold logistic regression", probs, cost, FOLDS)
    everything = flag_everything_report(float(wrong.mean()))
    rows.append({"dataset": task.name, "method": "flag every row", "seed": seed, "trainings": 0,
                 **{k: round(v, 4) for k, v in everything.items()}, "flagged": len(wrong),
                 "wrong": int(wrong.sum()), "seconds": 0.0, "cpu_seconds": 0.0})
    return {"rows": rows, "memorisation": curves if watch else None,
            "noise_rate": float(wrong.mean()), "train_size": len(wrong)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", default=str(RESULTS), help="folder of label_issues.json/.md and the per-run JSONs")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="training seeds")
    parser.add_argument("--render", action="store_true", help="only rebuild label_issues.{json,md} from the runs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / RUNS).mkdir(parents=True, exist_ok=True)
    if not args.render:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        tasks: dict[str, Task] = {}
        with tempfile.TemporaryDirectory() as work:
            # seeds outside, data sets inside: a first seed of every set comes before the repeats
            for seed in args.seeds:
                for name in args.datasets:
                    path = out / RUNS / f"{name}-seed{seed}.json"
                    if path.is_file():
                        print(f"{name} seed {seed}: done already", flush=True)
                        continue
                    if name not in tasks:
                        print(f"{name}: preparing", flush=True)
                        tasks[name] = load_task(name)
                    task = tasks[name]
                    result = run_task(task, f"{work}/{name}/seed{seed}", seed, watch=seed == args.seeds[0])
                    result.update(settings={k: list(v) if isinstance(v, tuple) else v
                                            for k, v in task.settings.items()},
                                  prepare_seconds=round(task.prepare_seconds, 1), date=time.strftime("%Y-%m-%d"),
                                  machine=machine())
                    path.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
                    os.replace(path.with_suffix(".tmp"), path)  # a killed run leaves no half file
                    for r in result["rows"]:
                        print(f"  {name} seed {seed} {r['method']:<48} F1 {r['f1']:.3f} AUROC {r['auroc']:.3f} "
                              f"AUPRC {r['auprc']:.3f} {r['cpu_seconds']:.1f} CPU s", flush=True)
    write_outputs(out, RUNS, versions())
    return 0


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores shared, torch threads {torch.get_num_threads()}"


def versions() -> dict[str, str]:
    import cleanlab
    import sklearn
    import transformers

    return {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "cleanlab": cleanlab.__version__, "scikit-learn": sklearn.__version__}


if __name__ == "__main__":
    sys.exit(main())
