"""Rendering a `JALCardData` into a model card, the learning-curve plot, and `render_card` (``jal card``).

The card is the Jinja template shipped in ``jal_trainer/templates/model_card.md.j2`` filled by
`template_context` into a `huggingface_hub.ModelCard`.

Example:
    >>> from jal_trainer.hub import render_card
    >>> render_card("runs/quickstart", "model_cards/quickstart.md")  # doctest: +SKIP
    PosixPath('model_cards/quickstart.md')
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelCard

from jal_trainer.hub.run_folder import (
    CARD_MARKER,
    LEARNING_CURVE,
    LOSS_FORMULAS,
    MAX_EPOCH_ROWS,
    MEMORISATION_PLOT,
    PAPER_BIBTEX,
    PAPER_URL,
    TEMPLATE_PATH,
    _format_param,
    _number,
    _percent,
)
from jal_trainer.losses import AMSE_LOSSES

if TYPE_CHECKING:
    from jal_trainer.hub.card_data import JALCardData


TASK_PHRASES = {"text-classification": "a text classifier", "image-classification": "an image classifier",
                "token-classification": "a token classifier"}


def template_context(data: JALCardData) -> dict[str, Any]:
    """Values the Jinja template reads."""
    epoch_table, epoch_note = _epoch_table(data)
    return {
        "model_name": data.model_name,
        "base_model": data.base_model,
        "task_phrase": TASK_PHRASES.get(data.task_type, "a classifier"),
        "dataset_pretty": data.dataset_pretty,
        "noise_phrase": data.noise_phrase(),
        "loss_display": data.loss_type.upper() if data.loss_type.startswith("jal") else data.loss_type,
        "loss_is_jal": data.loss_type in AMSE_LOSSES,
        "results_rows": _results_rows(data),
        "learning_curve": data.learning_curve,
        "memorisation_plot": data.memorisation_plot,
        "epoch_table": epoch_table,
        "memorisation_table": _memorisation_table(data),
        "epoch_note": epoch_note,
        "noise_rows": _noise_rows(data),
        "transition_table": _transition_table(data),
        "loss_rows": _loss_rows(data),
        "a_check": data.a_check().text,
        "loss_selection": data.loss_selection,
        "cleaning": data.cleaning,
        "usage": _usage(data),
        "hyperparameters": data.hyperparameters,
        "versions": data.versions,
        "citation": PAPER_BIBTEX,
        "paper_url": PAPER_URL,
    }

def to_model_card(data: JALCardData, template_path: str | os.PathLike[str] | None = None) -> ModelCard:
    """Render the card with the package's template (or ``template_path``)."""
    return ModelCard.from_template(
        data.card_data(), template_path=str(template_path or TEMPLATE_PATH), **template_context(data)
    )


def _results_rows(data: JALCardData) -> list[tuple[str, str]]:
    rows = [("Clean test accuracy", _percent(data.test_accuracy))]
    if data.noisy_label_accuracy is not None:
        rows.append(("Accuracy on the noisy training labels", _percent(data.noisy_label_accuracy)))
    if data.memorisation is not None:
        rows.append(("Wrong training labels memorised (predicted as the wrong label)", _percent(data.memorisation)))
    if data.wrong_labels_corrected is not None:
        rows.append(("Wrong training labels corrected (predicted as the true class)",
                     _percent(data.wrong_labels_corrected)))  # fmt: skip
    rows.append(("Realised training noise rate", _percent(data.realised_noise_rate)))
    return rows


def _noise_rows(data: JALCardData) -> list[tuple[str, str]]:
    report = data.noise_report
    rows = [("Noise model", f"`{data.noise_type}`")]
    if data.noise_type in ("column", "majority-vote"):
        rows.append(("Real-noise source", f"`{data.noise_column}` labels of {data.dataset_pretty}"))
    elif data.noise_type not in ("none", "unspecified"):
        rows.append(("Requested rate", _format_param(data.noise_rate)))
    if data.noise_seed is not None and data.noise_type != "none":
        rows.append(("Noise seed", str(data.noise_seed)))
    rows.append(("Realised noise rate (training labels that differ from the clean ones)",
                 _percent(data.realised_noise_rate)))  # fmt: skip
    per_class = [v for v in (report.get("per_class_rate") or []) if _number(v) is not None]
    if per_class:
        rows.append(("Per-class noise rate", f"{_percent(min(per_class), 1)} to {_percent(max(per_class), 1)}"))
    if report.get("num_samples") is not None:
        rows.append(("Training samples", f"{int(report['num_samples']):,}"))
    return rows


def _transition_table(data: JALCardData) -> str | None:
    matrix = data.noise_report.get("realised_T")
    if not matrix or len(matrix) > 10:  # larger matrices do not fit a card
        return None
    header = "| clean \\ noisy | " + " | ".join(str(j) for j in range(len(matrix))) + " |"
    rule = "|:--|" + "--:|" * len(matrix)
    lines = [
        f"| {i} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in row) + " |"
        for i, row in enumerate(matrix)
    ]
    return "\n".join([header, rule, *lines])


def _loss_rows(data: JALCardData) -> list[tuple[str, str]]:
    formula = LOSS_FORMULAS.get(data.loss_type)
    rows = [("Loss", f"`{data.loss_type}`" + (f" ({formula})" if formula else ""))]
    if data.loss_params:
        params = ", ".join(f"{k} = {_format_param(v)}" for k, v in data.loss_params.items())
        rows.append(("Hyper-parameters", params))
    if data.loss_preset:
        rows.append(("Preset", f"`{data.loss_preset}` (the paper's values for that data set)"))
    if data.l1_weight_decay:
        rows.append(("L1 weight decay (lambda * sum abs(theta) added to the loss)", f"{data.l1_weight_decay:g}"))
    return rows


