#!/usr/bin/env bash
# Issue 11's fine-tuning grid (recipes/grids/finetune.yaml, mode finetune) on this CPU machine, in
# the order that makes a partial table most useful: seed 0 of the plain losses on every setting,
# then seed 0 of `auto` and of detect-then-retrain (`+clean`: 2 trainings, its detecting run checked
# against the plain cell), then seeds 1 and 2 with `+clean` first: its detecting run is the plain
# CE / JAL-CE training, so it writes those plain cells too (`derived_from`) and they are not trained twice.
# Resumable: every finished run is one JSON under recipes/results/runs/finetune/finetune/, skipped
# when this script runs again, so stop it any time (kill -9 the process group) and start it again.
#
# Cost (bf16, measured 2026-12-01 on 2 shared EPYC cores): about 3.5 min per run on one idle core,
# chemprot (128 tokens, batches of similar length) about 2.4x that, `auto` 3.5 runs, `+clean` 2, 28 plain
# cells written by `+clean`: about 15 CPU-hours in all (7.5 hours on two cores).
#
# Usage (two workers, one thread each, in the background):
#   OMP_NUM_THREADS=1 setsid nohup bash recipes/finetune_cpu.sh > /tmp/finetune_cpu.log 2>&1 &
# Then: python recipes/bench_finetune.py   (writes recipes/results/finetune_table.{json,md,png})
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WORKERS=${WORKERS:-2}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

phase() {  # phase <losses> <seeds>
  echo "== $(date -u +%FT%TZ) losses $1, seeds $2"
  "$PYTHON" recipes/benchmark.py run recipes/grids/finetune.yaml --only finetune --losses "$1" --seeds "$2" \
    --workers "$WORKERS" --threads 1 || echo "== some runs of this phase failed: see the log; the next phase goes on"
}

phase ce,gce,nce+rce,jal-ce 0
phase auto 0
phase jal-ce+clean,ce+clean 0
phase jal-ce+clean,ce+clean 1,2
phase ce,gce,nce+rce,jal-ce 1,2
phase auto 1,2
echo "== $(date -u +%FT%TZ) done: python recipes/bench_finetune.py"
