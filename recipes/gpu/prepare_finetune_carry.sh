#!/usr/bin/env bash
# Build .gpuft/ (git-ignored): what a lent GPU machine needs, beside the working tree and .gpu/, to
# run the fine-tuning grid of issue 11 (recipes/gpu/finetune_grid.sh). It must fit the device tool's
# 64 MiB per call with the tracked files (about 6 MB), so:
#   - the all-MiniLM-L6-v2 weights travel in float16 (45 MB instead of 91 MB) and are widened back
#     to float32 on the machine: every loss starts from the same fp16-rounded encoder (relative
#     change about 5e-4 per weight), which the table states;
#   - the data (WRENCH youtube/sms/trec/chemprot, SST-2, TREC) travels as one .tar.xz (about 2 MB);
#   - the wheels are the optuna stack (for `loss_type: auto`) only; transformers 5, datasets and
#     evaluate come from .gpu/wheels, installed by the paper-grid call before it on the same warm
#     machine (recipes/gpu/prepare_carry.sh), or carried in the same call when it fits.
# Usage (repository root, on the development machine): bash recipes/gpu/prepare_finetune_carry.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED="${JAL_SHARED_DIR:-../shared}"
PY="${PY:-.venv/bin/python}"
PIP="${PIP:-.venv/bin/pip}"
rm -rf .gpuft
mkdir -p .gpuft/wheels .gpuft/model
grep -qxF ".gpuft/" .git/info/exclude 2>/dev/null || echo ".gpuft/" >> .git/info/exclude

# the encoder: every small file as is, the weights in float16
for f in "$SHARED"/models/all-MiniLM-L6-v2/*; do
  [ -f "$f" ] && [ "$(basename "$f")" != model.safetensors ] && cp "$f" .gpuft/model/
done
cp -r "$SHARED/models/all-MiniLM-L6-v2/1_Pooling" .gpuft/model/ 2>/dev/null || true
chmod -R u+w .gpuft/model
"$PY" - "$SHARED/models/all-MiniLM-L6-v2/model.safetensors" .gpuft/model/model.fp16.safetensors <<'EOF'
import sys
from safetensors.torch import load_file, save_file
weights = load_file(sys.argv[1])
save_file({k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}, sys.argv[2],
          metadata={"format": "pt"})
EOF

# the data the fine-tuning recipes read
tar cJf .gpuft/data.tar.xz -C "$SHARED" data/SOURCES.md data/wrench/youtube data/wrench/sms data/wrench/trec \
  data/wrench/chemprot data/sst_trec_mr

# optuna and its pure or cp312 dependencies (the machine's Python is 3.12, no network)
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .gpuft/wheels \
  optuna==5.0.0 alembic==1.20.1 Mako==1.4.3 MarkupSafe==3.0.4 colorlog==6.12.0 SQLAlchemy==2.1.9
du -sh .gpuft .gpuft/*
