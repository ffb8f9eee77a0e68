#!/usr/bin/env bash
# Session 10: the session-9 default fine-tuned on more liquid water and G2 data, and the
# same fine-tune of a one-layer-deeper copy (function-preserving grow_depth), side by side.
#  0. water_g2_more_data.sh added 200 32-molecule liquid water frames, 2240 G2 frames and
#     40 64-molecule water frames (snapshot.db is a copy of data/xtb_chno_water.db after it:
#     6698 rows);
#  1. both runs: 60 min, one thread each (at the same time), float32, lr 0.003 cosine, batch 4;
#  2. the better one on the held-out test set is exported to float64 and gets the model
#     card (command at the end of asecalc/models/default.md). Session 10: run_s (same
#     architecture, 7601 steps) beat run_d (3 layers, 4911 steps) on 7 of 8 test subsets
#     and was shipped; this folder holds run_s's metrics, checkpoint and summary.
# Resume/extend: the same command with --resume and a larger --time-budget.
set -euo pipefail
export OMP_NUM_THREADS=1
MINUTES=${MINUTES:-60}
COMMON="--model.dtype float32 --train.energy-weight 1 --train.forces-weight 10 --train.lr 0.003 \
  --train.batch-size 4 --train.eval-every 200 --train.warmup-steps 50 --train.val-fraction 0.05 --no-progress"
python - <<'PY'
from asecalc.checkpoint import load_model, save_model
from asecalc.training.growth import grow_depth

bundle = load_model("default")
meta = dict(bundle.metadata)
meta["grown"] = "grow_depth of the session-9 default: 2 -> 3 layers, function-preserving"
save_model("default_depth3.pt", [grow_depth(m, seed=10) for m in bundle.members], meta)
PY
eformer train snapshot.db --init default $COMMON --time-budget "$MINUTES" --output-dir run_s &
eformer train snapshot.db --init default_depth3.pt $COMMON --time-budget "$MINUTES" --output-dir run_d &
wait
