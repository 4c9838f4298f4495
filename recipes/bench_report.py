"""The accuracy benchmark's report: the table, verdicts, plot and provenance of a grid's runs.

`aggregate` turns the run JSONs of ``recipes/benchmark.py`` into rows of clean test accuracy
(mean +- std over seeds); `write_report` writes them as ``<out>.json``, a Markdown report
(``<out>.md``: one table per data set, realised noise, the published numbers when the grid has
them, where JAL wins and where it does not, and how the runs were made) and a plot (``<out>.png``).

Example:
    >>> column_name("symmetric", 0.4), column_name("majority-vote", None)
    ('sym 0.4', 'majority-vote')
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench_grid import JAL_LOSSES, Grid, expand, write_json


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of mean and sample std (ddof 1; 0 for a single seed) of the clean test accuracy.

    Returns:
        One row per (dataset, noise_type, noise_rate, loss): ``{dataset, noise_type, noise_rate,
        loss, n_seeds, mean_accuracy, std_accuracy, realised_noise_rate, mean_seconds}``, accuracy
        as a fraction, in the order the runs first appear.

    Example:
        >>> aggregate([{"dataset": "d", "noise_type": "symmetric", "noise_rate": 0.2, "loss": "ce",
        ...             "seed": s, "test_accuracy": acc, "seconds": 1.0}
        ...            for s, acc in [(0, 0.5), (1, 0.7)]])[0]["std_accuracy"]
        0.1414
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run.get("regime"), run["dataset"], run["noise_type"], run["noise_rate"], run["loss"]),
                          []).append(run)
    rows = []
    for (regime, dataset, noise_type, rate, loss), members in groups.items():
        accs = [m["test_accuracy"] for m in members]
        mean = sum(accs) / len(accs)
        std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) if len(accs) > 1 else 0.0
        realised = [m["realised_noise_rate"] for m in members if m.get("realised_noise_rate") is not None]
        rows.append({
            **({"regime": regime} if regime else {}), "dataset": dataset, "noise_type": noise_type, "noise_rate": rate,
            "loss": loss, "n_seeds": len(accs),
            "mean_accuracy": round(mean, 4), "std_accuracy": round(std, 4),
            "realised_noise_rate": round(sum(realised) / len(realised), 4) if realised else None,
            "mean_seconds": round(sum(m.get("seconds", 0.0) for m in members) / len(members), 1),
        })
    return rows


def column_name(noise_type: str, rate: float | None) -> str:
    """Header of a noise setting: ``sym 0.4``, ``pairflip 0.4`` or the real noise's name."""
    if rate is None:
        return noise_type
    short = {"symmetric": "sym", "pairflip": "pairflip"}.get(noise_type, noise_type)
    return f"{short} {rate:g}"


def _columns(rows: list[dict[str, Any]]) -> list[tuple[str, float | None]]:
    order = {"symmetric": 0, "pairflip": 1}
    keys = {(r["noise_type"], r["noise_rate"]) for r in rows}
    return sorted(keys, key=lambda k: (order.get(k[0], 2), k[0], k[1] if k[1] is not None else 0.0))


def best_losses(rows: list[dict[str, Any]]) -> set[str]:
    """Losses whose mean equals the highest mean of ``rows`` at the table's precision (0.01 %)."""
    top = max(round(r["mean_accuracy"] * 100, 2) for r in rows)
    return {r["loss"] for r in rows if round(r["mean_accuracy"] * 100, 2) == top}


