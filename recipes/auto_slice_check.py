"""How `loss_type: auto`'s scoring rule was chosen: judged on the held-out slice's clean labels, not on a test set.

`capture` runs auto's candidate search (the probe settings of ``recipes/grids/finetune.yaml``,
all seven losses as candidates) and saves, per data set and seed, every candidate's predicted
distribution on the held-out slice with the slice's noisy, clean and weak labels. The clean labels
of training rows are known here only because the benchmark keeps them beside the noise; auto never
reads them. `evaluate` replays `jal_trainer.auto_decide.decide` on those slices under rule variants
(the transition-matrix estimator, the CE margin in bootstrap stds) and reports, per variant, what
it chose and how far its choice's clean slice accuracy is from the best candidate's and from CE's.
``evaluate --runs DIR`` does the same on the slice files the benchmark keeps beside each auto run
(``auto-seed<k>.slice.npz``: the fine-tuning regime, where capturing anew would cost a training per
candidate), writing ``--out`` (e.g. ``recipes/results/auto_slice_check_finetune``).
It also replays the current rule on candidate sets (`CANDIDATE_SETS`: the defaults, and the
defaults plus the detect-then-retrain candidates ``ce+clean`` and ``jal-ce+clean``), to decide
which belong in ``DEFAULT_CANDIDATES``. Writes ``recipes/results/auto_slice_check.{json,md}``.

``capture --candidates`` adds candidates to slices already captured: only the missing ones are
trained (with CE, always a candidate, whose new slice probabilities are compared with the saved
ones: the same model, or the captures do not mix). Every candidate training gets the same share of
a full training (0.5: the budget is 1 + 0.5 x the candidates, a ``+clean`` one counted twice).

Example:
    $ OMP_NUM_THREADS=1 python recipes/auto_slice_check.py capture --sets trec-pairflip,wrench-sms --out /tmp/slices
    $ OMP_NUM_THREADS=1 python recipes/auto_slice_check.py capture --candidates ce+clean,jal-ce+clean --out /tmp/slices
    $ python recipes/auto_slice_check.py evaluate --captures /tmp/slices
    $ python recipes/auto_slice_check.py evaluate --runs recipes/results/runs/finetune \\
          --out recipes/results/auto_slice_check_finetune
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from auto_slice_capture import CANDIDATES, CAPTURED, CLEAN, CANDIDATE_SETS, SETS  # noqa: E402
from auto_slice_capture import (  # noqa: E402,F401 (capture: auto_schedule_check)
    capture, capture_finetune, platform_line)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "recipes" / "results" / "auto_slice_check"
#: CE's required lead over the best other candidate, in bootstrap stds (`jal_trainer.auto_decide`);
#: negative: a robust loss must beat CE by that many stds.
MARGINS = (-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)


def run_slice_name(path: Path) -> str:
    """``<dataset>-<noise>-<seed>`` of a benchmark's ``<dataset>/<noise>/auto-seed<seed>.slice.npz``."""
    return f"{path.parent.parent.name}-{path.parent.name}-{path.name.split('-seed')[1].split('.')[0]}"


def slices(captures: Path | None = None, runs: Path | None = None) -> dict[str, Any]:
    """Slice name -> loaded npz: ``captures/*.npz`` (this script's `capture`) or, under a runs tree,
    every ``auto-seed<k>.slice.npz`` the benchmark kept beside an auto run (named data set-noise-seed)."""
    found: dict[str, Any] = {}
    if captures is not None:
        found.update({path.stem: np.load(path) for path in sorted(captures.glob("*.npz"))})
    if runs is not None:
        for path in sorted(runs.rglob("auto-seed*.slice.npz")):
            found[run_slice_name(path)] = np.load(path)
    missing = [name for name, z in found.items() if "clean" not in z.files]
    if missing:
        raise ValueError(f"{', '.join(missing)}: no clean labels in the slice file; only a benchmark run that keeps "
                         "clean_label beside the noise can be judged.")
    return found


