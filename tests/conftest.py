"""Fixtures shared by several test modules: the tiny trained run of the hub tests (tests/hub_run.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run folder, trainer, metrics and training set of one tiny training, shared by the hub test modules."""
    from hub_run import MINILM, train_run  # here, not at the top: other test sessions need not import the Hub stack

    if not MINILM.is_dir():
        pytest.skip(f"needs the MiniLM tokenizer at {MINILM}")
    return train_run(tmp_path_factory.mktemp("runs") / "trec-sym25-jal-ce")


@pytest.fixture
def run_copy(trained: dict[str, Any], tmp_path: Path) -> Path:
    """A private copy of the run folder (with a checkpoint that must not be uploaded)."""
    copy = tmp_path / trained["run"].name
    shutil.copytree(trained["run"], copy)
    (copy / "checkpoint-3").mkdir()
    (copy / "checkpoint-3" / "optimizer.pt").write_bytes(b"x")
    return copy


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave offline mode for a mocked push (the test session itself runs with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
