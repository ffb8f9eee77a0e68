#!/usr/bin/env bash
# Session 9: more alanine dipeptide data for the default model (all GFN2-xTB labels).
#  1. two more GFN2-xTB phi/psi well-tempered metadynamics runs as in
#     ala2_metad_data.sh (seeds 13 and 14, 20 ps each, 0.5 fs, a frame every 50 fs,
#     relabelled without bias): recipe "ala2-metad";
#  2. the labels the active-learning benchmark bought (benchmarks/al_vs_random.sh,
#     three runs of 250 labels sharing one 50-frame 300 K seed; 300-900 K MD and
#     metadynamics frames driven by the AL models): recipe "ala2-al".
# The AL benchmark's own test set (checkpoints/test.db) is NOT added: it stays held out.
# Usage: training-runs/default/ala2_more_data.sh [WORK_DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-ala2-more-data}
ALA="$HERE/asecalc/data/alanine_dipeptide.xyz"
export OMP_NUM_THREADS=1
for seed in 13 14; do
  [ -f "$OUT/ala2_metad_$seed.db" ] && continue
  eformer metad "$ALA" --calc xtb --cv "phi=torsion:4,6,8,14" --cv "psi=torsion:6,8,14,16" \
      --temperature 300 --height 1.2 --sigma 0.35 --biasfactor 10 --pace 200 \
      --steps 40000 --trajectory-interval 100 --seed "$seed" --output-dir "$OUT/metad_$seed"
  eformer datagen "$OUT/metad_$seed/trajectory.traj" --reference xtb --workers 0 \
      --output "$OUT/ala2_metad_$seed.db"
done
python - "$OUT" "$HERE" <<'PY'
import sys
from pathlib import Path

import ase.db

out, here = Path(sys.argv[1]), Path(sys.argv[2])
dst = ase.db.connect(here / "data" / "xtb_chno_water.db")
have = {row.uid for row in dst.select() if "uid" in row}
ckpt = here / "benchmarks" / "results" / "al-vs-random" / "checkpoints"
sources = [(out / f"ala2_metad_{s}.db", "ala2-metad", f"eformer metad --calc xtb seed {s}")
           for s in (13, 14)]
sources += [(ckpt / run / "labels.db", "ala2-al", f"AL benchmark run {run}")
            for run in ("uncertainty_window", "uncertainty_window_seed1", "random_seed2")]
with dst:
    for path, recipe, source in sources:
        n = 0
        for row in ase.db.connect(path).select():
            if row.uid in have:
                continue
            have.add(row.uid)
            kv = {k: v for k, v in row.key_value_pairs.items() if k not in ("split",)}
            kv.update(recipe=recipe, structure="alanine_dipeptide",
                      method="GFN2-xTB", source=source)
            if recipe == "ala2-al":
                kv["al_source"] = row.get("source", "")
                kv["source"] = source
                kv["sampler"] = "al"
            else:
                kv.update(sampler="metad", temperature_K=300.0)
            dst.write(row.toatoms(), key_value_pairs=kv)
            n += 1
        print(f"{path}: {n} new rows ({recipe})")
print(dst.count(), "rows in", dst.filename)
PY
