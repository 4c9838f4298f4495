"""The recipe dataclasses read by `jal train`: data, model and (in `JALConfig`) training.

A recipe is a YAML file whose keys are exactly these field names; command-line flags of the
same names override it. `parse_recipe` does both and rejects unknown keys by name.

Example:
    >>> data, model, train = parse_recipe(["--config", "recipes/quickstart.yaml", "--num_train_epochs", "1"])  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from jal_trainer.config import JALConfig

VISION_MODELS = ("cnn8", "resnet18", "resnet34")


@dataclass
class DataArguments:
    """Which data, which split sizes, and which label noise."""

    dataset: str = field(
        default="digits",
        metadata={"help": "digits, cifar10, cifar10n, sst2, trec, banking77, wrench-{youtube,sms,trec}, or a Hub id."},
    )
    data_path: str | None = field(
        default=None, metadata={"help": "Folder or file of the data (default: under ${shared}/data); ${shared} expands."}
    )
    train_subset: int | None = field(
        default=None, metadata={"help": "Train on a stratified, seeded subset of this many training examples."}
    )
    test_subset: int | None = field(
        default=None, metadata={"help": "Evaluate on a stratified, seeded subset of this many test examples."}
    )
    noise_type: str = field(
        default="none",
        metadata={"help": "none, symmetric, pairflip, cifar10-asym, cifar100-asym, instance, column, majority-vote."},
    )
    noise_rate: float = field(default=0.0, metadata={"help": "Noise rate in [0, 1] for synthetic noise."})
    noise_column: str | None = field(
        default=None, metadata={"help": "Column of real noisy labels: worse_label (CIFAR-10N), weak_labels (WRENCH)."}
    )
    noise_seed: int = field(default=0, metadata={"help": "Seed of the label noise (independent of the training seed)."})
    noise_sampler: str = field(
        default="exact",
        metadata={"help": "exact: floor(T[i,j] * n_i) flips per class pair (the paper's); iid: each label drawn from its row."},
    )
    text_column: str = field(default="text", metadata={"help": "Text column of a text data set."})
    max_length: int = field(default=64, metadata={"help": "Tokenizer truncation length for text."})
    augment: bool = field(default=True, metadata={"help": "Random crop (pad 4) and flip for images during training."})
    track_memorisation: bool = field(
        default=True, metadata={"help": "Record memorisation of the noisy labels each epoch (needs clean labels)."}
    )
    find_label_issues: bool = field(
        default=True,
        metadata={"help": "After training, flag the training labels the model disagrees with (label_issues.json "
                          "and .csv), from its probabilities averaged over epochs: one extra forward pass over the "
                          "training set per epoch, shared with track_memorisation."},
    )
    label_issue_rule: str = field(
        default="class-balanced",
        metadata={"help": "Rule that flags label issues: class-balanced, argmax, per-class-threshold or noise-rate "
                          "(see jal_trainer.label_issues)."},
    )


@dataclass
class ModelArguments:
    """Which classifier."""

    model: str = field(
        default="cnn8",
        metadata={"help": "cnn8, resnet18, resnet34, or a path / Hub id of a sequence-classification checkpoint."},
    )
    task: str = field(
        default="sequence-classification",
        metadata={"help": "sequence-classification (one label per example) or token-classification (NER tags per "
                          "word; see jal_trainer.ner.train)."},
    )
    freeze_encoder: bool = field(
        default=False,
        metadata={"help": "Keep the text encoder frozen: embed once (cached) and train only a head on the embeddings."},
    )


RECIPE_CLASSES = (DataArguments, ModelArguments, JALConfig)


def make_parser() -> HfArgumentParser:
    """The `jal train` parser: ``--config recipe.yaml`` plus every field as a flag."""
    parser = HfArgumentParser(RECIPE_CLASSES, description="Train a classifier on noisy labels from a YAML recipe.")
    parser.add_argument("--config", type=str, default=None, help="YAML recipe; its keys are the flags' names.")
    return parser


def parse_recipe(argv: list[str] | None = None) -> tuple[DataArguments, ModelArguments, JALConfig]:
    """Parse ``--config recipe.yaml`` and command-line overrides into the three dataclasses.

    Raises:
        ValueError: an unknown key in the YAML (with the closest valid name), or a missing file.
    """
    parser = make_parser()
    config_path = _config_path(argv)
    if config_path is not None:
        parser.set_defaults(**_read_recipe(config_path, parser))
    # -> (data, model, train, Namespace(config=...), remaining strings)
    outputs = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if outputs[-1]:
        raise ValueError(f"Unknown command-line arguments {outputs[-1]}. Run `jal train --help` for the valid flags.")
    data, model, train = outputs[:3]
    return data, model, train


def _config_path(argv: list[str] | None) -> Path | None:
    args = list(argv) if argv is not None else sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return None


def _read_recipe(path: Path, parser: HfArgumentParser) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"Recipe file {os.fspath(path)!r} does not exist. Pass an existing YAML file to --config.")
    recipe = yaml.safe_load(path.read_text()) or {}
    if not isinstance(recipe, dict):
        raise ValueError(f"Recipe {path} must be a mapping of field names to values, got {type(recipe).__name__}.")
    known = {action.dest for action in parser._actions}
    for key in recipe:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else " Run `jal train --help` for the valid fields."
            raise ValueError(f"Unknown field {key!r} in recipe {path}.{hint}")
    return recipe
