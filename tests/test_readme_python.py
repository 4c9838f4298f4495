"""The README's Python examples run as written, offline, on a tiny model and data set standing in for yours."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from torch import nn

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(section: str, index: int = 0) -> str:
    """The ``index``-th ```python block of the README section whose heading starts with ``section``."""
    text = README.read_text().split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)[index]


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def blobs(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    x = np.eye(3, 4)[label] * 3 + rng.normal(0, 1, (n, 4))
    features = Features({"x": List(Value("float32")), "label": ClassLabel(num_classes=3)})
    return Dataset.from_dict({"x": x.tolist(), "label": label.tolist()}, features=features)


def test_the_trainer_and_label_issue_examples_run_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write to ./out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    scope = {"dataset": DatasetDict(train=blobs(90, 0), test=blobs(30, 1)), "model": Tiny()}
    exec(python_block("Swap `Trainer` for `JALTrainer`").replace('output_dir="out"',
                                                                  'output_dir="out", use_cpu=True, disable_tqdm=True'),
         scope)
    evals = [log["eval_accuracy"] for log in scope["trainer"].state.log_history if "eval_accuracy" in log]
    assert len(evals) == 3 and all(0.0 <= a <= 1.0 for a in evals)  # one per epoch, from the packaged metric

    exec(python_block("See memorisation, find the wrong labels"), scope)
    found = scope["found"]
    assert len(found.dataset) == 90 and {"label_issue_score", "is_label_issue"} <= set(found.dataset.column_names)
    assert 0.0 <= found.report["precision"] <= 1.0
