"""The recipe dataclasses read by `jal train`: data, model and (in `JALConfig`) training.

A recipe is a YAML file whose keys are exactly these field names; command-line flags of the
same names override it. `parse_recipe` does both and rejects unknown keys by name.

Example:
    >>> data, model, train = parse_recipe(["--config", "quickstart", "--num_train_epochs", "1"])  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from jal_trainer.config import JALConfig
from jal_trainer.recipes import resolve_recipe

VISION_MODELS = ("cnn8", "resnet18", "resnet34")


@dataclass
class DataArguments:
    """Which data, which split sizes, and which label noise."""

    dataset: str | None = field(
        default=None,
        metadata={"help": "digits, cifar10, cifar10n, sst2, trec, banking77, wrench-{youtube,sms,trec}, or a Hub id. "
                          "Default: named after data_path (file stem, folder name or Hub id), else digits."},
    )
    data_path: str | None = field(
        default=None,
        metadata={"help": "Your data: a .csv/.json/.jsonl/.parquet file or glob, a save_to_disk folder, a WRENCH "
                          "folder, an image folder, or a Hub id (org/name). ${shared} expands."},
    )
    data_config: str | None = field(default=None, metadata={"help": "Configuration (subset) name of a Hub data set."})
    data_revision: str | None = field(
        default=None, metadata={"help": "Revision (branch, tag, commit) of a Hub data set."}
    )
    text_pair_column: str | None = field(
        default=None, metadata={"help": "Second text column of a sentence-pair task (encoded with text_column)."}
    )
    image_column: str | None = field(
        default=None, metadata={"help": "Image column (default: pixel_values, else the first Image column)."}
    )
    label_column: str = field(
        default="label", metadata={"help": "Column of the training labels (ints, ClassLabel or strings)."}
    )
    clean_label_column: str | None = field(
        default=None,
        metadata={"help": "Column of gold labels where known: then label_column holds the observed (noisy) labels "
                          "and the gold ones serve only evaluation and reports."},
    )
    noisy_label_column: str | None = field(
        default=None,
        metadata={"help": "Column of real noisy labels to train on, beside the gold label_column (implies "
                          "noise_type column); read from noisy_label_path when that is given."},
    )
    noisy_label_path: str | None = field(
        default=None,
        metadata={"help": "File (.csv/.json/.jsonl/.parquet) holding noisy_label_column for the training rows, "
                          "joined on id_column (or index) when both have it, else row by row."},
    )
    id_column: str | None = field(
        default=None, metadata={"help": "Column that joins noisy_label_path to the training rows (default: index)."}
    )
    test_size: float = field(
        default=0.2, metadata={"help": "Fraction of the rows held out as a stratified test split when there is none."}
    )
    validation_size: float = field(
        default=0.1,
        metadata={"help": "Fraction of the training rows held out as validation when one is needed and missing."},
    )
    train_subset: int | None = field(
        default=None, metadata={"help": "Train on a stratified, seeded subset of this many training examples."}
    )
    test_subset: int | None = field(
        default=None, metadata={"help": "Evaluate on a stratified, seeded subset of this many test examples."}
    )
    subset_seed: int = field(
        default=0, metadata={"help": "Seed of the subsets and of made splits (independent of noise_seed)."}
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
        metadata={"help": "exact: floor(T[i,j] * n_i) flips per class pair (the paper's); "
                          "iid: each label drawn from its row."},
    )
    tie_break: str = field(
        default="random",
        metadata={"help": "majority-vote ties: random (seeded, no class favoured), lowest (WRENCH's argmax) "
                          "or drop (remove the tied rows; with two classes their label is a coin flip)."},
    )
    abstain: str = field(
        default="random",
        metadata={"help": "majority-vote rows no labelling function covers: random (a seeded random class) or drop."},
    )
    mark_entities: bool = field(
        default=True,
        metadata={"help": "Relation sets with entity1/entity2 spans (WRENCH chemprot, semeval): mark both entities "
                          "in the text."},
    )
    entity_markers: list[str] = field(
        default_factory=lambda: ["E1", "E2"],
        metadata={"help": "Marker names of entity1 and entity2 ([E1] ... [/E1]); e.g. GENE CHEMICAL for chemprot."},
    )
    text_column: str = field(default="text", metadata={"help": "Text column of a text data set."})
    max_length: int = field(default=64, metadata={"help": "Tokenizer truncation length for text."})
    image_mean: list[float] | None = field(
        default=None, metadata={"help": "Per-channel mean in [0, 1] (default: built-in, else computed and cached)."}
    )
    image_std: list[float] | None = field(
        default=None, metadata={"help": "Per-channel std in [0, 1] (default: built-in, else computed and cached)."}
    )
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
    channels_last: bool = field(
        default=False,
        metadata={"help": "Vision models: weights and batches in channels_last memory format (faster convolutions "
                          "on GPUs, with bf16: true); results are unchanged."},
    )


RECIPE_CLASSES = (DataArguments, ModelArguments, JALConfig)


def make_parser() -> HfArgumentParser:
    """The `jal train` parser: ``--config recipe.yaml`` plus every field as a flag.

    ``--help`` lists the recipe, data and noise, model and loss fields first, then the
    `transformers.TrainingArguments` fields in their own group.
    """
    # allow_abbrev=False: `--loss_typ ce` must not silently mean --loss_type
    parser = HfArgumentParser(RECIPE_CLASSES, prog="jal train", allow_abbrev=False,
                              usage="jal train [--config RECIPE] [--FIELD VALUE ...]",
                              description="Train a classifier on noisy labels from a YAML recipe.")
    parser.add_argument("--config", type=str, default=None,
                        help="YAML recipe (a path, or the name of a packaged recipe); its keys are the flags' names.")
    _group_help(parser)
    return parser


def _group_help(parser: HfArgumentParser) -> None:
    """Regroup the flags for ``--help``: ours first, `TrainingArguments` last (parsing is unchanged)."""
    from dataclasses import fields

    from transformers import TrainingArguments

    inherited = {f.name for f in fields(TrainingArguments)}
    own = {f.name for f in fields(JALConfig)} - inherited | {"overwrite_output_dir", "output_dir"}
    titles = {
        "recipe": ({"config"}, "A YAML recipe whose keys are these flags' names; flags override it."),
        "data and noise": ({f.name for f in fields(DataArguments)}, None),
        "model": ({f.name for f in fields(ModelArguments)}, None),
        "loss and run folder": (own, None),
        "TrainingArguments (transformers)": (inherited - own, None),
    }
    groups = {title: parser.add_argument_group(title, text) for title, (_, text) in titles.items()}
    for group in list(parser._action_groups):
        if group in groups.values():
            continue
        for action in list(group._group_actions):
            target = next((groups[t] for t, (names, _) in titles.items() if action.dest in names), None)
            if target is not None:
                group._group_actions.remove(action)
                target._group_actions.append(action)
    parser._action_groups = [g for g in parser._action_groups if g._group_actions]


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
    """The recipe file of ``--config``: a path, or the bare name of a packaged recipe."""
    args = list(argv) if argv is not None else sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return resolve_recipe(args[i + 1])
        if arg.startswith("--config="):
            return resolve_recipe(arg.split("=", 1)[1])
    return None


def _read_recipe(path: Path, parser: HfArgumentParser) -> dict[str, Any]:
    recipe = yaml.safe_load(path.read_text()) or {}
    if not isinstance(recipe, dict):
        raise ValueError(f"Recipe {path} must be a mapping of field names to values, got {type(recipe).__name__}.")
    known = {action.dest for action in parser._actions}
    for key in recipe:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else " Run `jal train --help` for the valid fields."
            raise ValueError(f"Unknown field {key!r} in recipe {path}.{hint}")
    actions = {action.dest: action for action in parser._actions}
    return {key: _recipe_value(key, value, actions[key], path) for key, value in recipe.items()}


def _recipe_value(key: str, value: Any, action: Any, path: Path) -> Any:
    """A YAML value checked like a command-line one: a scalar field gets one value of its type."""
    if value is None or action.nargs not in (None, "?"):
        return value
    if isinstance(value, (list, dict)):
        raise ValueError(
            f"Field {key!r} in recipe {path} takes one value, got {value!r}. Write it as {key}: "
            f"{value[0] if isinstance(value, list) and value else '<value>'} (one run per recipe)."
        )
    if action.type in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        try:
            return action.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"Field {key!r} in recipe {path} must be a number, got {value!r}.") from None
    return value
