#!/usr/bin/env bash
# Issue 11's fine-tuning grid (recipes/grids/finetune.yaml, mode finetune) on one lent GPU, inside
# one device call: installs what the machine lacks, restores the float32 encoder from .gpuft/, then
# runs the cells that have no JSON yet (seed-major; the losses in the order given) with several
# processes on the GPU until the budget, and returns every finished cell in $OUT/finetune_runs.tar
# (refreshed every 15 s, so a call that is cut off still returns what finished).
#
# Needs: .gpuft/ (bash recipes/gpu/prepare_finetune_carry.sh) and transformers 5 / datasets /
# evaluate on the machine: either installed by the paper-grid call just before on the same warm
# machine, or carried in .gpu/wheels (bash recipes/gpu/prepare_carry.sh).
#
# Usage on the device (carry [".gpuft"], or [".gpuft", ".gpu"] on a fresh machine):
#   bash recipes/gpu/finetune_grid.sh --budget-seconds 200 --workers 12
# Back here: bash recipes/gpu/finetune_grid.sh --merge <files_at>/finetune_runs.tar
# Rehearsal on a CPU (no GPU, nothing trained): PYTHON=.venv/bin/python bash recipes/gpu/finetune_grid.sh --dry-run
set -u
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/jal-out}
BUDGET=200
WORKERS=12
LOSSES=auto-wide,ce,jal-ce,gce,nce+rce,auto,ce+clean,jal-ce+clean  # auto-wide first: it decides the fine-tuning default (issue 11)
DRY=""
RUNS=recipes/results/runs/finetune/finetune
while [ $# -gt 0 ]; do
  case "$1" in
    --budget-seconds) BUDGET=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --losses) LOSSES=$2; shift 2 ;;
    --dry-run) DRY=--dry-run; shift ;;
    --merge)  # back on the development machine: add the returned cells, never overwrite one we have
      mkdir -p "$RUNS" && tar xf "$2" -C "$RUNS" --skip-old-files && echo "merged into $RUNS"; exit 0 ;;
    *) echo "unknown option $1 (use --budget-seconds N, --workers N, --losses a,b, --dry-run, --merge TAR)"; exit 2 ;;
  esac
done
mkdir -p "$OUT"
START=$(date +%s)

# 1. packages: install only what does not import (a warm machine keeps what the last call installed)
if ! "$PYTHON" -c "import transformers, datasets, evaluate, optuna, sys; sys.exit(int(transformers.__version__.split('.')[0]) < 5)" 2>/dev/null; then
  for d in .gpu/wheels .gpuft/wheels; do
    [ -d "$d" ] && "$PYTHON" -m pip install --no-deps --no-index -q "$d"/*.whl >> "$OUT/setup.log" 2>&1
  done
fi
"$PYTHON" -c "import transformers, datasets, evaluate, optuna, torch, sys
print('transformers', transformers.__version__, 'datasets', datasets.__version__, 'optuna', optuna.__version__,
      'torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')
sys.exit(int(transformers.__version__.split('.')[0]) < 5)" >> "$OUT/setup.log" 2>&1 \
  || { echo "transformers 5, datasets, evaluate and optuna are needed: carry .gpu (prepare_carry.sh) too"; tail -5 "$OUT/setup.log"; exit 3; }

# 2. files: the float32 encoder from its float16 copy, and the data
SHARED=/tmp/jal-shared
if [ -d .gpuft ]; then
  mkdir -p "$SHARED/models"
  [ -d "$SHARED/data" ] || tar xJf .gpuft/data.tar.xz -C "$SHARED"
  if [ ! -f "$SHARED/models/all-MiniLM-L6-v2/model.safetensors" ]; then
    rm -rf "$SHARED/models/all-MiniLM-L6-v2" && cp -r .gpuft/model "$SHARED/models/all-MiniLM-L6-v2"
    "$PYTHON" - "$SHARED/models/all-MiniLM-L6-v2" <<'EOF' || exit 4
import sys
from pathlib import Path
from safetensors.torch import load_file, save_file
folder = Path(sys.argv[1])
half = load_file(folder / "model.fp16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in half.items()}, folder / "model.safetensors",
          metadata={"format": "pt"})
(folder / "model.fp16.safetensors").unlink()
EOF
  fi
  export JAL_SHARED_DIR=$SHARED
elif [ -z "$DRY" ]; then
  echo "no .gpuft/ here: run bash recipes/gpu/prepare_finetune_carry.sh and carry it"; exit 5
fi
export PYTHONPATH=$PWD/src JAL_CACHE_DIR=/tmp/jalcache PYTHONUNBUFFERED=1 MPLBACKEND=Agg \
  HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
echo "setup done at $(( $(date +%s) - START )) s" >> "$OUT/setup.log"

# 3. the cells, until the budget; every finished JSON is packed as it lands
pack() {
  mkdir -p "$RUNS"
  tar cf "$OUT/.finetune_runs.tar" -C "$RUNS" . 2>/dev/null && mv "$OUT/.finetune_runs.tar" "$OUT/finetune_runs.tar"
}
(while sleep 15; do pack; done) &
PACKER=$!
# its own process group, so that the pool's workers stop with it at the budget
setsid "$PYTHON" recipes/benchmark.py run recipes/grids/finetune.yaml --only finetune --losses "$LOSSES" \
  --workers "$WORKERS" --threads 1 $DRY > "$OUT/ft.log" 2>&1 &
BENCH=$!
while kill -0 "$BENCH" 2>/dev/null && [ $(( $(date +%s) - START )) -lt "$BUDGET" ]; do sleep 2; done
kill -9 -- "-$BENCH" 2>/dev/null
wait "$BENCH"
echo "grid stopped (rc $?) at $(( $(date +%s) - START )) s" >> "$OUT/setup.log"
kill $PACKER 2>/dev/null
pack
grep -v "it/s\]\|s/it\]" "$OUT/ft.log" | tail -c 200000 > "$OUT/ft.tail.log" && mv "$OUT/ft.tail.log" "$OUT/ft.log"
tail -3 "$OUT/setup.log"
echo "cells in the tar (finished here or before): $(tar tf "$OUT/finetune_runs.tar" | grep -c 'seed[0-9]*.json$')"
