"""One error style: every bad input of issue 13 raises one line naming the problem and the fix.

Each row of `CASES` is (case, how to provoke it, error type, words the message must contain).
Rows with a command line also check that ``jal`` exits 2 with that one line and no traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import ClassLabel, Dataset
from torch import nn

from jal_trainer import JALConfig, JALTrainer, cli
from jal_trainer.hub import push_run, render_card
from jal_trainer.arguments import parse_recipe
from jal_trainer.recipes import recipe_path, resolve_recipe
from jal_trainer.run_safety import check_output_dir, resolve_resume
from jal_trainer.train import _check_text_model

RECIPE = recipe_path("quickstart")


def quick(out: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(RECIPE), "--output_dir", str(out), "--max_steps", "1", "--train_subset", "64",
            "--test_subset", "20", "--disable_tqdm", "true", *extra]


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def args(tmp: Path, **kwargs: Any) -> JALConfig:
    return JALConfig(output_dir=str(tmp / "o"), use_cpu=True, report_to="none", **kwargs)


def recipe_with(tmp: Path, line: str) -> Path:
    path = tmp / "recipe.yaml"
    path.write_text(RECIPE.read_text() + line + "\n")
    return path


def used_folder(tmp: Path) -> Path:
    (tmp / "run").mkdir()
    (tmp / "run" / "model.safetensors").write_bytes(b"weights")
    return tmp / "run"


def blocked(tmp: Path) -> Path:
    """A run folder under a regular file: it cannot be created (as a read-only or full disk would refuse)."""
    (tmp / "f").write_text("x")
    return tmp / "f" / "run"


def finished_run(tmp: Path) -> Path:
    run = tmp / "done"
    run.mkdir()
    (run / "recipe.yaml").write_text("dataset: digits\nmodel: cnn8\nloss_type: jal-ce\n")
    (run / "config.json").write_text("{}")
    (run / "model.safetensors").write_bytes(b"w")
    return run


def linked_run(tmp: Path) -> Path:
    run = finished_run(tmp)
    (tmp / "secret.json").write_text("{}")
    (run / "metrics.json").symlink_to(tmp / "secret.json")
    return run


# (case, library call, CLI argv or None, error type, words)
Case = tuple[str, Callable[[Path], Any], Callable[[Path], list[str]] | None, type[BaseException], tuple[str, ...]]
CASES: list[Case] = [
    ("noise_rate as a list in a recipe",
     lambda t: parse_recipe(["--config", str(recipe_with(t, "noise_rate: [0.4]"))]),
     lambda t: ["train", "--config", str(recipe_with(t, "noise_rate: [0.4]"))],
     ValueError, ("'noise_rate'", "one value")),
    ("a number field given text",
     lambda t: parse_recipe(["--config", str(recipe_with(t, "learning_rate: fast"))]),
     None, ValueError, ("'learning_rate'", "number")),
    ("JALTrainer on data without a label column",
     lambda t: JALTrainer(Linear(), args(t), train_dataset=Dataset.from_dict({"x": [[0.0] * 4] * 4, "y": [0] * 4})),
     None, ValueError, ("no label column", "rename_column")),
    ("label_smoothing_factor with a robust loss",
     lambda t: args(t, label_smoothing_factor=0.1, loss_type="jal-ce"),
     lambda t: quick(t / "o", "--label_smoothing_factor", "0.1"),
     ValueError, ("label_smoothing_factor", "loss_type to ce")),
    ("alpha = beta = 0",
     lambda t: args(t, loss_type="jal-ce", alpha=0.0, beta=0.0),
     lambda t: quick(t / "o", "--alpha", "0", "--beta", "0"),
     ValueError, ("alpha = beta = 0", "> 0")),
    ("abbreviated flag",
     None, lambda t: quick(t / "o", "--noise_rat", "0.2"), ValueError, ("--noise_rat",)),
    ("unknown model name, offline",
     lambda t: _check_text_model("resnet19"),
     lambda t: quick(t / "o", "--model", "resnet19"),
     ValueError, ("resnet19", "Did you mean 'resnet18'")),
    ("a second run into a used folder",
     lambda t: check_output_dir(used_folder(t), overwrite=False, resuming=False),
     lambda t: quick(used_folder(t)), FileExistsError, ("not empty", "--overwrite_output_dir")),
    ("resume true without a checkpoint",
     lambda t: resolve_resume("true", t), lambda t: quick(t / "o", "--resume_from_checkpoint", "true"),
     FileNotFoundError, ("no checkpoint-", "output_dir")),
    ("a folder that cannot be written",
     lambda t: check_output_dir(blocked(t), overwrite=False, resuming=False),
     lambda t: quick(blocked(t)), PermissionError, ("not writable", "--output_dir")),
    ("a missing recipe file",
     None, lambda t: ["train", "--config", str(t / "nope.yaml")], ValueError, ("does not exist", "--config")),
    ("a misspelt packaged recipe name",
     lambda t: recipe_path("quickstrat"), lambda t: ["train", "--config", "quickstrat"],
     ValueError, ("No packaged recipe named 'quickstrat'", "Did you mean --config quickstart")),
    ("the old checkout path of a packaged recipe",
     lambda t: resolve_recipe("recipes/quickstart.yaml"), lambda t: ["train", "--config", "recipes/quickstart.yaml"],
     ValueError, ("does not exist", "--config quickstart")),
    ("jal card --out over an existing file",
     lambda t: render_card(finished_run(t), (t / "card.md").write_text("mine") and t / "card.md"),
     lambda t: ["card", str(finished_run(t)), "--out", str((t / "card.md").write_text("mine") and t / "card.md")],
     FileExistsError, ("already exists", "--overwrite")),
    ("jal push of a link leaving the run folder",
     lambda t: push_run(linked_run(t), "me/x", dry_run=True),
     lambda t: ["push", str(linked_run(t)), "--repo-id", "me/x", "--dry-run"],
     ValueError, ("outside the run folder", "Copy the file")),
]


@pytest.mark.parametrize("case, call, argv, error, words", [c for c in CASES if c[1] is not None],
                         ids=[c[0] for c in CASES if c[1] is not None])
def test_the_library_raises_one_clear_line(case: str, call: Callable[[Path], Any], argv: Any,
                                           error: type[BaseException], words: tuple[str, ...], tmp_path: Path) -> None:
    with pytest.raises(error) as info:
        call(tmp_path)
    message = str(info.value)
    assert "\n" not in message.strip()
    for word in words:
        assert word in message, f"{case}: {word!r} not in {message!r}"


@pytest.mark.parametrize("case, call, argv, error, words", [c for c in CASES if c[2] is not None],
                         ids=[c[0] for c in CASES if c[2] is not None])
def test_the_command_line_exits_2_with_one_line(case: str, call: Any, argv: Callable[[Path], list[str]],
                                                error: type[BaseException], words: tuple[str, ...], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert cli.main(argv(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, f"{case}: {word!r} not in {err!r}"
    assert time.perf_counter() - start < 20  # fails before any training (and before the Hub's retries)


def test_label_smoothing_is_honoured_for_cross_entropy(tmp_path: Path) -> None:
    data = Dataset.from_dict({"x": [[1.0, 0.0, 0.0, 0.0]] * 4, "labels": [0, 1, 2, 0]})
    trainer = JALTrainer(Linear(), args(tmp_path, loss_type="ce", label_smoothing_factor=0.2), train_dataset=data)
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    expected = nn.functional.cross_entropy(logits, labels, reduction="none", label_smoothing=0.2)
    torch.testing.assert_close(trainer.loss_fn(logits, labels), expected)
    assert trainer.args.label_smoothing_factor == 0.0  # the Trainer's own smoother stays off


def test_add_label_noise_warns_from_python_when_the_rate_is_not_realised() -> None:
    from jal_trainer import add_label_noise

    data = Dataset.from_dict({"label": list(range(10)) * 3}).cast_column("label", ClassLabel(num_classes=10))
    with pytest.warns(UserWarning, match="sampler='iid'"):
        add_label_noise(data, "symmetric", 0.4, seed=0)