def evaluate(found: dict[str, Any]) -> list[dict[str, Any]]:
    """Replay `decide` on every slice under each rule variant (transition estimator x CE margin)."""
    import jal_trainer.auto_decide as rule
    import jal_trainer.auto as auto
    import jal_trainer.selection as selection

    anchor = lambda p, n: selection.anchor_transition(selection.calibrate(p, n))  # noqa: E731
    estimators = {"confident joint of the candidates' mean": (selection.confident_transition, True),
                  "confident joint, weak votes ignored": (selection.confident_transition, False),
                  "anchor points, calibrated": (anchor, True)}
    candidates = auto.parse_candidates(CANDIDATES, "finetune")
    rows = []
    saved = rule.confident_transition
    try:
        for name, z in found.items():
            probs = {c: z[f"p_{c}"].astype(np.float32) for c in CANDIDATES}
            clean = {c: float(np.mean(probs[c].argmax(1) == z["clean"])) for c in CANDIDATES}
            for estimator, (fn, use_weak) in estimators.items():
                rule.confident_transition = fn
                for margin in MARGINS:
                    decided = rule.decide(candidates, probs, {}, z["noisy"], {"seed": 0}, ce_margin=margin,
                                          weak_labels=z["weak"] if use_weak and "weak" in z.files else None)
                    chosen, facts = decided.chosen.label, decided.settings
                    rows.append({"slice": name, "estimator": estimator, "ce_margin": margin, "chosen": chosen,
                                 "ce_lead_stds": facts["ce_lead"] / max(facts["ce_lead_std"], 1e-12),
                                 "ce_rival": facts["ce_rival"],
                                 "clean_slice_accuracy": clean, "regret_vs_best": max(clean.values()) - clean[chosen],
                                 "gain_vs_ce": clean[chosen] - clean["ce"]})
    finally:
        rule.confident_transition = saved
    return rows


def evaluate_sets(found: dict[str, Any]) -> list[dict[str, Any]]:
    """Replay the current rule (`decide` as shipped) with each of `CANDIDATE_SETS` on every slice captured
    with all of their candidates (the same slices for every set). Regret is against the best of those
    candidates (one reference for every set, so the sets compare)."""
    import jal_trainer.auto as auto

    every = list(dict.fromkeys(c for labels in CANDIDATE_SETS.values() for c in labels))
    rows = []
    for slice_name, z in found.items():
        if not all(f"p_{c}" in z.files for c in every):
            continue
        probs = {c: z[f"p_{c}"] for c in every}
        clean = {c: float(np.mean(p.argmax(1) == z["clean"])) for c, p in probs.items()}
        for name, labels in CANDIDATE_SETS.items():
            decided = auto.decide(auto.parse_candidates(labels, "finetune"), {c: probs[c] for c in labels}, {},
                                  z["noisy"], {"seed": 0},
                                  weak_labels=z["weak"] if auto.SCORE_TIES_BY_CONSENSUS and "weak" in z.files else None)
            chosen = decided.chosen.label
            rows.append({"slice": slice_name, "candidate_set": name, "chosen": chosen, "clean_slice_accuracy": clean,
                         "regret_vs_best": max(clean.values()) - clean[chosen],
                         "gain_vs_ce": clean[chosen] - clean["ce"],
                         "estimated": {r["label"]: r.get("estimated_clean_accuracy") for r in decided.candidates}})
    return rows


