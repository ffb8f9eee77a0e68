#!/usr/bin/env bash
# rMD17 aspirin, split 01: eformer vs MACE, 60 minutes of training wall time each.
#
#   benchmarks/aspirin_vs_mace.sh OUT_DIR [MINUTES] [MACE_VENV]
#
# Both trainers run at the same time, one torch thread each (one core each on a
# 2-core machine), on the same 950/50 train/validation protocol (random 5 %), then
# both models are evaluated on the 1000 frames of test split 01.
# Needs ../shared/data/rmd17 (or RMD17_DIR) and a mace-torch venv (benchmarks/anchors.sh).
# RUN_MACE=0 trains and evaluates eformer only (to compare with an earlier MACE run).
set -euo pipefail
OUT=${1:?usage: aspirin_vs_mace.sh OUT_DIR [MINUTES] [MACE_VENV]}
MINUTES=${2:-60}
MACE_VENV=${3:-/work/venvs/mace}
RUN_MACE=${RUN_MACE:-1}
HERE=$(cd "$(dirname "$0")/.." && pwd)
RMD17=${RMD17_DIR:-$HERE/../shared/data/rmd17}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# MACE reads extxyz: the same frames, labels under REF_energy / REF_forces.
$PY - "$RMD17" "$OUT" <<'EOF'
import sys
from ase.db import connect
from ase.io import write
src, out = sys.argv[1], sys.argv[2]
for split in ("train", "test"):
    frames = []
    for row in connect(f"{src}/rmd17_aspirin_{split}01.db").select():
        a = row.toatoms()
        a.calc = None
        a.info = {"REF_energy": float(row.energy)}
        a.arrays["REF_forces"] = row.forces.copy()
        frames.append(a)
    write(f"{out}/aspirin_{split}01.xyz", frames, format="extxyz")
    print(split, len(frames))
EOF

SECONDS_BUDGET=$((MINUTES * 60))

# eformer: preset S, float32 training, cosine schedule over the wall-time budget.
(
  cd "$OUT"
  /usr/bin/time -v eformer train "$RMD17/rmd17_aspirin_train01.db" --val-fraction 0.05 \
      --preset S --time-budget "$MINUTES" --max-steps 100000000 --train.batch-size 4 --train.lr 0.015 \
      --no-progress --output-dir eformer > eformer.log 2>&1
) &
EF_PID=$!

# MACE: the README's rMD17-style settings, scaled to a CPU (32x0e+32x1o, L=1),
# float32, E0s = PBE/def2-SVP isolated atoms (../shared/data/README.md; aspirin has no N).
MACE_ARGS=(--name=mace --seed=1 --train_file=aspirin_train01.xyz --valid_fraction=0.05
  --test_file=aspirin_test01.xyz --energy_key=REF_energy --forces_key=REF_forces
  --E0s='{1:-13.568422383046626, 6:-1025.2770951782686, 8:-2035.5709809589698}'
  --model=MACE --num_channels=32 --max_L=1 --correlation=3 --r_max=5.0
  --batch_size=5 --lr=0.01 --energy_weight=1 --forces_weight=1000 --ema --ema_decay=0.99
  --amsgrad --error_table=TotalMAE --default_dtype=float32 --device=cpu --eval_interval=1)
MACE_PID=
if [ "$RUN_MACE" = 1 ]; then
(
  cd "$OUT"
  timeout --signal=INT "$SECONDS_BUDGET" "$MACE_VENV/bin/mace_run_train" "${MACE_ARGS[@]}" \
      --max_num_epochs=100000 > mace.log 2>&1 || true
  # Finish from the last checkpoint without more epochs: writes the model and the test table.
  last=$(ls checkpoints/mace_run-1_epoch-*.pt | sed 's/.*epoch-\([0-9]*\).*/\1/' | sort -n | tail -1)
  "$MACE_VENV/bin/mace_run_train" "${MACE_ARGS[@]}" --restart_latest \
      --max_num_epochs="$last" > mace_final.log 2>&1
) &
MACE_PID=$!
fi
wait $EF_PID
if [ -n "$MACE_PID" ]; then wait "$MACE_PID"; fi

cd "$OUT"
eformer eval eformer/model.pt "$RMD17/rmd17_aspirin_test01.db" --json \
    --output-dir eformer-eval > eformer_test.json
echo "eformer test:"; cat eformer_test.json
if [ "$RUN_MACE" != 1 ]; then exit 0; fi
echo "MACE test table:"; grep -A8 "test_Default\|Error-table on TEST" mace_final.log | head -20 || true
