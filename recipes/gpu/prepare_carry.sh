#!/usr/bin/env bash
# Build .gpu/ (git-ignored): what a lent GPU machine needs beside the working tree, under the
# device tool's 64 MiB carry limit. The machine has no network and its Python (3.12) lacks
# `datasets` and `evaluate`, and has an older transformers; so carry those wheels (no deps: the
# rest is there), and the 18 MB CIFAR-10 archive.
# Usage (repository root, on the development machine): bash recipes/gpu/prepare_carry.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PIP="${PIP:-.venv/bin/pip}"
mkdir -p .gpu/wheels .gpu/shared/data/cifar10_jpeg
grep -qxF ".gpu/" .git/info/exclude 2>/dev/null || echo ".gpu/" >> .git/info/exclude
cp "${JAL_SHARED_DIR:-../shared}/data/cifar10_jpeg/cifar10_jpeg.npz" .gpu/shared/data/cifar10_jpeg/
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/wheels \
  transformers==5.24.0 datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19 \
  fsspec==2026.9.0 accelerate==1.15.0
du -sh .gpu
