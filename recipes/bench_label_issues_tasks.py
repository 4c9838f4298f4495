"""The data sets of `bench_label_issues.py`: noisy training rows with known clean labels, and their models.

Text sets are an MLP head on frozen all-MiniLM-L6-v2 sentence embeddings (computed once, cached,
never counted in a method's cost); cifar10n-worst is a 3,000-image stratified subset with the
CIFAR-10N ``worse_label`` and a narrow CNN trained from scratch.

Example:
    >>> task = load_task("youtube")  # doctest: +SKIP
    >>> task.train.column_names  # doctest: +SKIP
    ['label', 'clean_label', 'is_noisy', 'embeddings']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

DATA_SEED = 0  # the label noise and the CIFAR subset: fixed, the same data for every training seed
TEXT = {"kind": "text", "epochs": 20, "lr": 1e-3, "batch": 64, "hidden_layers": 1}
SETTINGS: dict[str, dict[str, Any]] = {
    # Text: an MLP head (one hidden ReLU layer of 384) on frozen MiniLM sentence embeddings, the same
    # settings for every text set and every method (picked once on youtube and trec, not per set).
    "youtube": {**TEXT, "wrench": "youtube"},
    "sms": {**TEXT, "wrench": "sms"},
    "trec": {**TEXT, "wrench": "trec"},
    "chemprot": {**TEXT, "wrench": "chemprot"},
    # Synthetic noise on clean labels: trec's gold labels with 40% symmetric noise.
    "trec-sym0.4": {**TEXT, "wrench": "trec", "noise": ("symmetric", 0.4)},
    # Vision: small enough for 7 trainings per seed on a shared 2-core CPU; Adam, not tuned.
    "cifar10n-worst": {"kind": "vision", "epochs": 8, "lr": 2e-3, "batch": 128, "train_subset": 3000,
                       "test_subset": 500, "channels": (16, 32, 64), "hidden": 64},
}
ENCODER = "${shared}/models/all-MiniLM-L6-v2"


@dataclass
class Task:
    """A noisy training set, its clean test set, and how to build and feed the model."""

    name: str
    train: Any  # datasets.Dataset: inputs, label (noisy), clean_label, is_noisy
    test: Any
    make_model: Callable[[], torch.nn.Module]
    wrap: Callable[[Any], Any]  # a datasets.Dataset -> what the Trainer reads
    collator: Any
    settings: dict[str, Any]
    prepare_seconds: float


def text_task(name: str) -> Task:
    from datasets import DatasetDict

    from jal_trainer.data.wrench import load_wrench_folder
    from jal_trainer.noisy_datasets import add_label_noise
    from jal_trainer.paths import resolve_path
    from jal_trainer.probe import embed_dataset, probe_model

    start = time.perf_counter()
    cfg = SETTINGS[name]
    # entity markers for relation sets (chemprot), as `jal train` reads a WRENCH folder
    raw = load_wrench_folder(str(resolve_path(f"${{shared}}/data/wrench/{cfg['wrench']}")))
    data = DatasetDict({"train": raw["train"], "test": raw["test"]}).remove_columns("id")
    if "noise" in cfg:
        kind, rate = cfg["noise"]
        data = add_label_noise(data, kind, rate, seed=DATA_SEED, splits=["train"])
    else:
        data = add_label_noise(data, "majority-vote", None, seed=DATA_SEED, column="weak_labels", splits=["train"])
    encoder = str(resolve_path(ENCODER))
    data = embed_dataset(data.remove_columns("weak_labels"), encoder)
    names = data["train"].features["label"].names

    def make_model() -> torch.nn.Module:
        return probe_model(encoder, len(names), dict(enumerate(names)), hidden_layers=cfg["hidden_layers"])

    train, test = data["train"].with_format("torch"), data["test"].with_format("torch")
    return Task(name, train, test, make_model, lambda ds: ds, None, cfg, time.perf_counter() - start)


def vision_task(name: str) -> Task:
    from jal_trainer.data import DeviceImageCollator, DeviceImageDataset, image_stats, load_cifar10n
    from jal_trainer.models import build_vision_model
    from jal_trainer.noisy_datasets import add_label_noise

    start = time.perf_counter()
    cfg = SETTINGS[name]
    data = load_cifar10n(train_subset=cfg["train_subset"], test_subset=cfg["test_subset"], seed=DATA_SEED)
    if "noise" in cfg:  # synthetic noise on the clean labels
        kind, rate = cfg["noise"]
        data = add_label_noise(data, kind, rate, seed=DATA_SEED, splits=["train"])
    else:  # one of CIFAR-10N's human label columns
        data = add_label_noise(data, "column", None, seed=DATA_SEED, column=cfg.get("column", "worse_label"),
                               splits=["train"])
    keep = ["pixel_values", "label", "clean_label", "is_noisy"]
    train, test = data["train"].select_columns(keep), data["test"].select_columns(["pixel_values", "label"])
    mean, std = image_stats("cifar10")
    names = train.features["label"].names

    def make_model() -> torch.nn.Module:
        return build_vision_model("cnn8", label_names=names, stage_channels=cfg["channels"], convs_per_stage=1,
                                  hidden_size=cfg["hidden"])

    def wrap(ds: Any) -> Any:
        # images as one uint8 tensor, batches gathered by index: no per-row conversion
        return DeviceImageDataset(ds, mean=mean, std=std, augment=False)

    return Task(name, train, test, make_model, wrap, DeviceImageCollator(), cfg, time.perf_counter() - start)


def load_task(name: str) -> Task:
    if name not in SETTINGS:
        raise ValueError(f"Unknown data set {name!r}. Choose from {', '.join(SETTINGS)}.")
    return text_task(name) if SETTINGS[name]["kind"] == "text" else vision_task(name)
