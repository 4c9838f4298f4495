#!/usr/bin/env bash
# The two-regime benchmark on a GPU machine with no network (issue 11), in one command:
#   1. the `finetune` preset's candidates scored on the six sets (recipes/choose_presets.py, no test labels),
#      the choice written into the loss registry (--apply);
#   2. the fine-tuning grid on the GPU and the probe grid on the CPU cores, side by side (resumable).
# Expects, beside the repository: runs/gpu/whl/*.whl (datasets, evaluate, optuna and their pure
# dependencies for Python 3.12), runs/gpu/shared/{data,models} (the files the recipes read; the
# encoder in float16 with "dtype": "float32" in its config, to fit the transfer). Results: $OUT/results.tgz.
# Usage: SECONDS_LEFT=520 bash recipes/device_finetune.sh
# Status: written for issue 11 but not run yet (no device time was left to that session).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
LEFT=${SECONDS_LEFT:-520}
START=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site runs/gpu/whl/*.whl \
  > "$OUT/setup.log" 2>&1 || exit 2
export PYTHONPATH=$PWD/src:/tmp/site JAL_SHARED_DIR=$PWD/runs/gpu/shared HF_HOME=/tmp/hf PYTHONUNBUFFERED=1 \
  HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
python3 -c "import datasets, optuna, pyarrow, transformers, torch, jal_trainer.auto as a;
print('datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, 'transformers', transformers.__version__,
      'torch', torch.__version__, torch.cuda.get_device_name(0))" >> "$OUT/setup.log" 2>&1 || exit 3
nvidia-smi --query-gpu=name,memory.total --format=csv >> "$OUT/setup.log" 2>&1

pack() {  # what comes back: one archive (the transfer takes few files)
  tar czf "$OUT/.results.tgz" recipes/results/runs/finetune recipes/results/finetune_preset_choice_parts \
    recipes/results/finetune_preset_choice.json src/jal_trainer/losses/registry.py 2>/dev/null
  mv "$OUT/.results.tgz" "$OUT/results.tgz"
}
(while sleep 20; do pack; done) &
PACKER=$!

# 1. the preset: six sets in parallel, two CPU threads each, heads on the GPU
for s in sst2-sym0.4 trec-sym0.4 trec-pairflip0.4 wrench-youtube wrench-sms wrench-trec; do
  OMP_NUM_THREADS=2 timeout 240 python3 recipes/choose_presets.py --device --only "$s" > "/tmp/sweep-$s.log" 2>&1 &
done
wait $(jobs -p | grep -v "^$PACKER$")
cat /tmp/sweep-*.log | grep -v "it/s\]\|s/it\]\|batch/s\]" | tail -c 200000 > "$OUT/sweep.log"
python3 recipes/choose_presets.py --combine --apply >> "$OUT/sweep.log" 2>&1 || exit 4
echo "sweep done at $(( $(date +%s) - START )) s" >> "$OUT/sweep.log"

# 2. the grids until the time is up
REMAIN=$(( LEFT - ($(date +%s) - START) - 15 ))
timeout "$REMAIN" python3 recipes/benchmark.py run recipes/grids/finetune.yaml --only finetune --workers 6 \
  --threads 1 > "$OUT/ft.log" 2>&1 &
FT=$!
timeout "$REMAIN" python3 recipes/benchmark.py run recipes/grids/finetune.yaml --only probe --workers 6 \
  --threads 1 > "$OUT/probe.log" 2>&1 &
wait $FT
wait
kill $PACKER
pack
for f in ft probe; do grep -v "it/s\]\|s/it\]" "$OUT/$f.log" | tail -c 300000 > "/tmp/$f.log"; cp "/tmp/$f.log" "$OUT/$f.log"; done
echo "done at $(( $(date +%s) - START )) s"
