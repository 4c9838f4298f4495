"""Short versions of real recipes, shared by the recipe tests and the two-process script."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from jal_trainer.recipes import RECIPES_DIR

RECIPES = RECIPES_DIR  # the packaged recipes

# recipe -> extra overrides for the multi-process comparison (no dropout, no augmentation, so
# that one process with accumulation and two processes see exactly the same computation)
RECIPE_RUNS = {
    "quickstart": [],
    "trec_sym0.4": ["--freeze_encoder", "true", "--learning_rate", "0.05"],
}


def recipe_argv(name: str, output_dir: Path, *, per_device_batch: int, accumulation: int,
                max_steps: int = 3) -> list[str]:
    """argv of `jal train` for a few steps of recipe `name` with the given batch split."""
    return [
        "--config", str(RECIPES / f"{name}.yaml"), *RECIPE_RUNS.get(name, []),
        "--output_dir", str(output_dir),
        "--max_steps", str(max_steps),
        "--train_subset", "96",
        "--test_subset", "40",
        "--per_device_train_batch_size", str(per_device_batch),
        "--gradient_accumulation_steps", str(accumulation),
        "--per_device_eval_batch_size", "20",
        "--use_cpu", "true",
        "--disable_tqdm", "true",
        "--report_to", "none",
        "--save_strategy", "no",
        "--eval_strategy", "no",
        "--logging_steps", "1",
        "--track_memorisation", "false",
        "--dataloader_drop_last", "false",
    ]


# What a run on a few dozen rows may warn about, and nothing else: the exact sampler flips
# floor(T[i, j] * n_i) = 0 labels of a small class, and a handful of noisy rows per class need not
# stay clean-label dominant (Theorem 4.1).
UNREALISED, NOT_DOMINANT = "of the labels changed", "Theorem 4.1 gives no admissible a"
BELOW_BOUND = re.compile(r"a = ([0-9.e+-]+) is below the smallest a = ([0-9.e+-]+) that makes AMSE noise tolerant")


@contextmanager
def tiny_run_warnings(out: Path) -> Iterator[None]:
    """Record the project's warnings of a tiny run and check each against the run's own noise report.

    A warning about unrealised noise needs a realised rate under the requested one; the Theorem 4.1
    warning appears exactly when some class's realised row is not clean-label dominant. Other
    libraries' warnings are passed on unchanged.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    from jal_trainer.collapse import CollapseWarning

    # A few steps often predict one class: the collapse guard is tested on its own (test_collapse.py).
    ours = [str(w.message) for w in caught if "jal_trainer" in w.filename and issubclass(w.category, UserWarning)
            and not issubclass(w.category, CollapseWarning)]
    for w in caught:
        if str(w.message) not in ours:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    assert all(UNREALISED in m or NOT_DOMINANT in m or BELOW_BOUND.search(m) for m in ours), ours
    report = json.loads((out / "noise_report.json").read_text())
    for match in filter(None, map(BELOW_BOUND.search, ours)):  # the preset's a under the realised noise's bound
        a, bound = float(match.group(1)), float(match.group(2))
        assert a < bound and bound == pytest.approx(report["min_a"], rel=1e-2)
    recipe = yaml.safe_load((out / "recipe.yaml").read_text())
    if any(UNREALISED in m for m in ours):
        assert report["noise_rate"] < recipe["noise_rate"]
    rows = [(i, row) for i, row in enumerate(report.get("realised_T") or []) if row and None not in row]
    not_dominant = any(row[i] <= max(p for j, p in enumerate(row) if j != i) for i, row in rows)
    if recipe["loss_type"].startswith(("jal", "anl")):  # losses with AMSE's a
        assert any(NOT_DOMINANT in m for m in ours) == not_dominant
