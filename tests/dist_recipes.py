"""Train two recipes on two processes (torchrun, gloo, CPU) for the multi-process recipe test.

Usage: torchrun --nproc_per_node 2 tests/dist_recipes.py OUT_DIR
Each recipe runs with batch 8 per process (global batch 16) for 3 steps into OUT_DIR/<name>;
every rank also writes the digest of the noisy training labels it built to OUT_DIR/<name>.rank<R>.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from recipe_runs import RECIPE_RUNS, recipe_argv  # noqa: E402

from jal_trainer.arguments import parse_recipe  # noqa: E402
from jal_trainer.train import apply_noise, labels_digest, load_data, main  # noqa: E402

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name in RECIPE_RUNS:
        argv = recipe_argv(name, out / name, per_device_batch=8, accumulation=1)
        data_args, _, train_args = parse_recipe(argv)
        noisy, _ = apply_noise(load_data(data_args), data_args)
        rank = train_args.process_index
        (out / f"{name}.rank{rank}").write_text(labels_digest(noisy["train"]["label"]))
        main(argv)
    # rank 0 still writes its run folder after training; tearing gloo down while it does aborted
    # rank 1 now and then ("terminate called without an active exception")
    dist.barrier()
    dist.destroy_process_group()
