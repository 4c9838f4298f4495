#!/usr/bin/env bash
# The paper's CIFAR-10 grid on one GPU inside one call: smoke check, then the cells in priority
# order, several processes sharing the GPU, within a wall-clock budget. Finished cells land in
# $OUT/cells.tar as they finish; merge them here with
#   python recipes/benchmark.py aggregate recipes/grids/cifar10_paper.yaml --merge <cells.tar>... \
#       --out recipes/results/cifar10_paper
# Usage (repository root, the GPU machine): bash recipes/gpu/paper_grid.sh [paper_grid.py run flags]
#   e.g. bash recipes/gpu/paper_grid.sh --budget-minutes 9 --workers 8
# Needs CIFAR-10 under $JAL_SHARED_DIR/data/cifar10_jpeg (default ../shared) and jal_trainer importable
# (pip install -e . or PYTHONPATH=src). Without $OUT, results go to ./gpu_out.
set -uo pipefail
cd "$(dirname "$0")/../.."
export OUT="${OUT:-$PWD/gpu_out}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
PY="${PYTHON:-python3}"

# MPS lets the cells' small kernels run side by side instead of time-slicing the GPU between
# processes. Used only if its daemon starts and a CUDA context opens through it.
MPS=0
if command -v nvidia-cuda-mps-control >/dev/null 2>&1 && [ "${JAL_NO_MPS:-0}" != 1 ]; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/jal-mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/jal-mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if nvidia-cuda-mps-control -d 2>/dev/null && timeout 60 "$PY" -c "import torch; torch.zeros(1, device='cuda')"; then
    MPS=1; echo "MPS: on"
  else
    echo quit | nvidia-cuda-mps-control 2>/dev/null; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    echo "MPS: unavailable, processes time-share the GPU"
  fi
fi

# Smoke: one cell for one epoch on 1,000 images through jal train, in the foreground, so a broken
# setup costs seconds rather than the whole budget. The graphed bf16 step first; if only the eager
# step works, the grid runs eagerly. Arguments: the mode, then optionally the train and test subset.
smoke() {
  rm -rf /tmp/jal-smoke
  "$PY" recipes/gpu/paper_grid.py run --out /tmp/jal-smoke --runs-dir /tmp/jal-smoke/runs --mode "$1" \
    --scratch /tmp/jal-smoke/scratch --keep-in-out --workers 1 --max-cells 1 --train-subset "${2:-1000}" \
    --test-subset "${3:-500}" --epochs 1 > "$OUT/smoke-$1.log" 2>&1
}
SMOKE_START=$(date +%s); EXTRA=()
if ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  # a rehearsal checks the script, not the machine: a tenth of the images keeps it quick on 2 cores
  echo "no GPU: a CPU rehearsal in fp32"; EXTRA=(--mode fp32)
  smoke fp32 100 100 || { echo "SMOKE FAILED"; tail -n 60 "$OUT/smoke-fp32.log"; exit 3; }
  echo "smoke (fp32) ok in $(( $(date +%s) - SMOKE_START ))s"
elif smoke bf16-graph; then
  echo "smoke (bf16-graph) ok in $(( $(date +%s) - SMOKE_START ))s"
elif smoke fp32; then
  echo "smoke: the graphed step FAILED, the eager one works: running eagerly"; EXTRA=(--mode fp32)
  find /tmp/jal-smoke -name '*.log' -exec tail -n 30 {} \; ; tail -n 30 "$OUT/smoke-bf16-graph.log"
else
  echo "SMOKE FAILED"; tail -n 60 "$OUT/smoke-fp32.log"; find /tmp/jal-smoke -name '*.log' -exec tail -n 60 {} \;
  [ "$MPS" = 1 ] && echo quit | nvidia-cuda-mps-control
  exit 3
fi

"$PY" recipes/gpu/paper_grid.py run --out "$OUT" "${EXTRA[@]}" "$@" 2>&1 | tee "$OUT/grid.log"
status=${PIPESTATUS[0]}
[ "$MPS" = 1 ] && echo quit | nvidia-cuda-mps-control
exit "$status"
