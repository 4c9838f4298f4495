"""`jal report <output_dir>`: turn a finished run into its plots and a markdown summary.

A run folder written by ``jal train`` holds ``metrics.json``, ``recipe.yaml``,
``noise_report.json``, ``trainer_state.json`` (its ``log_history``) and, when the clean labels
were known, ``memorisation.json`` (`jal_trainer.callbacks.MemorisationCallback`). The report
writes beside them (or under ``--out``):

- ``memorisation.png``: per epoch, on the training samples with a wrong label, the fraction
  predicted as that wrong label (memorised) and as the true label; the fit of the clean samples
  and the clean test accuracy;
- ``learning_curve.png``: training loss (and its active / passive parts) and test accuracy;
- ``report.md``: the run's settings, metrics, noise and memorisation tables and, when ``jal
  train`` wrote ``label_issues.json``, the label issues found (counts, precision / recall / F1
  when the clean labels are known, the most suspicious training rows).

Plots use matplotlib's object API on an Agg canvas, so they never touch pyplot's global state
and work without a display.

Example:
    $ jal report runs/cifar10n-worst
    >>> from jal_trainer.report import main
    >>> main(["runs/cifar10n-worst"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MEMORISATION_JSON = "memorisation.json"
MEMORISATION_PNG = "memorisation.png"
LABEL_ISSUES_JSON = "label_issues.json"
LEARNING_CURVE_PNG = "learning_curve.png"
REPORT_MD = "report.md"

# Recipe fields shown at the top of report.md, in this order (those present).
RECIPE_FIELDS = ("dataset", "train_subset", "noise_type", "noise_rate", "noise_column", "model", "loss_type",
                 "loss_preset", "alpha", "beta", "a", "num_train_epochs", "learning_rate",
                 "per_device_train_batch_size", "seed")

Rows = Sequence[Mapping[str, Any]]


# ---- figures ---------------------------------------------------------------------------------------


def _figure(width: float, height: float, ncols: int) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _series(rows: Rows, key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the rows where ``key`` is a number (missing and None are skipped)."""
    pairs = [(float(r["epoch"]), float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_memorisation(runs: Mapping[str, Rows] | Rows, path: str | Path, *, title: str | None = None) -> Path:
    """Plot memorisation curves of one or several runs (e.g. CE against JAL) in one figure.

    Args:
        runs: ``{run name: rows}``, or the rows of a single run. Each row is a dict with ``epoch``
            and fractions in [0, 1]: ``noisy_memorised``, ``noisy_true``, ``clean_fit`` and
            ``test_accuracy`` (any may be ``None``).
        path: the PNG to write.
        title: figure title.

    Returns:
        ``path`` as a `Path`. Left panel: wrongly labelled training samples, predicted as the wrong
        label (solid) or as the true label (dashed). Right panel: clean test accuracy (solid) and
        fit of the correctly labelled training samples (dotted). One colour per run.

    Example:
        >>> plot_memorisation({"CE": ce_rows, "JAL-CE": jal_rows}, "memorisation.png")  # doctest: +SKIP
    """
    if not isinstance(runs, Mapping):
        runs = {"run": runs}
    if not runs:
        raise ValueError("plot_memorisation got no run. Pass {name: rows} with at least one run.")
    fig, (left, right) = _figure(11, 4.2, 2)
    colours = [f"C{i}" for i in range(10)]
    for i, (name, rows) in enumerate(runs.items()):
        colour = colours[i % len(colours)]
        left.plot(*_series(rows, "noisy_memorised"), color=colour, marker="o", ms=3, label=f"{name}: wrong label")
        left.plot(*_series(rows, "noisy_true"), color=colour, ls="--", marker="x", ms=3, label=f"{name}: true label")
        right.plot(*_series(rows, "test_accuracy"), color=colour, marker="o", ms=3, label=f"{name}: clean test acc.")
        right.plot(*_series(rows, "clean_fit"), color=colour, ls=":", label=f"{name}: fit of clean train")
    left.set_title("Training samples with a wrong label: predicted as ...")
    right.set_title("Clean test accuracy and clean-sample fit")
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, not 2.5
        ax.set_xlabel("epoch")
        ax.set_ylabel("fraction")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path, title)


def _save(fig: Any, path: str | Path, title: str | None) -> Path:
    """Title the figure and write it as a PNG, making the folder; return the path."""
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_learning_curve(log_history: Sequence[Mapping[str, Any]], path: str | Path, *,
                        title: str | None = None) -> Path | None:
    """Plot training loss (and its active / passive parts) and evaluation accuracy against epochs.

    Args:
        log_history: ``trainer.state.log_history``: dicts with ``epoch`` and ``loss``,
            ``loss_active``, ``loss_passive``, ``eval_loss``, ``eval_accuracy``...
        path: the PNG to write.

    Returns:
        ``path``, or ``None`` when the history has nothing to plot.
    """
    has = {key for entry in log_history for key in entry}
    loss_keys = [k for k in ("loss", "loss_active", "loss_passive", "eval_loss") if k in has]
    acc_keys = [k for k in ("eval_accuracy", "test_accuracy") if k in has]
    if not loss_keys and not acc_keys:
        return None
    fig, (left, right) = _figure(10, 3.8, 2)
    for key in loss_keys:
        left.plot(*_series(log_history, key), marker=".", label=key)
    for key in acc_keys:
        right.plot(*_series(log_history, key), marker="o", label=key)
    left.set_title("Loss")
    right.set_title("Accuracy (clean test labels)")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return _save(fig, path, title)


# ---- tables ----------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats with 4 decimals, ``None`` as ``-``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def memorisation_table(rows: Rows) -> str:
    """Markdown table of memorisation rows (also used in the model card).

    Example:
        >>> print(memorisation_table([{"epoch": 1.0, "test_accuracy": 0.5, "noisy_memorised": 0.1,
        ...                            "noisy_true": 0.6, "clean_fit": 0.7, "seconds": 0.25}]))
        | epoch | clean test acc. | wrong label memorised | wrong label -> true class | clean train fit | seconds |
        |---|---|---|---|---|---|
        | 1 | 0.5000 | 0.1000 | 0.6000 | 0.7000 | 0.2500 |
    """
    header = ["epoch", "clean test acc.", "wrong label memorised", "wrong label -> true class", "clean train fit",
              "seconds"]
    keys = ["epoch", "test_accuracy", "noisy_memorised", "noisy_true", "clean_fit", "seconds"]
    table = [[row.get(k) for k in keys] for row in rows]
    for line in table:  # epochs as 1, 2, ... (or 0.5 mid-epoch), not 1.0000
        line[0] = f"{line[0]:g}" if isinstance(line[0], (int, float)) else line[0]
    return markdown_table(header, table)


# ---- a run folder ----------------------------------------------------------------------------------


def read_memorisation(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``memorisation.json`` (a dict with ``rows``, or a bare list of rows)."""
    data = json.loads(Path(path).read_text())
    rows = data.get("rows") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ValueError(f"{path} holds no memorisation rows. Write it with MemorisationCallback.")
    return rows


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _read_recipe(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml

    recipe = yaml.safe_load(path.read_text()) or {}
    return recipe if isinstance(recipe, dict) else {}


def summarise_run(run_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write the plots and ``report.md`` of a run folder; return ``{name: path}`` of what was written.

    Raises:
        ValueError: the folder does not exist or holds none of the files a run writes.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"Run folder {str(run)!r} does not exist. Pass the output_dir of a `jal train` run.")
    known = ("metrics.json", "recipe.yaml", "noise_report.json", "trainer_state.json", MEMORISATION_JSON)
    if not any((run / name).is_file() for name in known):
        raise ValueError(
            f"{str(run)!r} holds none of {', '.join(known)}: it is not a run folder. "
            "Pass the output_dir of `jal train`."
        )
    out = Path(out_dir) if out_dir is not None else run
    out.mkdir(parents=True, exist_ok=True)
    recipe = _read_recipe(run / "recipe.yaml")
    state = _read_json(run / "trainer_state.json") or {}
    history = state.get("log_history", [])
    rows = read_memorisation(run / MEMORISATION_JSON) if (run / MEMORISATION_JSON).is_file() else []
    title = f"{run.name}: {recipe.get('loss_type', '')} on {recipe.get('dataset', '')}".strip(": ")
    written: dict[str, Path] = {}
    if rows:
        written["memorisation"] = plot_memorisation({recipe.get("loss_type", "run"): rows},
                                                    out / MEMORISATION_PNG, title=title)
    curve = plot_learning_curve(history, out / LEARNING_CURVE_PNG, title=title) if history else None
    if curve is not None:
        written["learning_curve"] = curve
    text = _report_markdown(run, recipe, _read_json(run / "metrics.json"), _read_json(run / "noise_report.json"),
                            rows, written, _read_json(run / LABEL_ISSUES_JSON))
    written["report"] = out / REPORT_MD
    written["report"].write_text(text)
    return written


def _report_markdown(run: Path, recipe: Mapping[str, Any], metrics: Mapping[str, Any] | None,
                     noise: Mapping[str, Any] | None, rows: Rows, figures: Mapping[str, Path],
                     issues: Mapping[str, Any] | None = None) -> str:
    parts = [f"# Run report: {run.name}", ""]
    settings = [(k, recipe[k]) for k in RECIPE_FIELDS if recipe.get(k) is not None]
    if settings:
        parts += ["## Settings", "", markdown_table(["field", "value"], settings), ""]
    if metrics:
        parts += ["## Metrics", "", markdown_table(["metric", "value"], sorted(metrics.items())), ""]
    if noise:
        parts += ["## Label noise of the training set", "", _noise_markdown(noise), ""]
    if rows:
        parts += ["## Memorisation of the wrong labels", "",
                  "Per epoch, one extra forward pass over the training set (no augmentation); `seconds` is its cost.",
                  "", memorisation_table(rows), ""]
    if issues:
        parts += ["## Label issues", "", _issues_markdown(issues), ""]
    for name, path in figures.items():
        parts += [f"![{name}]({path.name})", ""]
    return "\n".join(parts)


def _issues_markdown(issues: Mapping[str, Any]) -> str:
    """Counts, quality against the clean labels when known, and the ten most suspicious rows."""
    if "num_flagged_tokens" in issues:  # a token (NER) run: `jal_trainer.ner.issues.find_token_label_issues`
        return _token_issues_markdown(issues)
    lines = [f"Rule `{issues.get('rule')}` on the {issues.get('probabilities', 'predicted probabilities')}: "
             f"{issues.get('num_flagged')} of {issues.get('num_rows')} training labels flagged. Every row, "
             "with its score: `label_issues.csv`."]
    report = issues.get("report")
    if report:
        rows = [("this run", report)]
        if issues.get("flag_everything"):
            rows.append(("flag every row", {**issues["flag_everything"], "flagged": issues.get("num_rows"),
                                            "wrong": report["wrong"]}))
        lines += ["", markdown_table(
            ["", "precision", "recall", "F1", "AUROC", "AUPRC", "flagged", "truly wrong"],
            [(name, _fmt(r["precision"], 3), _fmt(r["recall"], 3), _fmt(r["f1"], 3), _fmt(r.get("auroc"), 3),
              _fmt(r.get("auprc"), 3), r["flagged"], r["wrong"]) for name, r in rows])]
    top = issues.get("top") or []
    if top:
        lines += ["", markdown_table(["training row", "given label", "score"],
                                     [(t["index"], t["label"], f"{t['score']:.3f}") for t in top[:10]])]
    return "\n".join(lines)


def _token_issues_markdown(issues: Mapping[str, Any]) -> str:
    """A token run's flagged tags and spans and, with clean tags, how well the scores rank the wrong ones."""
    lines = [f"{issues['num_flagged_tokens']} of {issues['num_tokens']} training tags flagged, "
             f"{issues['num_flagged_spans']} entity spans ({issues.get('probabilities', 'predicted probabilities')}). "
             "Per sentence, with the scores: `label_issues.json`."]
    report = issues.get("report") or {}
    if report.get("token_auroc") is not None:
        names = ("token_auroc", "token_auprc", "token_precision", "token_recall", "span_precision", "span_recall",
                 "wrong_tokens", "wrong_spans")
        lines += ["", markdown_table(["against the clean tags", "value"],
                                     [(n.replace("_", " "), _fmt(report.get(n), 3)) for n in names if n in report])]
    return "\n".join(lines)


def _noise_markdown(noise: Mapping[str, Any]) -> str:
    keys = ("num_samples", "num_classes", "noise_rate", "min_a", "min_a_source", "binding_class",
            "num_sentences", "num_tokens", "token_noise", "entity_noise", "entity_precision", "entity_recall")
    table = markdown_table(["quantity", "value"], [(k, noise[k]) for k in keys if k in noise])
    rates = noise.get("per_class_rate")
    if isinstance(rates, list) and rates:
        table += "\n\n" + markdown_table(["clean class", "noise rate"], list(enumerate(rates)))
    return table


# ---- command line ----------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    """The ``jal report`` parser."""
    parser = argparse.ArgumentParser(prog="jal report", description="Turn a finished run into its plots and tables.",
                                     allow_abbrev=False)
    parser.add_argument("run_dir", help="output_dir of a `jal train` run")
    parser.add_argument("--out", default=None, help="folder for the plots and report.md (default: the run folder)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="RUN_DIR",
                        help="other runs on the same noisy data (e.g. with CE) to overlay in memorisation_compare.png")
    return parser


def compare_memorisation(run_dirs: Sequence[str | Path], path: str | Path) -> Path:
    """Overlay the memorisation curves of several runs, each labelled by its loss, in one PNG."""
    runs = {}
    for run in map(Path, run_dirs):
        label = str(_read_recipe(run / "recipe.yaml").get("loss_type", run.name)).upper()
        runs[label if label not in runs else f"{label} ({run.name})"] = read_memorisation(run / MEMORISATION_JSON)
    return plot_memorisation(runs, path, title="Memorisation of the wrong labels: " + " vs ".join(runs))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jal report``: write the plots and ``report.md``, print what was written."""
    args = make_parser().parse_args(argv)
    for name, path in summarise_run(args.run_dir, args.out).items():
        print(f"{name}: {path}")
    if args.compare:
        out = Path(args.out or args.run_dir) / "memorisation_compare.png"
        print(f"memorisation_compare: {compare_memorisation([args.run_dir, *args.compare], out)}")
    return 0


__all__ = [
    "compare_memorisation",
    "make_parser",
    "main",
    "markdown_table",
    "memorisation_table",
    "plot_learning_curve",
    "plot_memorisation",
    "read_memorisation",
    "summarise_run",
]
