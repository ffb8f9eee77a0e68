#!/usr/bin/env bash
# Value of an active-learning run's labels, apart from the loop's training: train one
# model from scratch on the labels of rounds 0..R of a run (its own train/val split),
# with the loop's model and loss (preset S, one layer, MSE, forces weight 10, lr 0.005
# cosine, batch 4) but STEPS steps at once instead of 800 fine-tuning steps per round,
# then measure it on the test set per subset (test_source: 300 K MD, metadynamics).
# One thread, about 8 min for 4000 steps on an idle core.
#
# Usage: benchmarks/al_retrain.sh RUN_DIR R TEST_DB OUT_DIR [STEPS] [SEED]
#   e.g. benchmarks/al_retrain.sh al-vs-random/random_seed2 5 al-vs-random/test.db \
#        retrain/random_seed2_r5
# Writes OUT_DIR/ (model.pt, metrics) and OUT_DIR/eval.json (eformer eval --json).
set -euo pipefail
RUN=$1; R=$2; TEST=$3; OUT=$4; STEPS=${5:-4000}; SEED=${6:-0}
export OMP_NUM_THREADS=${THREADS:-1}
DB="$RUN/labels.db"
mkdir -p "$OUT"
eformer train "$DB" --select "split=train,al_round<=$R" --val-data "$DB" \
  --val-select "split=val,al_round<=$R" --preset S --model.n-layers 1 \
  --max-steps "$STEPS" --train.lr 0.005 --train.batch-size 4 \
  --train.forces-weight 10 --train.loss mse --train.warmup-steps 50 \
  --train.ema-decay 0.99 --train.eval-every 500 --train.seed "$SEED" --no-progress \
  --output-dir "$OUT" --resume
eformer eval "$OUT/model.pt" "$TEST" --by test_source --json > "$OUT/eval.json.tmp"
mv "$OUT/eval.json.tmp" "$OUT/eval.json"
