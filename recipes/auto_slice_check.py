"""How `loss_type: auto`'s scoring rule was chosen: judged on the held-out slice's clean labels, not on a test set.

`capture` runs auto's candidate search (the probe settings of ``recipes/grids/finetune.yaml``,
all seven losses as candidates) and saves, per data set and seed, every candidate's predicted
distribution on the held-out slice with the slice's noisy, clean and weak labels. The clean labels
of training rows are known here only because the benchmark keeps them beside the noise; auto never
reads them. `evaluate` replays `jal_trainer.auto.decide` on those slices under rule variants (the
transition-matrix estimator, the CE guard in bootstrap stds) and reports, per variant, what it
chose and how far its choice's clean slice accuracy is from the best candidate's and from CE's.
Writes ``recipes/results/auto_slice_check.{json,md}``.

Example:
    $ OMP_NUM_THREADS=1 python recipes/auto_slice_check.py capture --sets trec-pairflip,wrench-sms --out /tmp/slices
    $ python recipes/auto_slice_check.py evaluate --captures /tmp/slices
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "recipes" / "results" / "auto_slice_check"
CANDIDATES = ["ce", "gce", "sce", "nce+rce", "jal-ce"]  # auto's defaults
CAPTURED = CANDIDATES + ["anl-ce", "jal-fl"]
SETS = {
    "trec-pairflip": ["--config", "trec_sym0.4", "--noise_type", "pairflip", "--noise_rate", "0.4"],
    "trec-sym": ["--config", "trec_sym0.4", "--noise_type", "symmetric", "--noise_rate", "0.4"],
    "sst2-sym": ["--config", "sst2_sym0.4", "--noise_type", "symmetric", "--noise_rate", "0.4"],
    **{f"wrench-{n}": ["--config", f"wrench_{n}", "--noise_type", "majority-vote", "--noise_column", "weak_labels"]
       for n in ("sms", "trec", "youtube", "chemprot")},
}
PROBE = ["--disable_tqdm", "true", "--report_to", "none", "--save_strategy", "no", "--eval_strategy", "no",
         "--logging_strategy", "no", "--track_memorisation", "false", "--find_label_issues", "false",
         "--freeze_encoder", "true", "--learning_rate", "0.01", "--num_train_epochs", "20",
         "--per_device_train_batch_size", "256", "--optim", "adamw_torch", "--loss_preset", "finetune",
         "--use_cpu", "true", "--l1_weight_decay", "0.0", "--loss_type", "auto"]
GUARDS = (0.0, 0.5, 1.0)


def capture(name: str, seed: int, out: Path) -> None:
    """Run auto's search for one data set and seed; save the slice's candidate probabilities and labels."""
    import jal_trainer.auto as auto
    from jal_trainer.arguments import parse_recipe
    from jal_trainer.selection import stratified_holdout
    from jal_trainer.train import apply_noise, build_model_parts, default_preset, load_data
    from transformers import set_seed

    argv = [*SETS[name], *PROBE, "--seed", str(seed), "--noise_seed", str(seed), "--output_dir", str(out / "runs")]
    data, model, args = parse_recipe(argv)
    args = default_preset(model, args)
    args.auto_candidates, args.auto_budget = CAPTURED, 1 + 0.5 * len(CAPTURED)
    set_seed(args.seed)
    dataset, _ = apply_noise(load_data(data), data)
    parts = build_model_parts(model, data, dataset, args)
    seen: dict[str, np.ndarray] = {}
    original = auto.decide

    def spy(candidates, probs, *rest, **kwargs):  # keep the probabilities auto scores
        seen.update(probs)
        return original(candidates, probs, *rest, **kwargs)

    auto.decide = spy
    try:
        template = parts["model"]
        auto.select_loss(lambda: copy.deepcopy(template), args, parts["dataset"]["train"],
                         data_collator=parts.get("collator"))
    finally:
        auto.decide = original
    train = dataset["train"]
    noisy, clean = np.asarray(train["label"]), np.asarray(train["clean_label"])
    _, held = stratified_holdout(noisy, args.auto_holdout, seed=args.seed)
    weak = {"weak": np.asarray(train.select(held)["weak_labels"])} if "weak_labels" in train.column_names else {}
    np.savez(out / f"{name}-{seed}.npz", noisy=noisy[held], clean=clean[held],
             **{f"p_{k}": v for k, v in seen.items()}, **weak)


def evaluate(captures: Path) -> list[dict[str, Any]]:
    """Replay `decide` on every captured slice under each rule variant."""
    import jal_trainer.auto as auto
    import jal_trainer.selection as selection

    anchor = lambda p, n: selection.anchor_transition(selection.calibrate(p, n))  # noqa: E731
    estimators = {"confident joint of the candidates' mean": (selection.confident_transition, True),
                  "confident joint, weak votes ignored": (selection.confident_transition, False),
                  "anchor points, calibrated": (anchor, True)}
    candidates = auto.parse_candidates(CANDIDATES, "finetune")
    rows = []
    saved = (auto.confident_transition, auto.GUARD_STDS)
    try:
        for path in sorted(captures.glob("*.npz")):
            z = np.load(path)
            probs = {c: z[f"p_{c}"] for c in CANDIDATES}
            clean = {c: float(np.mean(probs[c].argmax(1) == z["clean"])) for c in CANDIDATES}
            for estimator, (fn, use_weak) in estimators.items():
                for guard in GUARDS:
                    auto.confident_transition, auto.GUARD_STDS = fn, guard
                    chosen = auto.decide(candidates, probs, {}, z["noisy"], {"seed": 0},
                                         weak_labels=z["weak"] if use_weak and "weak" in z.files else None).chosen.label
                    rows.append({"slice": path.stem, "estimator": estimator, "guard_stds": guard, "chosen": chosen,
                                 "clean_slice_accuracy": clean, "regret_vs_best": max(clean.values()) - clean[chosen],
                                 "gain_vs_ce": clean[chosen] - clean["ce"]})
    finally:
        auto.confident_transition, auto.GUARD_STDS = saved
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per rule variant (worst and mean regret), then the choices per slice."""
    variants = sorted({(r["estimator"], r["guard_stds"]) for r in rows})
    lines = ["# `auto`'s scoring rule, judged on the slices' clean training labels", "",
             "Clean slice accuracy of auto's choice against the best of its 5 default candidates and CE, probe "
             "regime, candidates trained as auto trains them. No test label is read. Command: "
             "`python recipes/auto_slice_check.py capture ...` then `evaluate`.", "",
             "| T estimator | guard (bootstrap stds) | slices | worst regret vs best (pt) | mean regret (pt) | "
             "worst vs CE (pt) |", "|---|---|---|---|---|---|"]
    for estimator, guard in variants:
        part = [r for r in rows if r["estimator"] == estimator and r["guard_stds"] == guard]
        lines.append(f"| {estimator} | {guard:g} | {len(part)} | {100 * max(r['regret_vs_best'] for r in part):.1f} | "
                     f"{100 * np.mean([r['regret_vs_best'] for r in part]):.1f} | "
                     f"{100 * min(r['gain_vs_ce'] for r in part):+.1f} |")
    lines += ["", "| slice | clean slice accuracy per candidate | " +
              " | ".join(f"{e.split(' of')[0]}, guard {g:g}" for e, g in variants) + " |",
              "|---|---|" + "---|" * len(variants)]
    for name in sorted({r["slice"] for r in rows}):
        part = {(r["estimator"], r["guard_stds"]): r for r in rows if r["slice"] == name}
        accs = next(iter(part.values()))["clean_slice_accuracy"]
        lines.append(f"| {name} | " + ", ".join(f"{c} {100 * a:.1f}" for c, a in accs.items()) + " | " +
                     " | ".join(part[v]["chosen"] for v in variants) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture")
    cap.add_argument("--sets", default=",".join(SETS))
    cap.add_argument("--seeds", default="0,1,2")
    cap.add_argument("--out", type=Path, required=True)
    ev = sub.add_parser("evaluate")
    ev.add_argument("--captures", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "capture":
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.sets.split(","):
            for seed in map(int, args.seeds.split(",")):
                if not (args.out / f"{name}-{seed}.npz").exists():  # resumable
                    capture(name, seed, args.out)
        return
    rows = evaluate(args.captures)
    OUT.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    OUT.with_suffix(".md").write_text(report(rows))
    print(report(rows))


if __name__ == "__main__":
    main()
