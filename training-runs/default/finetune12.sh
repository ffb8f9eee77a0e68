#!/usr/bin/env bash
# Session 12: fine-tune on the training database with the new `organics` recipe merged in
# (data/xtb_chno_water.db: 6,698 rows + 2,220 frames of 37 organic molecules from
# `eformer datagen --recipe organics --n-per-structure 60 --seed 0`). Before it, the
# candidate had 185 meV/Å on 300 K MD frames of these molecules (37 on G2), so the default
# model did not carry over to molecules larger than G2's.
# Same settings as finetune11.sh (Huber loss, float32, batch 4, energy weight 1, forces
# weight 10, 5 % validation, one thread); LR and INIT from the environment.
# Usage: INIT=model.pt [LR=0.001] [NAME=run] training-runs/default/finetune12.sh OUT_DIR [MINUTES]
# Resume: the same command (it passes --resume when a checkpoint exists).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$1; MINUTES=${2:-60}; INIT=${INIT:?set INIT=model file}; LR=${LR:-0.001}
NAME=${NAME:-organics}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
extra=()
[ -f "$OUT/run_$NAME/checkpoint.pt" ] && extra=(--resume)
eformer train "$HERE/data/xtb_chno_water.db" --init "$INIT" --model.dtype float32 \
  --train.loss huber --train.energy-weight 1 --train.forces-weight 10 --train.lr "$LR" \
  --train.batch-size 4 --train.eval-every 200 --train.warmup-steps 50 --train.val-fraction 0.05 \
  --no-progress --time-budget "$MINUTES" --output-dir "$OUT/run_$NAME" "${extra[@]}"