def _epoch_table(data: JALCardData) -> tuple[str | None, str | None]:
    from transformers.modelcard import make_markdown_table, parse_log_history

    if not data.log_history:
        return None, None
    _, lines, _ = parse_log_history(data.log_history)
    if not lines:
        return None, None
    lines, note = _thin(lines)
    return make_markdown_table(lines).rstrip("\n"), note


def _memorisation_table(data: JALCardData) -> str | None:
    if not data.memorisation_rows:
        return None
    from jal_trainer.report import memorisation_table

    return memorisation_table(_thin(data.memorisation_rows)[0])


def _usage(data: JALCardData) -> str:
    repo = data.repo_id or f"<user>/{data.model_name}"
    if data.task_type == "image-classification":
        return (
            "# pip install jal-trainer  (the model classes are registered when jal_trainer.models is imported)\n"
            "import jal_trainer.models  # noqa: F401\n"
            "from transformers import AutoModelForImageClassification\n\n"
            f'model = AutoModelForImageClassification.from_pretrained("{repo}")\n'
            "logits = model(pixel_values=images).logits  # images: (N, C, H, W), normalised as in training"
        )
    if data.hyperparameters.get("freeze_encoder"):  # jal_trainer.models.SentenceClassifier...: registered on import
        return (
            "# pip install jal-trainer  (the frozen-encoder classifier is registered by jal_trainer.models)\n"
            "import jal_trainer.models  # noqa: F401\n"
            "from transformers import pipeline\n\n"
            f'classifier = pipeline("text-classification", model="{repo}")\n'
            'classifier("an example sentence")'
        )
    return (
        "from transformers import pipeline\n\n"
        f'classifier = pipeline("text-classification", model="{repo}")\n'
        'classifier("an example sentence")'
    )


def _thin(rows: list[Any]) -> tuple[list[Any], str | None]:
    """At most about `MAX_EPOCH_ROWS` evenly spaced rows, the last always kept, and a note saying so."""
    if len(rows) <= MAX_EPOCH_ROWS:
        return rows, None
    step = math.ceil(len(rows) / MAX_EPOCH_ROWS)
    kept = rows[step - 1 :: step]
    if kept[-1] is not rows[-1]:
        kept.append(rows[-1])
    return kept, f"every {step}th of {len(rows)} rows and the last"


# ---- learning curve -------------------------------------------------------------------------------


def write_learning_curve(log_history: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> bool:
    """Write ``jal report``'s learning-curve plot (loss and clean test accuracy per epoch) to ``path``.

    Returns False, writing nothing, when the log history has nothing to plot.
    """
    from jal_trainer.report import plot_learning_curve

    return plot_learning_curve(log_history, path, title=title or None) is not None


def learning_curve_png(log_history: Sequence[Mapping[str, Any]], title: str = "") -> bytes | None:
    """The learning-curve plot as PNG bytes (for an upload that writes nothing locally), or None."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / LEARNING_CURVE
        return path.read_bytes() if write_learning_curve(log_history, path, title) else None


# ---- jal card -------------------------------------------------------------------------------------


def render_card(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, overwrite: bool = False,
    **overrides: Any,
) -> Path:
    """Write the model card of a finished run; also write its learning curve into the run folder.

    Args:
        run_dir: the run's ``output_dir``.
        out: where to write the card (default ``<run_dir>/README.md``). A card written elsewhere
            (``model_cards/NAME.md``) gets a copy of the plot beside it, ``NAME.png``.
        overwrite: replace an existing file at ``out`` (without it, only a card that jal-trainer
            wrote as the run's own ``README.md`` is replaced).
        **overrides: `JALCardData` fields (``model_name``, ``repo_id``, ``license``, ...).

    Returns:
        The card's path.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    run = Path(run_dir)
    from jal_trainer.hub.card_data import JALCardData
    from jal_trainer.ner.card import is_token_run, token_card

    target = Path(out) if out is not None else run / "README.md"
    if target.exists() and not overwrite and not _own_card(target, run):
        raise FileExistsError(
            f"{os.fspath(target)!r} already exists. Pass --overwrite to replace it, or another --out path."
        )
    if is_token_run(run):  # NER: entity F1 and entity-level noise, not the sequence card's accuracy
        target.parent.mkdir(parents=True, exist_ok=True)
        token_card(run, overrides.get("model_name")).save(target)
        return target
    data = JALCardData.from_run(run, **overrides)
    plotted = write_learning_curve(data.log_history, run / LEARNING_CURVE, data.model_name)
    data.learning_curve = LEARNING_CURVE if plotted else None
    if target.resolve().parent != run.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        data.learning_curve = _copy_beside(run / LEARNING_CURVE, target, ".png") if plotted else None
        if data.memorisation_plot:
            data.memorisation_plot = _copy_beside(run / MEMORISATION_PLOT, target, ".memorisation.png")
    data.to_model_card().save(target)
    return target


def _own_card(target: Path, run: Path) -> bool:
    """True for the run's README.md when jal-trainer wrote it (regenerating it loses nothing)."""
    if target.resolve() != (run / "README.md").resolve() or not target.is_file():
        return False
    return CARD_MARKER in target.read_text(encoding="utf-8", errors="replace")


def _copy_beside(source: Path, card: Path, suffix: str) -> str:
    destination = card.with_name(card.stem + suffix)
    shutil.copyfile(source, destination)
    return destination.name