def markdown_table(rows: list[dict[str, Any]], losses: list[str]) -> str:
    """A Markdown table of one data set: rows = losses, columns = noise settings, best in bold."""
    columns = _columns(rows)
    cells = {(r["loss"], r["noise_type"], r["noise_rate"]): r for r in rows}
    bold = {col: best_losses([r for r in rows if (r["noise_type"], r["noise_rate"]) == col]) for col in columns}
    lines = ["| loss | " + " | ".join(column_name(*c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for loss in losses:
        if not any(key[0] == loss for key in cells):
            continue
        out = []
        for col in columns:
            row = cells.get((loss, *col))
            if row is None:
                out.append("n/a")
                continue
            text = f"{row['mean_accuracy'] * 100:.2f} ± {row['std_accuracy'] * 100:.2f}"
            if row["n_seeds"] < max(r["n_seeds"] for r in rows):
                text += f" (n={row['n_seeds']})"
            out.append(f"**{text}**" if loss in bold[col] else text)
        lines.append(f"| {loss.upper()} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def realised_noise_line(rows: list[dict[str, Any]]) -> str:
    """The fraction of training labels actually wrong per column (mean over seeds).

    Synthetic noise flips floor(T[i, j] * n_i) samples per class pair, so on small classes the
    realised rate sits below the nominal one (digits, about 130 per class: sym 0.2 -> about 0.14).
    """
    parts = []
    for col in _columns(rows):
        realised = [r["realised_noise_rate"] for r in rows
                    if (r["noise_type"], r["noise_rate"]) == col and r.get("realised_noise_rate") is not None]
        if realised:
            parts.append(f"{column_name(*col)}: {sum(realised) / len(realised) * 100:.1f}%")
    return "Realised training-label noise (fraction of wrong training labels): " + (", ".join(parts) or "n/a") + "."


def jal_verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (data set, noise setting): the best JAL loss against the best baseline.

    ``clear`` is True when the gap exceeds the larger of the two standard deviations, a rough
    guard against calling seed noise a win.
    """
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        ds_rows = [r for r in rows if r["dataset"] == dataset]
        for col in _columns(ds_rows):
            cell = [r for r in ds_rows if (r["noise_type"], r["noise_rate"]) == col]
            jal = [r for r in cell if r["loss"] in JAL_LOSSES]
            base = [r for r in cell if r["loss"] not in JAL_LOSSES]
            if not jal or not base:
                continue
            j = max(jal, key=lambda r: r["mean_accuracy"])
            b = max(base, key=lambda r: r["mean_accuracy"])
            gap = j["mean_accuracy"] - b["mean_accuracy"]
            ce = next((r["mean_accuracy"] for r in cell if r["loss"] == "ce"), None)
            out.append({"dataset": dataset, "setting": column_name(*col), "jal": j["loss"],
                        "jal_mean": j["mean_accuracy"],
                        "ce_mean": ce,
                        "baseline": b["loss"], "baseline_mean": b["mean_accuracy"], "gap": gap,
                        # One seed has no spread to compare the gap with: never call it clear.
                        "clear": min(j["n_seeds"], b["n_seeds"]) > 1
                        and abs(gap) > max(j["std_accuracy"], b["std_accuracy"])})
    return out


def verdict_text(verdicts: list[dict[str, Any]]) -> str:
    """The "where JAL wins and where it does not" paragraph, computed from the verdicts."""
    if not verdicts:
        return "No setting has both a JAL loss and a baseline yet."
    wins = [v for v in verdicts if v["gap"] > 0]
    losses = [v for v in verdicts if v["gap"] <= 0]

    def fmt(v: dict[str, Any]) -> str:
        sign = "+" if v["gap"] > 0 else "-"
        clear = "" if v["clear"] else ", within one std or a single seed"
        return (f"{v['dataset']} {v['setting']} ({v['jal'].upper()} {v['jal_mean'] * 100:.2f} vs "
                f"{v['baseline'].upper()} {v['baseline_mean'] * 100:.2f}, {sign}{abs(v['gap']) * 100:.2f} pt{clear})")

    clear_wins = sum(v["clear"] for v in wins)
    clear_losses = sum(v["clear"] for v in losses)
    text = [(f"Best JAL loss vs best baseline, per setting: JAL is ahead in {len(wins)} of {len(verdicts)} settings "
             f"({clear_wins} by more than one std) and behind or tied in {len(losses)} ({clear_losses} by more than "
             "one std). A gap is called clear when it exceeds the larger of the two standard deviations over seeds.")]
    against_ce = [v for v in verdicts if v.get("ce_mean") is not None]
    if against_ce:
        above = sum(v["jal_mean"] > v["ce_mean"] for v in against_ce)
        text[0] += f" Against plain CE alone, the best JAL loss is ahead in {above} of {len(against_ce)} settings."
    if wins:
        text.append("JAL ahead: " + "; ".join(fmt(v) for v in wins) + ".")
    if losses:
        text.append("JAL not ahead: " + "; ".join(fmt(v) for v in losses) + ".")
    return "\n\n".join(text)


def plot(rows: list[dict[str, Any]], losses: list[str], path: str | os.PathLike[str]) -> None:
    """Top row: accuracy vs symmetric noise rate per loss, one panel per data set with at least two
    rates. Bottom row: bars for every other setting (pair-flip, real noise, single rates).
    Error bars are one std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates: dict[str, set] = {}
    for r in rows:
        if r["noise_type"] == "symmetric":
            rates.setdefault(r["dataset"], set()).add(r["noise_rate"])
    sym_sets = [d for d, rs in rates.items() if len(rs) > 1]
    other = [c for c in dict.fromkeys((r["dataset"], r["noise_type"], r["noise_rate"]) for r in rows)
             if not (c[1] == "symmetric" and c[0] in sym_sets)]
    cols = max(len(sym_sets), 1)
    fig = plt.figure(figsize=(4.5 * cols, 8.2 if other and sym_sets else 4.2))
    grid = fig.add_gridspec(2 if other and sym_sets else 1, cols)
    colours = {loss: plt.cm.tab10(i) for i, loss in enumerate(losses)}
    for i, dataset in enumerate(sym_sets):
        ax = fig.add_subplot(grid[0, i])
        for loss in losses:
            pts = sorted((r["noise_rate"], r["mean_accuracy"], r["std_accuracy"]) for r in rows
                         if r["dataset"] == dataset and r["noise_type"] == "symmetric" and r["loss"] == loss)
            if pts:
                x, y, e = zip(*pts)
                jal = loss in JAL_LOSSES
                ax.errorbar(x, [v * 100 for v in y], yerr=[v * 100 for v in e], label=loss.upper(), marker="o",
                            ms=3, capsize=2, color=colours[loss], linestyle="-" if jal else "--",
                            linewidth=2 if jal else 1)
        ax.set_title(f"{dataset}: symmetric noise")
        ax.set_xlabel("nominal noise rate")
        ax.set_ylabel("clean test accuracy (%)")
        ax.grid(alpha=0.3)
    if other:
        ax = fig.add_subplot(grid[-1, :])
        width = 0.8 / len(losses)
        for i, loss in enumerate(losses):
            vals = [next((r for r in rows
                          if (r["dataset"], r["noise_type"], r["noise_rate"]) == c and r["loss"] == loss),
                         None) for c in other]
            xs = [k + (i - (len(losses) - 1) / 2) * width for k, v in enumerate(vals) if v]
            ax.bar(xs, [v["mean_accuracy"] * 100 for v in vals if v], width,
                   yerr=[v["std_accuracy"] * 100 for v in vals if v], color=colours[loss], label=loss.upper(),
                   capsize=1.5)
        ax.set_xticks(range(len(other)))
        ax.set_xticklabels([f"{d}\n{column_name(t, r)}" for d, t, r in other], fontsize=8)
        ax.set_title("pair-flip, real noise and single settings")
        ax.set_ylabel("clean test accuracy (%)")
        ax.grid(alpha=0.3, axis="y")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(losses), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reference_table(rows: list[dict[str, Any]], runs: list[dict[str, Any]], grid: Grid, *,
                    tolerance: float = 1.5) -> str:
    """Markdown: each (setting, loss) with a published number, ours beside it, and the time per epoch.

    ``within`` is ``yes`` when |ours - paper| <= ``tolerance`` points. Time per epoch is the
    training time of a run (``train_seconds``, from `Trainer.train`) over its epochs, mean over
    seeds; the full-run column multiplies it by the epochs run.
    """
    lines = ["| setting | loss | ours (%) | paper (%) | ours - paper | within " + f"{tolerance:g} pt | "
             "seconds / epoch | seconds / run |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        col = column_name(row["noise_type"], row["noise_rate"])
        paper = grid.reference.get(col, {}).get(row["loss"])
        members = [r for r in runs if (r["dataset"], r["noise_type"], r["noise_rate"], r["loss"]) ==
                   (row["dataset"], row["noise_type"], row["noise_rate"], row["loss"]) and r.get("train_seconds")]
        per_epoch = [r["train_seconds"] / r["epochs"] for r in members if r.get("epochs")]
        timing = (f"{sum(per_epoch) / len(per_epoch):.2f} | "
                  f"{sum(r['train_seconds'] for r in members) / len(members):.0f}") if per_epoch else "n/a | n/a"
        ours = f"{row['mean_accuracy'] * 100:.2f} ± {row['std_accuracy'] * 100:.2f}"
        if paper is None:
            lines.append(f"| {row['dataset']} {col} | {row['loss'].upper()} | {ours} | - | - | - | {timing} |")
            continue
        gap = row["mean_accuracy"] * 100 - float(paper)
        lines.append(f"| {row['dataset']} {col} | {row['loss'].upper()} | {ours} | {float(paper):.2f} | {gap:+.2f} | "
                     f"{'yes' if abs(gap) <= tolerance else 'no'} | {timing} |")
    if grid.reference_source:
        lines += ["", f"Published numbers: {grid.reference_source}"]
    return "\n".join(lines)


def hardware() -> dict[str, Any]:
    """CPU model (``lscpu``), core count and OS of this machine."""
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                     model)
    except OSError:  # no lscpu (macOS, Windows): fall back to platform's answer
        pass
    return {"cpu": model, "cores": os.cpu_count(), "gpu": _gpu_name(), "os": platform.platform()}


def _gpu_name() -> str:
    """Name of CUDA device 0 (what `jal train` uses by default), or "none"."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"


def write_report(grid: Grid, runs: list[dict[str, Any]], out: str | os.PathLike[str], *,
                 sessions: list[dict[str, Any]] | None = None, command: str = "") -> list[dict[str, Any]]:
    """Write ``<out>.json`` (rows), ``<out>.md`` (tables, verdicts, provenance) and ``<out>.png``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = aggregate(runs)
    write_json(out.with_suffix(".json"), rows)
    plot(rows, grid.losses, out.with_suffix(".png"))
    expected = len(expand(grid))
    sessions = sessions or []
    lines = [f"# {grid.title or f'Clean test accuracy of JAL and baselines, grid `{grid.name}`'}", ""]
    if grid.description:
        lines += [grid.description.strip(), ""]
    lines += provenance(grid, runs, expected, sessions, command)
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        ds_rows = [r for r in rows if r["dataset"] == dataset]
        lines += [f"## {dataset}", "", markdown_table(ds_rows, grid.losses), ""]
        lines += [realised_noise_line(ds_rows), ""]
    if grid.reference:
        lines += ["## Against the published numbers", "", reference_table(rows, runs, grid), ""]
    lines += ["## Where JAL wins and where it does not", "", verdict_text(jal_verdicts(rows)), ""]
    if grid.notes:
        lines += ["## Reading the table", "", *[f"- {note.strip()}" for note in grid.notes], ""]
    out.with_suffix(".md").write_text("\n".join(lines))
    return rows


def provenance(grid: Grid, runs: list[dict[str, Any]], expected: int, sessions: list[dict[str, Any]],
               command: str) -> list[str]:
    """The report's bullet lines on how the runs were made: count, commands, hardware, versions, time."""
    from jal_trainer.run_outputs import package_versions

    # Runs measured elsewhere (the GPU cells of recipes/gpu/paper_grid.py) carry their own hardware.
    hw = next((r["hardware"] for r in runs if r.get("hardware")), None) or hardware()
    versions = next((r["versions"] for r in runs if r.get("versions")), None) or package_versions()
    wall = sum(s.get("wall_seconds", 0.0) for s in sessions)
    per_set: dict[str, list[float]] = {}
    for run in runs:
        per_set.setdefault(run["dataset"], []).append(run.get("seconds", 0.0))
    costs = ", ".join(f"{d} {sum(v) / len(v):.1f} s" for d, v in per_set.items())
    run_cmds = sorted({python_command(s["command"]) for s in sessions if s.get("command")})
    lines = [
        (f"- Runs: {len(runs)} of {expected} in the grid; seeds {grid.seeds} (seed s trains with `--seed s "
         "--noise_seed s`); mean ± sample std (ddof 1) over seeds, in %; best mean per column in bold."),
        f"- Commands: `{' ; '.join(run_cmds) or 'python recipes/benchmark.py run ' + grid.name}` then `{command}`.",
        (f"- Hardware: {hw['cpu']}, {hw['cores']} cores, no GPU ({hw['os']}); shared with other jobs, so times are "
         "contended." if hw["gpu"] == "none" else
         f"- Hardware: one {hw['gpu']}, {hw['cpu']}, {hw['cores']} cores ({hw['os']})."),
        *gpu_runs_line(runs),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "platform") + ".",
        (f"- Wall time of the grid: {wall / 60:.1f} min over {len(sessions)} session(s) "
         f"({', '.join(str(s.get('workers')) + 'x' + str(s.get('threads')) for s in sessions)} workers x threads); "
         f"mean seconds per run: {costs}."),
        "- Each run's full argv, realised noise and time: `recipes/results/runs/" + grid.name
        + "/<dataset>/<noise>/<loss>-seed<s>.json`.",
        "",
    ]
    return lines


def gpu_runs_line(runs: list[dict[str, Any]]) -> list[str]:
    """A bullet saying how many runs trained on which GPU (runs record ``device``), if any did."""
    gpus = Counter(run["device"].removeprefix("cuda: ") for run in runs if str(run.get("device")).startswith("cuda"))
    if not gpus:
        return []
    return ["- On a GPU: " + ", ".join(f"{n} runs on one {name}" for name, n in gpus.items())
            + f"; the other {len(runs) - sum(gpus.values())} on the CPU of the line above."]


def python_command(command: str) -> str:
    """``command`` as one types it: ``recipes/x.py run ...`` becomes ``python recipes/x.py run ...``."""
    return command if command.startswith("python") else f"python {command}"


