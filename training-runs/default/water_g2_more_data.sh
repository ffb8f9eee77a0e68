#!/usr/bin/env bash
# Session 10: more liquid water and G2 data for the default model (all GFN2-xTB labels).
#  1. liquid-water recipe, master seed 2: two new 32-molecule boxes (TIP3P-packed),
#     100 frames each from flexible-water MD and random displacements at 300/400 K;
#  2. g2 recipe, master seeds 3 and 4: 2 x 20 more frames per molecule at 300/600/1000 K;
#  3. 64-molecule liquid water: configurations of the DeePMD-kit example water data
#     (deepmodeling/deepmd-kit@bc902da, examples/water/data, LGPL-3.0; level of theory
#     undocumented), every 8th of its 320 training frames relabelled with GFN2-xTB
#     (recipe "liquid-water-64"); every 4th of its 80 test frames goes to the TEST
#     database as a new subset. Needs ../shared/data/water_deepmd (not in a user's clone;
#     the labelled rows ship in data/).
# Usage: training-runs/default/water_g2_more_data.sh [WORK_DIR]   (re-run to resume)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-water-g2-more-data}
DEEPMD=${DEEPMD:-$HERE/../shared/data/water_deepmd}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
cd "$OUT"
python - "$DEEPMD" <<'PY'
import sys
from pathlib import Path

import ase.db
import ase.io

src = Path(sys.argv[1])
for split, stride in (("train", 8), ("test", 4)):
    rows = list(ase.db.connect(src / f"water_deepmd_{split}.db").select())
    frames = []
    for row in rows[::stride]:
        atoms = row.toatoms()
        atoms.calc = None
        atoms.info = {"deepmd_split": split, "deepmd_row": int(row.id)}
        frames.append(atoms)
    ase.io.write(f"deepmd_{split}_every{stride}.xyz", frames)
PY
eformer datagen --recipe liquid-water --temperatures 300,400 --n-per-structure 100 --seed 2 \
    --reference xtb --workers 0 --output lw_seed2.db
for seed in 3 4; do
  eformer datagen --recipe g2 --temperatures 300,600,1000 --n-per-structure 20 --seed $seed \
      --reference xtb --workers 0 --output g2_seed$seed.db
done
eformer datagen deepmd_test_every4.xyz --reference xtb --workers 0 --output deepmd_test.db
eformer datagen deepmd_train_every8.xyz --reference xtb --workers 0 --output deepmd_train.db
# append to the project databases; frames already there (same uid) are skipped
eformer merge "$HERE/data/xtb_chno_water.db" lw_seed2.db g2_seed3.db g2_seed4.db
water64=(--set recipe=liquid-water-64 --set structure=water64_deepmd --set sampler=aimd-configs
         --set "source=DeePMD-kit example water (deepmodeling/deepmd-kit@bc902da examples/water/data), relabelled with GFN2-xTB"
         --set method=GFN2-xTB)
eformer merge "$HERE/data/xtb_chno_water.db" deepmd_train.db "${water64[@]}"
eformer merge "$HERE/data/xtb_chno_water_test.db" deepmd_test.db "${water64[@]}"
