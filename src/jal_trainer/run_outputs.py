"""What a `jal train` run writes to its output folder: the model, recipe, versions, noise report and metrics.

``write_run`` saves the model (a frozen-encoder text run as one standard sequence-classification
model with its tokenizer), ``recipe.yaml`` (the resolved configuration of all three dataclasses),
``versions.json``, ``noise_report.json`` and ``metrics.json``. The label issues are written by
`jal_trainer.label_issue_files`.

Example:
    >>> sorted(package_versions())[:3]
    ['accelerate', 'datasets', 'jal_trainer']
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from transformers.utils import logging

from jal_trainer.arguments import VISION_MODELS, DataArguments, ModelArguments
from jal_trainer.config import JALConfig

if TYPE_CHECKING:
    from jal_trainer.trainer import JALTrainer

logger = logging.get_logger(__name__)

LABEL = "label"


def write_run(trainer: JALTrainer, data: DataArguments, model: ModelArguments, args: JALConfig,
              metrics: dict[str, float], report: Any) -> None:
    """Write the model, the resolved recipe, versions, noise report and metrics to ``output_dir``."""
    out = Path(args.output_dir)
    if model.freeze_encoder and model.model not in VISION_MODELS:
        _save_frozen_encoder_model(trainer, model.model, out)
    else:
        trainer.save_model()
    trainer.save_state()
    write_run_files(out, data, model, args, metrics, report)


def write_run_files(out: Path, data: Any, model: Any, args: JALConfig, metrics: dict[str, float],
                    report: Any) -> None:
    """``recipe.yaml``, ``versions.json``, ``noise_report.json`` and ``metrics.json`` of a run (any task)."""
    recipe = {**asdict(data), **asdict(model), **_jsonable(args.to_dict())}
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (out / "versions.json").write_text(json.dumps(package_versions(), indent=2))
    (out / "noise_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))


def _save_frozen_encoder_model(trainer: JALTrainer, encoder: str, out: Path) -> None:
    """Save encoder + pooling + trained head as one model, with the tokenizer, so the folder reads raw text."""
    from transformers import AutoTokenizer

    from jal_trainer.models.sentence import from_probe
    from jal_trainer.paths import resolve_path

    path = resolve_path(encoder)
    source = str(path) if path.exists() else encoder
    from_probe(trainer.accelerator.unwrap_model(trainer.model), source).save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)


def package_versions() -> dict[str, str]:
    """Versions of Python and the libraries a result depends on."""
    import accelerate
    import datasets
    import torch
    import transformers

    import jal_trainer

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "accelerate": accelerate.__version__,
        "jal_trainer": jal_trainer.__version__,
        "numpy": np.__version__,
    }


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))
