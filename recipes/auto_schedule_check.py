"""Check: would `auto` choose better if its candidates trained all epochs on fewer rows?

`auto` gives each candidate half a training: fewer epochs (0.56 of them) on the 90% of rows it
keeps ("epochs", shipped). On TREC pair-flip 0.4 that picks GCE while SCE wins after the full
schedule. This check captures two more variants of the same search, with the slices and the code of
`recipes/auto_slice_check.py`: "rows" (all epochs on a stratified 56% of the kept rows, the same
cost) and "full" (all epochs on all kept rows, 1.8x the cost: the reference). Every variant's choice
is judged by the clean training labels of the held slice under the *full* candidates' predictions
(held-in evidence, never a test split). Result (2026-12-01, TREC pair-flip 0.4, seeds 0-2): "rows"
chose GCE in 3 of 3, as "epochs" did, so the short schedule is not the only cause; see
``recipes/grids/finetune.yaml``'s notes.

Usage (the "epochs" captures come from ``auto_slice_check.py capture --out CAPTURES``):
    $ OMP_NUM_THREADS=1 python recipes/auto_schedule_check.py capture full trec-pairflip 0 1 2 --out /tmp/modes
    $ OMP_NUM_THREADS=1 python recipes/auto_schedule_check.py capture rows trec-pairflip 0 1 2 --out /tmp/modes
    $ python recipes/auto_schedule_check.py evaluate --out /tmp/modes --captures CAPTURES
    $ OMP_NUM_THREADS=1 python recipes/auto_schedule_check.py capture lr trec-pairflip 1 2 --regime finetune \\
          --out /tmp/ft
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import auto_slice_check as asc  # noqa: E402
import jal_trainer.auto as auto  # noqa: E402

ROOT = Path("/tmp/modes")  # --out
CANDS = asc.CANDIDATES


def patch(mode: str) -> None:
    """Make `auto` train its candidates as ``mode`` says ("full", "rows" or "lr"; "epochs" is auto unchanged)."""
    full = lambda args, fraction: {"num_train_epochs": float(args.num_train_epochs)}  # noqa: E731
    if mode == "lr":
        shipped = auto._short_schedule

        def scaled(args, fraction):
            # the shipped steps, the peak learning rate raised by 1 / fraction: the area under the
            # (warm-up, linear decay) schedule, how far AdamW can move, matches the full schedule's
            return {**shipped(args, fraction), "learning_rate": float(args.learning_rate) / min(fraction, 1.0)}

        auto._short_schedule = scaled
    if mode in ("full", "rows"):
        auto._short_schedule = full
    if mode == "rows":
        original = auto._holdout

        def holdout(labels, args):
            kept, held = original(labels, args)
            share = 0.5 / (1.0 - len(held) / len(labels))  # the rows a candidate's half training pays for
            rng = np.random.default_rng(args.seed + 7)
            keep = []
            for k in np.unique(labels[kept]):  # stratified by the noisy label
                rows = kept[labels[kept] == k]
                keep.append(rng.choice(rows, size=max(1, int(round(share * len(rows)))), replace=False))
            return np.sort(np.concatenate(keep)), held

        auto._holdout = holdout


def capture(mode: str, name: str, seeds: list[int], regime: str = "probe") -> None:
    """`auto_slice_check.capture` of ``name`` at ``seeds`` with the candidates trained as ``mode`` says
    (``regime`` "finetune": `auto_slice_check.capture_finetune`, bf16, auto's default candidates)."""
    patch(mode)
    out = ROOT / mode
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        if regime == "finetune":
            asc.capture_finetune(name, seed, out, True)
        else:
            asc.capture(name, seed, out, CANDS)
        print(mode, name, seed, "done", flush=True)


def evaluate(base: Path) -> None:
    """Print each slice's choice per variant and its regret against the best full-schedule candidate."""
    cands = auto.parse_candidates(CANDS, "finetune")
    rows = []
    for ref in sorted((ROOT / "full").glob("*.npz")):
        z = np.load(ref)
        acc_full = {c: float(np.mean(z[f"p_{c}"].argmax(1) == z["clean"])) for c in CANDS}
        best = max(acc_full.values())
        line = [ref.stem.ljust(18), "full-best %-7s" % max(acc_full, key=acc_full.get)]
        for mode, folder in (("epochs", base), ("rows", ROOT / "rows"), ("lr", ROOT / "lr"), ("full", ROOT / "full")):
            path = folder / ref.name
            if not path.exists():
                line.append(f"{mode}: -")
                continue
            m = np.load(path)
            assert (m["clean"] == z["clean"]).all()
            probs = {c: m[f"p_{c}"] for c in CANDS}
            chosen = auto.decide(cands, probs, {}, m["noisy"], {"seed": 0}).chosen.label
            oracle = max(CANDS, key=lambda c: float(np.mean(probs[c].argmax(1) == m["clean"])))
            regret = best - acc_full[chosen]
            rows.append((mode, ref.stem, regret, acc_full[chosen] - acc_full["ce"]))
            line.append(f"{mode}: {chosen:7s} (oracle {oracle:7s}) regret {100 * regret:4.1f}")
        print("  ".join(line))
    for mode in ("epochs", "rows", "lr", "full"):
        r = [x for x in rows if x[0] == mode]
        if r:
            reg, gain = np.array([x[2] for x in r]), np.array([x[3] for x in r])
            print(f"{mode:6s} n={len(r)} mean regret {100 * reg.mean():.2f} pt, worst {100 * reg.max():.2f}, "
                  f"worst vs CE {100 * gain.min():+.2f}, mean vs CE {100 * gain.mean():+.2f}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["capture", "evaluate"])
    parser.add_argument("args", nargs="*", help="capture: MODE SET SEED...")
    parser.add_argument("--out", type=Path, default=ROOT, help="folder of the full/, rows/ and lr/ captures")
    parser.add_argument("--captures", type=Path, default=Path("/tmp/ac/caps"), help="auto_slice_check's captures")
    parser.add_argument("--regime", choices=("probe", "finetune"), default="probe",
                        help="capture: finetune trains the whole encoder (bf16: a CPU with native bf16)")
    opts = parser.parse_args()
    ROOT = opts.out
    if opts.command == "capture":
        capture(opts.args[0], opts.args[1], [int(s) for s in opts.args[2:]], opts.regime)
    else:
        evaluate(opts.captures)
