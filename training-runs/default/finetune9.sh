#!/usr/bin/env bash
# Session 9: the session-4 default fine-tuned on more alanine dipeptide data.
#  0. ala2_more_data.sh added 800 GFN2-xTB metadynamics frames and 650 AL labels
#     (data/xtb_chno_water.db: 2768 -> 4218 rows; snapshot.db is a copy of it);
#  1. 45 min of fine-tuning from the bundled session-4 file, one thread, float32
#     (this folder's metrics.csv, checkpoint.pt, config.json, summary.json);
#  2. export to float64 with provenance, then the model card (command at the end
#     of asecalc/models/default.md).
# Resume/extend: the same command with --resume and a larger --time-budget.
set -euo pipefail
export OMP_NUM_THREADS=1
COMMON="--model.dtype float32 --train.energy-weight 1 --train.forces-weight 10 --train.lr 0.003 \
  --train.batch-size 4 --train.eval-every 200 --train.warmup-steps 50 --train.val-fraction 0.05 --no-progress"
eformer train snapshot.db --init default $COMMON --time-budget 45 --output-dir run
