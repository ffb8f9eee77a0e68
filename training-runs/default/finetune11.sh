#!/usr/bin/env bash
# Session 11: does the G2 force error (43.7 meV/Å on the held-out 300/600 K MD frames) fall
# faster with a Huber loss than with more MSE training? Two 60-min fine-tunes of the
# session-10 default on the same 6,698-row database (data/xtb_chno_water.db), one thread each,
# float32, batch 4, lr 0.001 cosine, energy weight 1, forces weight 10:
#   huber: --train.loss huber (delta 0.01 eV/Å on force components and eV/atom on energies,
#          i.e. nearly L1, the loss of MACE's later training stages);
#   mse:   the same loss as before (control: what 60 more minutes buy).
#   huber2: 55 more minutes of the huber run, a warm restart from its model
#           (INIT=OUT_DIR/run_huber/model.pt NAME=huber2).
# Usage: [INIT=model.pt] [NAME=run_name] training-runs/default/finetune11.sh OUT_DIR huber|mse [MINUTES]
# Resume: the same command (it passes --resume when a checkpoint exists).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$1; LOSS=$2; MINUTES=${3:-60}; INIT=${INIT:-default}; NAME=${NAME:-$LOSS}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
extra=()
[ -f "$OUT/run_$NAME/checkpoint.pt" ] && extra=(--resume)
eformer train "$HERE/data/xtb_chno_water.db" --init "$INIT" --model.dtype float32 \
  --train.loss "$LOSS" --train.energy-weight 1 --train.forces-weight 10 --train.lr 0.001 \
  --train.batch-size 4 --train.eval-every 200 --train.warmup-steps 50 --train.val-fraction 0.05 \
  --no-progress --time-budget "$MINUTES" --output-dir "$OUT/run_$NAME" "${extra[@]}"
