#!/usr/bin/env bash
# How the session-4 default model was made from the session-3 one (run from a folder
# holding snapshot.db = data/xtb_chno_water.db with the ala2-metad rows, 2768 rows).
#  0. ala2_metad_data.sh added the alanine dipeptide metadynamics frames;
#  1. the session-3 weights (per-irrep layer norm) were put in a layer_norm="joint"
#     model (same parameter shapes; the function changes, so it is re-fitted);
#  2. 2000 steps of fine-tuning (15 min; metrics_stage1.csv);
#  3. 35 min more from stage 2 (this folder's metrics.csv, checkpoint.pt);
#  4. export to float64 with provenance, then the model card.
set -euo pipefail
export OMP_NUM_THREADS=1
python - <<'PY'
import torch
from asecalc.checkpoint import load_model, save_model
from asecalc.nn import build_model
old = load_model("default", dtype="float32")  # the session-3 file (git show 56d1438:asecalc/models/default.pt)
config = old.config.replace(layer_norm="joint", dtype="float32")
model = build_model(config, torch.float32)
model.load_state_dict(old.members[0].state_dict())
save_model("init_joint.pt", model, metadata=old.metadata)
PY
COMMON="--model.dtype float32 --train.energy-weight 1 --train.forces-weight 10 --train.lr 0.005 \
  --train.batch-size 4 --train.eval-every 200 --train.warmup-steps 50 --train.val-fraction 0.05 --no-progress"
eformer train snapshot.db --init init_joint.pt $COMMON --train.max-steps 2000 --output-dir stage1
eformer train snapshot.db --init stage1/model.pt $COMMON --time-budget 35 --output-dir run