def report_sets(rows: list[dict[str, Any]]) -> str:
    """Markdown: per candidate set, worst and mean regret and the worst gap to CE; then the choices per slice."""
    import jal_trainer.auto as auto

    ties = "scored by consensus" if auto.SCORE_TIES_BY_CONSENSUS else "scored as they are"
    names = [n for n in CANDIDATE_SETS if any(r["candidate_set"] == n for r in rows)]
    lines = ["## Candidate sets: the detect-then-retrain candidates", "",
             "The shipped rule (confident joint of the candidates' mean, guard 0, "
             f"rows with a tied majority vote {ties}) with each candidate set, on the "
             "same slices (captured with every candidate of every set). Regret: against the best of all those "
             "candidates on the slice. Every candidate training (each of the two of a `+clean` one) had half a "
             "full training (11.1 of 20 epochs on 90% of the rows).", "",
             "| candidate set | slices | worst regret vs best (pt) | mean regret (pt) | worst vs CE (pt) | "
             "mean clean slice accuracy of the choice (%) |", "|---|---|---|---|---|---|"]
    for name in names:
        part = [r for r in rows if r["candidate_set"] == name]
        lines.append(f"| {name} | {len(part)} | {100 * max(r['regret_vs_best'] for r in part):.1f} | "
                     f"{100 * np.mean([r['regret_vs_best'] for r in part]):.2f} | "
                     f"{100 * min(r['gain_vs_ce'] for r in part):+.1f} | "
                     f"{100 * np.mean([r['clean_slice_accuracy'][r['chosen']] for r in part]):.2f} |")
    stats = {n: (max(r["regret_vs_best"] for r in rows if r["candidate_set"] == n),
                 min(r["gain_vs_ce"] for r in rows if r["candidate_set"] == n)) for n in names}
    for name in names[1:]:  # the bar for a default candidate: no higher worst regret, no lower worst gap to CE
        ok = stats[name][0] <= stats[names[0]][0] + 1e-9 and stats[name][1] >= stats[names[0]][1] - 1e-9
        lines.append(f"\n{name}: worst regret {100 * stats[name][0]:.1f} pt (defaults {100 * stats[names[0]][0]:.1f}), "
                     f"worst vs CE {100 * stats[name][1]:+.1f} pt (defaults {100 * stats[names[0]][1]:+.1f}): "
                     + ("meets the bar (no higher worst regret, no lower worst gap to CE)." if ok else
                        "fails the bar."))
    last = [r for r in rows if r["candidate_set"] == names[-1]]
    for label in CLEAN:
        best = [r for r in last if r["clean_slice_accuracy"][label] >= max(r["clean_slice_accuracy"].values())]
        behind = [r["estimated"]["ce"] - r["estimated"][label] for r in last]
        lines.append(f"\n`{label}`: chosen on {sum(r['chosen'] == label for r in last)} of {len(last)} slices "
                     f"({names[-1]}); the best candidate by the clean slice labels on {len(best)} "
                     f"({', '.join(r['slice'] for r in best) or 'none'}); its estimated clean accuracy is below "
                     f"CE's on {sum(b > 0 for b in behind)} of {len(last)} slices (by {100 * np.median(behind):.1f} pt "
                     "in the median): detect-then-retrain disagrees with the noisy slice labels by design, and the "
                     "estimate does not undo all of it.")
    from jal_trainer.auto import DEFAULT_CANDIDATES

    lines.append(f"\nShipped defaults (`jal_trainer.auto.DEFAULT_CANDIDATES`): {', '.join(DEFAULT_CANDIDATES)}. "
                 "A candidate joins them only if it meets the bar and the rule chooses it somewhere: a candidate "
                 "never chosen adds its trainings to every run (a `+clean` one two half-trainings: 3.5 -> 4.5 "
                 "trainings) and changes choices only through the candidates' consensus.")
    lines += ["", "| slice | clean slice accuracy per candidate | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
    for slice_name in sorted({r["slice"] for r in rows}):
        part = {r["candidate_set"]: r for r in rows if r["slice"] == slice_name}
        accs = next(iter(part.values()))["clean_slice_accuracy"]
        lines.append(f"| {slice_name} | " + ", ".join(f"{c} {100 * a:.1f}" for c, a in accs.items()) + " | " +
                     " | ".join(part[n]["chosen"] if n in part else "-" for n in names) + " |")
    return "\n".join(lines) + "\n"


def test_accuracies(runs: Path) -> dict[str, dict[str, float]]:
    """Slice name -> loss -> clean test accuracy of that loss's plain run with the same seed, beside the slice.

    Shown next to the choices, never used to make them: the rule is judged on the slices' clean labels.
    """
    out: dict[str, dict[str, float]] = {}
    for path in sorted(runs.rglob("auto-seed*.slice.npz")):
        seed = path.name.split("-seed")[1].split(".")[0]  # the plain runs beside it: <loss>-seed<k>.json
        accs = {}
        for c in CANDIDATES:
            run = path.parent / f"{c.replace('+', '_')}-seed{seed}.json"
            if run.exists():
                accs[c] = json.loads(run.read_text())["test_accuracy"]
        out[run_slice_name(path)] = accs
    return out


def report(rows: list[dict[str, Any]], regime: str, command: str,
           tests: dict[str, dict[str, float]] | None = None) -> str:
    """Markdown: one line per rule variant (worst and mean regret), then the shipped estimator's choices per slice."""
    import jal_trainer.auto as auto
    import jal_trainer.auto_decide as rule

    shipped = ("confident joint of the candidates' mean" if auto.SCORE_TIES_BY_CONSENSUS
               else "confident joint, weak votes ignored")
    margin = rule.CE_MARGIN
    variants = sorted({(r["estimator"], r["ce_margin"]) for r in rows})
    slices = sorted({r["slice"] for r in rows})
    lines = [f"# `auto`'s scoring rule, judged on the slices' clean training labels ({regime})", "",
             "Clean slice accuracy of auto's choice against the best of its 5 default candidates and CE, "
             f"{regime} regime, candidates trained as auto trains them. No test label is read to choose. "
             f"Command: {command}. {len(slices)} slices (data set-seed): " + ", ".join(slices) + ".", "",
             f"Shipped (`jal_trainer.auto_decide`): {shipped}, CE margin {margin:g} "
             "(CE is kept only if its score leads the best other candidate's by that many bootstrap stds of the gap; "
             "negative: a robust loss must beat CE by that many).", "",
             "| T estimator | CE margin (bootstrap stds) | slices | worst regret vs best (pt) | mean regret (pt) | "
             "worst vs CE (pt) | mean gain vs CE (pt) |", "|---|---|---|---|---|---|---|"]
    for estimator, m in variants:
        part = [r for r in rows if r["estimator"] == estimator and r["ce_margin"] == m]
        lines.append(f"| {estimator} | {m:g} | {len(part)} | {100 * max(r['regret_vs_best'] for r in part):.1f} | "
                     f"{100 * np.mean([r['regret_vs_best'] for r in part]):.1f} | "
                     f"{100 * min(r['gain_vs_ce'] for r in part):+.1f} | "
                     f"{100 * np.mean([r['gain_vs_ce'] for r in part]):+.2f} |")
    margins = sorted({m for e, m in variants if e == shipped})
    test_note = " | test accuracy of each loss's plain run, same seed (not used to choose) |" if tests else " |"
    lines += ["", f"Choices per slice, {shipped}. CE's lead: its estimate minus the best other candidate's, in "
              "bootstrap stds of that gap (CE is kept at margin m when the lead is at least m).", "",
              "| slice | clean slice accuracy per candidate | CE's lead (stds) over | "
              + " | ".join(f"margin {m:g}" for m in margins) + test_note,
              "|---|---|---|" + "---|" * len(margins) + ("---|" if tests else "")]
    for name in slices:
        part = {r["ce_margin"]: r for r in rows if r["slice"] == name and r["estimator"] == shipped}
        accs = next(iter(part.values()))["clean_slice_accuracy"]
        first = next(iter(part.values()))
        cells = [f"| {name} | " + ", ".join(f"{c} {100 * a:.1f}" for c, a in accs.items()),
                 f"{first['ce_lead_stds']:+.2f} ({first['ce_rival']})"] + [part[m]["chosen"] for m in margins]
        if tests:
            cells.append(", ".join(f"{c} {100 * a:.1f}" for c, a in tests.get(name, {}).items()) or "-")
        lines.append(" | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture")
    cap.add_argument("--sets", default=",".join(SETS))
    cap.add_argument("--seeds", default="0,1,2")
    cap.add_argument("--out", type=Path, required=True)
    cap.add_argument("--candidates", default=",".join(CAPTURED), help="candidates to capture (default: the 7 losses)")
    cap.add_argument("--regime", choices=("probe", "finetune"), default="probe",
                     help="finetune: auto's own defaults in the fine-tuning regime, its slice file kept")
    cap.add_argument("--bf16", action="store_true", help="finetune: bf16 autocast (only where the CPU has it natively)")
    ev = sub.add_parser("evaluate")
    ev.add_argument("--captures", type=Path, help="this script's captures (probe regime)")
    ev.add_argument("--runs", type=Path,
                    help="a benchmark runs tree with auto-seed*.slice.npz (e.g. the fine-tuning runs)")
    ev.add_argument("--out", type=Path, default=OUT, help="output stem: writes <out>.json and <out>.md")
    ev.add_argument("--regime", choices=("probe", "finetune"), default=None,
                    help="the regime the slices come from (default: probe for --captures, finetune for --runs)")
    args = parser.parse_args()
    if args.command == "capture":
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.sets.split(","):
            for seed in map(int, args.seeds.split(",")):
                if args.regime == "finetune":
                    capture_finetune(name, seed, args.out, args.bf16)  # resumable: a finished slice is skipped
                else:
                    capture(name, seed, args.out, args.candidates.split(","))  # resumable: only what is missing
        return
    if (args.captures is None) == (args.runs is None):
        parser.error("evaluate needs exactly one of --captures DIR or --runs DIR")
    found = slices(args.captures, args.runs)
    if not found:
        parser.error(f"no slice files under {args.captures or args.runs}")
    rows = evaluate(found)
    sets = evaluate_sets(found) if args.captures else []
    regime = args.regime or ("probe" if args.captures else "finetune")
    source = f"--captures {args.captures}" if args.captures else f"--runs {args.runs}"
    command = f"`python recipes/auto_slice_check.py evaluate {source} --regime {regime} --out {args.out}`"
    if args.runs:
        command += (" on the slice files the benchmark keeps beside each auto run "
                    "(`recipes/benchmark.py run recipes/grids/finetune.yaml --losses auto`)")
    elif regime == "finetune":
        command = (f"`OMP_NUM_THREADS=1 python recipes/auto_slice_check.py capture --regime finetune --sets "
                   f"{','.join(sorted({n.rsplit('-', 1)[0] for n in found}))} --seeds "
                   f"{','.join(sorted({n.rsplit('-', 1)[1] for n in found}))} --out {args.captures}` "
                   f"({'bf16' if any('bf16' in n for n in found) else 'float32'}, {platform_line()}), then "
                   + command)
    args.out.with_suffix(".json").write_text(json.dumps({"rule_variants": rows, "candidate_sets": sets}, indent=1))
    text = report(rows, regime, command, None if args.captures else test_accuracies(args.runs))
    text += ("\n" + report_sets(sets)) if sets else ""
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
