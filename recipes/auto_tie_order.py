"""Which robust loss should win when auto's slice cannot tell several apart (`auto_decide.TIE_ORDER`).

On a small held-out slice several candidates often make the same predictions and get the same
score. Something must break the tie; this script measures, on the slices auto saved (the noisy
*training* rows it held out, whose clean labels the WRENCH training sets carry), how far each
robust candidate's clean slice accuracy falls below the best robust candidate's. No test label is
read. Identical slices (the same rows, labels and predictions saved under two grid columns) count
once.

It also checks the rule that CE keeps a tie with CE (`ce_against_robust`): on the same slices, CE's
regret against the best of all candidates, beside the tie order's first robust loss's. Where the
slice cannot tell CE from the robust losses, this is the only evidence left for which to keep.

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
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SLICES = (ROOT / "recipes/results/runs/finetune", ROOT / "recipes/results/auto_slice_check_finetune_slices")
OUT = ROOT / "recipes/results/auto_tie_order"
TIE_FIRST = "jal-ce"  # `jal_trainer.auto_decide.TIE_ORDER[0]`, compared with CE


def regrets(accuracy: dict[str, float]) -> dict[str, float]:
    """Each candidate's clean accuracy below the best one's, in points."""
    best = max(accuracy.values())
    return {k: round(best - v, 4) for k, v in accuracy.items()}


def _edited(candidate: str) -> bool:
    """A detect-then-retrain candidate (``<loss>+clean``, ``<loss>+relabel``), not a loss."""
    return candidate.endswith(("+clean", "+relabel"))


def clean_accuracies(path: Path) -> tuple[str, dict[str, float]] | None:
    """(content digest, {robust candidate: clean slice accuracy in %}) of one slice file, or None
    when it carries no clean labels."""
    z = np.load(path)
    if "clean" not in z.files:
        return None
    # Labels and the plain losses' predictions name a slice: a slice saved again with a
    # detect-then-retrain candidate added (auto-wide) is the same slice.
    named = [k for k in z.files if k in ("noisy", "clean") or k.startswith("p_") and not _edited(k[2:])]
    digest = slice_digest(z, named)
    clean = z["clean"]
    acc = {k[2:]: float((z[k].astype(np.float32).argmax(1) == clean).mean() * 100) for k in z.files
           if k.startswith("p_")}
    return digest, acc


def slice_digest(z: Any, keys: list[str]) -> str:
    """A digest of the arrays ``keys`` of a loaded slice file ``z``, by name. Row numbers (``rows``) are
    best left out: grid columns that train on the same rows number them differently.

    Example:
        >>> a = {"noisy": np.arange(3), "rows": np.arange(3)}
        >>> slice_digest(a, ["noisy"]) == slice_digest({**a, "rows": np.arange(3) + 7}, ["noisy"])
        True
    """
    digest = hashlib.sha1()
    for key in sorted(keys):
        digest.update(key.encode() + np.ascontiguousarray(z[key]).tobytes())
    return digest.hexdigest()


def collect(folders: list[Path]) -> list[dict]:
    """One row per distinct slice: its file, robust candidates' clean accuracy and regret."""
    seen: dict[str, dict] = {}
    rows = []
    for folder in folders:
        for path in sorted(folder.rglob("*.npz")):
            if "before" in str(path.relative_to(folder)):  # superseded runs: same slices, older code
                continue
            got = clean_accuracies(path)
            # Losses only: a `+clean` candidate ties at its loss's place, and would move the reference
            # (the best robust loss) on the few slices that hold it.
            robust = {k: v for k, v in (got or ("", {}))[1].items() if k != "ce" and not _edited(k)}
            if got is None or len(robust) < 2:
                continue
            if got[0] in seen:  # the same slice again: add the candidates it did not have
                row = seen[got[0]]
                row["clean_accuracy"] = {**robust, **row["clean_accuracy"]}
                row["regret"] = regrets(row["clean_accuracy"])
                continue
            name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            rows.append({"slice": str(name), "clean_accuracy": robust, "regret": regrets(robust),
                         "ce_accuracy": got[1].get("ce")})
            seen[got[0]] = rows[-1]
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


def ce_against_robust(rows: list[dict], first: str) -> dict | None:
    """CE's and ``first``'s (the tie order's first robust loss) regret against the best of all candidates,
    over the slices that also hold CE; None when none does.

    Example:
        >>> ce_against_robust([{"clean_accuracy": {"jal-ce": 90.0}, "ce_accuracy": 91.0}], "jal-ce")["ce_mean_regret"]
        0.0
    """
    both = [r for r in rows if r.get("ce_accuracy") is not None and first in r["clean_accuracy"]]
    if not both:
        return None
    ce, top = [], []
    for r in both:
        best = max(r["ce_accuracy"], *r["clean_accuracy"].values())
        ce.append(best - r["ce_accuracy"])
        top.append(best - r["clean_accuracy"][first])
    return {"slices": len(both), "robust": first, "ce_mean_regret": round(float(np.mean(ce)), 2),
            "ce_worst_regret": round(float(np.max(ce)), 1), "robust_mean_regret": round(float(np.mean(top)), 2),
            "robust_worst_regret": round(float(np.max(top)), 1),
            "ce_better": int(sum(a < b for a, b in zip(ce, top))),
            "robust_better": int(sum(a > b for a, b in zip(ce, top)))}


def markdown(table: list[dict], rows: list[dict], command: str) -> str:
    lines = ["# auto's tie order: robust candidates by their regret on held-out slices' clean labels", "",
             f"Command: `{command}` ({platform.machine()}). {len(rows)} distinct slices (noisy training rows auto "
             "held out, probe and fine-tuning regimes, WRENCH sets); regret = best robust candidate's clean "
             "slice accuracy minus this one's, in points. No test label is read.", "",
             "| candidate | slices | mean regret (pt) | worst regret (pt) | times best |", "|---|---|---|---|---|"]
    lines += [f"| {r['candidate']} | {r['slices']} | {r['mean_regret']:.2f} | {r['worst_regret']:.1f} | "
              f"{r['times_best']} |" for r in table]
    lines += ["", "Tie order (`jal_trainer.auto_decide.TIE_ORDER`; a `+clean` candidate ties at its "
              "loss's place): " + ", ".join(r["candidate"] for r in table), ""]
    versus = ce_against_robust(rows, TIE_FIRST)
    if versus:
        lines += [f"CE keeps a tie with CE. On the {versus['slices']} slices that hold CE, regret against the best of "
                  f"all candidates: CE mean {versus['ce_mean_regret']:.2f} pt (worst {versus['ce_worst_regret']:.1f}), "
                  f"{versus['robust']} mean {versus['robust_mean_regret']:.2f} pt (worst "
                  f"{versus['robust_worst_regret']:.1f}); CE better on {versus['ce_better']}, {versus['robust']} on "
                  f"{versus['robust_better']}, the rest equal.", ""]
    lines += [
              "| slice | clean slice accuracy (%) |", "|---|---|"]
    lines += [f"| {r['slice']} | " + ("" if r.get("ce_accuracy") is None else f"ce {r['ce_accuracy']:.1f}, ")
              + ", ".join(f"{k} {v:.1f}" for k, v in r["clean_accuracy"].items()) + " |" for r in rows]
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
    versus = ce_against_robust(rows, TIE_FIRST)
    args.out.with_suffix(".json").write_text(json.dumps({"command": command, "summary": table,
                                                         "ce_against_robust": versus, "slices": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(table, rows, command))
    print(markdown(table, rows, command).split("\n\n")[2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
