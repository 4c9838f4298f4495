"""Capture what `loss_type: auto` scores: every candidate's predicted distribution on the held-out slice.

`capture` runs auto's candidate search in the probe regime (``recipes/grids/finetune.yaml``'s
probe settings, all seven losses as candidates) and saves, per data set and seed,
``<out>/<set>-<seed>.npz``: every candidate's slice probabilities (``p_<label>``, ``(N, K)``) with
the slice's noisy, clean and weak labels. `capture_finetune` runs `jal train` with auto in the
fine-tuning regime up to its choice and keeps the slice file auto writes. The clean labels of
training rows are known here only because the benchmark keeps them beside the noise; auto never
reads them. `recipes/auto_slice_check.py` judges auto's rule on these files (its ``capture``
command calls this module).

Example:
    >>> import auto_slice_capture as cap  # doctest: +SKIP
    >>> cap.capture("trec-pairflip", 0, Path("/tmp/slices"), cap.CAPTURED)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np

CANDIDATES = ["ce", "gce", "sce", "nce+rce", "jal-ce"]  # auto's defaults
CAPTURED = CANDIDATES + ["anl-ce", "jal-fl"]
CLEAN = ["ce+clean", "jal-ce+clean"]  # detect, then retrain (jal_trainer.auto_clean)
CANDIDATE_SETS = {"defaults": CANDIDATES, "defaults + ce+clean": CANDIDATES + CLEAN[:1],
                  "defaults + ce+clean + jal-ce+clean": CANDIDATES + CLEAN}
SETS = {
    "trec-pairflip": ["--config", "trec_sym0.4", "--noise_type", "pairflip", "--noise_rate", "0.4"],
    "trec-sym": ["--config", "trec_sym0.4", "--noise_type", "symmetric", "--noise_rate", "0.4"],
    "sst2-sym": ["--config", "sst2_sym0.4", "--noise_type", "symmetric", "--noise_rate", "0.4"],
    **{f"wrench-{n}": ["--config", f"wrench_{n}", "--noise_type", "majority-vote", "--noise_column", "weak_labels"]
       for n in ("sms", "trec", "youtube", "chemprot")},
}
PROBE = ["--disable_tqdm", "true", "--report_to", "none", "--save_strategy", "no", "--eval_strategy", "no",
         "--logging_strategy", "no", "--track_memorisation", "false", "--find_label_issues", "false",
         "--freeze_encoder", "true", "--learning_rate", "0.01", "--num_train_epochs", "20",
         "--per_device_train_batch_size", "256", "--optim", "adamw_torch", "--loss_preset", "finetune",
         "--use_cpu", "true", "--l1_weight_decay", "0.0", "--loss_type", "auto"]
#: auto in the fine-tuning regime of recipes/grids/finetune.yaml (2,000 stratified training rows, the whole
#: encoder trains); float32 unless --bf16 (bf16 is emulated, 14x slower, on a CPU without AVX512-BF16/AMX).
FINETUNE = ["--disable_tqdm", "true", "--report_to", "none", "--save_strategy", "no", "--eval_strategy", "no",
            "--logging_strategy", "no", "--track_memorisation", "false", "--find_label_issues", "false",
            "--max_length", "32", "--learning_rate", "5e-05", "--num_train_epochs", "8",
            "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "256", "--optim", "adamw_torch",
            "--weight_decay", "0.01", "--loss_preset", "finetune", "--l1_weight_decay", "0.0", "--loss_type", "auto"]
#: as the grid: every set but WRENCH youtube (1,686 training rows) is subsampled to 2,000 rows
SUBSET = ["--train_subset", "2000"]
#: as the grid: chemprot's marked entities need 128 tokens, in batches of similar length
LONG = {"wrench-chemprot": ["--max_length", "128", "--train_sampling_strategy", "group_by_length"]}


def capture(name: str, seed: int, out: Path, candidates: list[str]) -> None:
    """Run auto's search for one data set and seed; save the slice's candidate probabilities and labels.

    When ``out/<name>-<seed>.npz`` exists, only the candidates it lacks are trained and added to it.
    """
    import jal_trainer.auto as auto
    from jal_trainer.auto_clean import candidate_cost
    from jal_trainer.arguments import parse_recipe
    from jal_trainer.selection import stratified_holdout
    from jal_trainer.train import apply_noise, build_model_parts, default_preset, load_data
    from transformers import set_seed

    argv = [*SETS[name], *PROBE, "--seed", str(seed), "--noise_seed", str(seed), "--output_dir", str(out / "runs")]
    data, model, args = parse_recipe(argv)
    args = default_preset(model, args)
    path = out / f"{name}-{seed}.npz"
    saved = dict(np.load(path)) if path.exists() else {}
    missing = [c for c in candidates if f"p_{c}" not in saved]
    if not missing:
        return
    # CE is always added; every candidate training gets half a full training, as with the defaults
    args.auto_candidates = missing
    args.auto_budget = 1 + 0.5 * candidate_cost([c.label for c in auto.parse_candidates(missing, args.loss_preset)])
    set_seed(args.seed)
    dataset, _ = apply_noise(load_data(data), data)
    parts = build_model_parts(model, data, dataset, args)
    seen: dict[str, np.ndarray] = {}
    original = auto.decide

    def spy(candidates, probs, *rest, **kwargs):  # keep the probabilities auto scores
        seen.update(probs)
        return original(candidates, probs, *rest, **kwargs)

    auto.decide = spy
    try:
        template = parts["model"]
        auto.select_loss(lambda: copy.deepcopy(template), args, parts["dataset"]["train"],
                         data_collator=parts.get("collator"))
    finally:
        auto.decide = original
    train = dataset["train"]
    noisy, clean = np.asarray(train["label"]), np.asarray(train["clean_label"])
    _, held = stratified_holdout(noisy, args.auto_holdout, seed=args.seed)
    weak = {"weak": np.asarray(train.select(held)["weak_labels"])} if "weak_labels" in train.column_names else {}
    if "p_ce" in saved and "ce" in seen:  # the same CE model, or the captures do not belong together
        gap = float(np.abs(saved["p_ce"] - seen["ce"]).max())
        print(f"{name}-{seed}: CE slice probabilities, new against saved: max abs difference {gap:.2e}")
        if gap > 1e-3:
            raise RuntimeError(f"{path} was captured with another CE model (max abs difference {gap:.3g}); "
                               "capture into a new folder.")
    new = {f"p_{k}": v for k, v in seen.items() if f"p_{k}" not in saved}
    np.savez(path, **{**saved, "noisy": noisy[held], "clean": clean[held], **new, **weak})


def platform_line() -> str:
    """Machine and versions, for the report."""
    import platform

    import torch
    import transformers

    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
            f"transformers {transformers.__version__}")


class _Chosen(Exception):
    """Raised after auto chose: a capture needs the slice file, not the final training."""


def capture_finetune(name: str, seed: int, out: Path, bf16: bool) -> None:
    """Run `jal train` with auto in the fine-tuning regime up to its choice; keep its slice file as
    ``out/<name>-<seed>.npz`` (it carries the slice's clean labels: the recipe keeps ``clean_label``)."""
    import jal_trainer.auto as auto
    from jal_trainer.auto_search import SLICE_FILE
    from jal_trainer.train import main as train

    target = out / f"{name}-{seed}.npz"
    if target.exists():
        return
    run_dir = out / "runs" / f"{name}-{seed}"
    original = auto.select_for_recipe

    def stop_after_choice(*args, **kwargs):
        original(*args, **kwargs)
        raise _Chosen

    auto.select_for_recipe = stop_after_choice
    try:
        subset = [] if name == "wrench-youtube" else SUBSET
        train([*SETS[name], *FINETUNE, *subset, *LONG.get(name, []), "--bf16", str(bf16).lower(),
               "--seed", str(seed), "--noise_seed", str(seed),
               "--output_dir", str(run_dir), "--overwrite_output_dir", "true"])
    except _Chosen:
        pass
    finally:
        auto.select_for_recipe = original
    with np.load(run_dir / SLICE_FILE) as z:
        if "clean" not in z.files:
            raise RuntimeError(f"{run_dir / SLICE_FILE} has no clean labels: the recipe did not keep clean_label.")
    (run_dir / SLICE_FILE).replace(target)

