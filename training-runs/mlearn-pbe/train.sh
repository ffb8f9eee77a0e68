#!/usr/bin/env bash
# How the bundled mlearn-pbe model (session 5, 2026-11-27) was made: preset S with the joint
# layer norm, from scratch, 75 minutes on one CPU thread (6978 steps), then exported to
# float64 with provenance and the model card regenerated. MLEARN points at the mlearn
# databases (../shared/data/mlearn in the developers' tree).
set -euo pipefail
export OMP_NUM_THREADS=1
MLEARN=${MLEARN:-../shared/data/mlearn}
eformer train "$MLEARN"/mlearn_{Si,Ge,Li,Mo}_train.db --preset S --model.dtype float32 \
  --train.energy-weight 100 --train.forces-weight 10 --train.stress-weight 1000 \
  --train.lr 0.01 --train.batch-size 4 --train.eval-every 50 --train.val-fraction 0.05 \
  --time-budget 75 --output-dir run
python - <<'PY'
from asecalc.checkpoint import export_model
export_model("run/model.pt", "mlearn-pbe.pt", "float64", metadata={
    "data": ["mlearn training.json Si, Ge, Li, Mo"], "select": None, "init": None,
    "status": "provisional (75 min CPU training, one thread)",
    "level_of_theory": "PBE (VASP), mlearn"})
PY
python -m asecalc.training.modelcard mlearn-pbe.pt \
  --test "$MLEARN"/mlearn_Si_test.db "$MLEARN"/mlearn_Ge_test.db "$MLEARN"/mlearn_Li_test.db \
  --by group --title "mlearn-pbe (Li, Si, Ge, Mo; PBE)" \
  --notes card_notes.md --output mlearn-pbe.md
