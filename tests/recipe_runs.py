"""Short versions of real recipes, shared by the recipe tests and the two-process script."""

from __future__ import annotations

from pathlib import Path

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
