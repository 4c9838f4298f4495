"""Which robust loss should win when auto's slice cannot tell several apart (`auto_decide.TIE_ORDER`).

On a small held-out slice several candidates often make the same predictions and get the same
score. Something must break the tie; this script measures, on the slices auto saved (the noisy
*training* rows it held out, whose clean labels the WRENCH training sets carry), how far each
robust candidate's clean slice accuracy falls below the best robust candidate's. No test label is
read. Identical slices (the same rows, labels and predictions saved under two grid columns) count
once.

Usage:
    python recipes/auto_tie_order.py                     # writes recipes/results/auto_tie_order.{json,md}
    python recipes/auto_tie_order.py --slices DIR ...    # other folders of *.npz slice files

Example:
    >>> regrets({"a": 90.0, "b": 88.5})
    {'a': 0.0, 'b': 1.5}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SLICES = (ROOT / "recipes/results/runs/finetune", ROOT / "recipes/results/auto_slice_check_finetune_slices")
OUT = ROOT / "recipes/results/auto_tie_order"


def regrets(accuracy: dict[str, float]) -> dict[str, float]:
    """Each candidate's clean accuracy below the best one's, in points."""
    best = max(accuracy.values())
    return {k: round(best - v, 4) for k, v in accuracy.items()}


def clean_accuracies(path: Path) -> tuple[str, dict[str, float]] | None:
    """(content digest, {robust candidate: clean slice accuracy in %}) of one slice file, or None
    when it carries no clean labels."""
    z = np.load(path)
    if "clean" not in z.files:
        return None
    digest = hashlib.sha1()
    for key in sorted(k for k in z.files if k not in ("rows", "weak")):  # row numbers differ between columns
        digest.update(key.encode() + np.ascontiguousarray(z[key]).tobytes())
    clean = z["clean"]
    acc = {k[2:]: float((z[k].astype(np.float32).argmax(1) == clean).mean() * 100) for k in z.files
           if k.startswith("p_") and k != "p_ce"}
    return digest.hexdigest(), acc


def collect(folders: list[Path]) -> list[dict]:
    """One row per distinct slice: its file, robust candidates' clean accuracy and regret."""
    seen, rows = set(), []
    for folder in folders:
        for path in sorted(folder.rglob("*.npz")):
            if "before" in str(path.relative_to(folder)):  # superseded runs: same slices, older code
                continue
            got = clean_accuracies(path)
            if got is None or got[0] in seen or len(got[1]) < 2:
                continue
            seen.add(got[0])
            name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            rows.append({"slice": str(name), "clean_accuracy": got[1], "regret": regrets(got[1])})
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per candidate: slices, mean and worst regret, times best; sorted by mean regret."""
    names = sorted({k for r in rows for k in r["regret"]})
    out = []
    for name in names:
        reg = [r["regret"][name] for r in rows if name in r["regret"]]
        out.append({"candidate": name, "slices": len(reg), "mean_regret": round(float(np.mean(reg)), 2),
                    "worst_regret": round(float(np.max(reg)), 1), "times_best": int(sum(x == 0 for x in reg))})
    return sorted(out, key=lambda r: (r["mean_regret"], -r["times_best"]))


def markdown(table: list[dict], rows: list[dict], command: str) -> str:
    lines = ["# auto's tie order: robust candidates by their regret on held-out slices' clean labels", "",
             f"Command: `{command}` ({platform.machine()}). {len(rows)} distinct slices (noisy training rows auto "
             "held out, probe and fine-tuning regimes, WRENCH sets); regret = best robust candidate's clean "
             "slice accuracy minus this one's, in points. No test label is read.", "",
             "| candidate | slices | mean regret (pt) | worst regret (pt) | times best |", "|---|---|---|---|---|"]
    lines += [f"| {r['candidate']} | {r['slices']} | {r['mean_regret']:.2f} | {r['worst_regret']:.1f} | "
              f"{r['times_best']} |" for r in table]
    lines += ["", "Tie order (`jal_trainer.auto_decide.TIE_ORDER`): " + ", ".join(r["candidate"] for r in table), "",
              "| slice | clean slice accuracy (%) |", "|---|---|"]
    lines += [f"| {r['slice']} | " + ", ".join(f"{k} {v:.1f}" for k, v in r["clean_accuracy"].items()) + " |"
              for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", nargs="*", type=Path, default=list(DEFAULT_SLICES))
    parser.add_argument("--out", type=Path, default=OUT, help="Output stem: <out>.json and <out>.md.")
    args = parser.parse_args(argv)
    rows = collect(args.slices)
    if not rows:
        raise SystemExit(f"No slice file with clean labels under {[str(s) for s in args.slices]}. "
                         "Run a benchmark with loss auto on a set with clean labels first.")
    table = summary(rows)
    command = "python recipes/auto_tie_order.py"
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "summary": table, "slices": rows},
                                                        indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(table, rows, command))
    print(markdown(table, rows, command).split("\n\n")[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
