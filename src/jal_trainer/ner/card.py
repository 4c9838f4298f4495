"""The model card of a token-classification run: noise source, entity-level rate, loss, entity F1.

Kept apart from `jal_trainer.hub` (the sequence-task cards): a token model's card reports entity
F1, not accuracy, and its noise as an entity-level rate. The ``model-index`` results carry
``task: token-classification`` and metric ``f1`` (clean test), so the Hub shows them.

Example:
    >>> card = token_card("runs/noisebench-crowd-jal-ce")  # doctest: +SKIP
    >>> card.data.eval_results[0].metric_type  # doctest: +SKIP
    'f1'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from jal_trainer.hub.run_folder import CARD_MARKER

TASK = "token-classification"
PRETTY = {"noisebench": "NoiseBench (CoNLL-03 English NER)", "conll": "CoNLL-format NER data"}
UNCASED = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}


def _read(path: Path) -> Any:
    if not path.is_file():
        return None
    text = path.read_text()
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def noise_source(recipe: dict[str, Any]) -> str:
    """A phrase for the training-tag noise: ``real noise (noise_crowd)``, ``entity noise 0.3`` or ``none``."""
    kind = recipe.get("noise_type") or "none"
    if kind == "column":
        return f"real noise ({recipe.get('noise_column')})"
    if kind == "entity":
        return f"synthetic entity-level noise {recipe.get('noise_rate')}"
    return "none (clean tags)"


def is_token_run(run_dir: str | os.PathLike[str]) -> bool:
    """Whether ``run_dir`` holds a token-classification run (its recipe.yaml says ``task: token-classification``)."""
    return (_read(Path(run_dir) / "recipe.yaml") or {}).get("task") == TASK


def token_card(run_dir: str | os.PathLike[str], model_name: str | None = None) -> ModelCard:
    """Build the card of a finished token run folder (recipe.yaml, noise_report.json, metrics.json).

    ``model_name``: the name in the card and its model-index (default: the run folder's name).
    """
    run = Path(run_dir)
    name = model_name or run.resolve().name
    recipe = _read(run / "recipe.yaml")
    if not recipe:
        raise ValueError(f"{os.fspath(run)!r} has no recipe.yaml; pass the output_dir of a `jal train` token run.")
    metrics = _read(run / "metrics.json") or {}
    noise = _read(run / "noise_report.json") or {}
    dataset = str(recipe.get("dataset"))
    model = Path(str(recipe.get("model"))).name
    source, rate = noise_source(recipe), noise.get("entity_noise")
    loss = recipe.get("loss_type", "jal-ce")
    args = {"noise": source, **({"entity_noise_rate": round(rate, 4)} if rate is not None else {})}
    results = [EvalResult(task_type=TASK, dataset_type=dataset, dataset_name=PRETTY.get(dataset, dataset),
                          dataset_split="test", dataset_args=args, metric_type="f1", metric_name="Clean test entity F1",
                          metric_value=round(float(metrics["test_f1"]), 4))] if "test_f1" in metrics else []
    data = ModelCardData(model_name=name, base_model=UNCASED.get(model), pipeline_tag=TASK,
                         library_name="transformers", tags=["noisy-labels", "jal-trainer", "robust-loss", "ner"],
                         metrics=["f1"], eval_results=results or None)
    cased = (" (uncased: it lower-cases every word, so capitalisation, a strong NER cue, is lost)"
             if model in UNCASED else "")
    lines = [
        f"<!-- {CARD_MARKER} (`jal train` or `jal card`) from the run's results. -->", "", f"# {name}", "",
        f"A token classifier (NER) fine-tuned from {model}{cased} with jal-trainer, loss **{loss}**, on "
        f"**{PRETTY.get(dataset, dataset)}** whose training tags carry **{source}**.", "",
        "| | |", "|:--|--:|",
        f"| Entity-level noise of the training tags (1 - exact-span F1) | {_pct(rate)} |",
        f"| Token-level noise (tags changed) | {_pct(noise.get('token_noise'))} |",
        f"| Clean test entity F1 (seqeval) | {_pct(metrics.get('test_f1'))} |",
        f"| Clean test entity precision / recall | {_pct(metrics.get('test_precision'))} / "
        f"{_pct(metrics.get('test_recall'))} |",
        f"| Training sentences | {noise.get('num_sentences', 'n/a')} |", "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.2f}%"


def write_token_card(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``README.md`` into the run folder (never over a card the user wrote) and return its path."""
    path = Path(run_dir) / "README.md"
    if path.is_file() and CARD_MARKER not in path.read_text():
        path = path.with_name("README.jal.md")  # keep the user's own README
    path.write_text(str(token_card(run_dir)))
    return path


__all__ = ["is_token_run", "noise_source", "token_card", "write_token_card"]
