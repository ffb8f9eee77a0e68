#!/usr/bin/env bash
# Active learning (uncertainty + diversity) vs random selection, same label budget.
#
# Alanine dipeptide, GFN2-xTB (tblite) reference:
#   1. seed: 50 frames of 300 K Langevin MD driven by GFN2-xTB;
#   2. held-out test set: 100 frames of 300 K MD + 100 frames of well-tempered
#      metadynamics on phi/psi (rare conformations: C7ax, alpha-L, ...), all
#      relabelled with GFN2-xTB (unbiased forces);
#   3. `eformer al` twice from the same seed: --strategy uncertainty and
#      --strategy random, each 10 rounds x 50 labels, ensemble of 4;
#   4. force MAE on the test set vs number of labels, both strategies (JSON+PNG).
# Acceptance: the AL curve ends below the random one.
#
# Long run (hours on a CPU). Usage:
#   bash benchmarks/al_vs_random.sh [OUTPUT_DIR]        (default: al-vs-random)
# Environment: ROUNDS, PER_ROUND, ENSEMBLE, MAX_STEPS, MD_STEPS, WALKERS, WORKERS, THREADS
# override; STRATEGIES="uncertainty" or "random" runs one loop (start the two in parallel
# on two cores after a first call with STRATEGIES=none has made the seed and test sets);
# AL_ARGS adds options to both `eformer al` calls (e.g. "--model.n-layers 1");
# SUFFIX names a variant's folder ($OUT/uncertainty$SUFFIX).
#
# The 2026-11-27 run (README table; each loop on one core, about 15 min per round):
#   S="ROUNDS=5 MAX_STEPS=800 MD_STEPS=2000 WALKERS=1 WORKERS=1"
#   A="--model.n-layers 1 --metad-height 3 --metad-pace 20"
#   env $S STRATEGIES=none bash benchmarks/al_vs_random.sh OUT
#   env $S STRATEGIES=uncertainty AL_ARGS="$A" bash benchmarks/al_vs_random.sh OUT &
#   env $S STRATEGIES=random AL_ARGS="$A" bash benchmarks/al_vs_random.sh OUT &
#   env $S STRATEGIES=uncertainty SUFFIX=_pf1.5 AL_ARGS="$A --pool-factor 1.5" \
#       bash benchmarks/al_vs_random.sh OUT
#   (2 rounds each:) SUFFIX=_window AL_ARGS="$A --sigma-window 0,0.3" and, for a
#   second random seed, STRATEGIES=random SUFFIX=_seed1 AL_ARGS="$A --random-seed 1"
#   python benchmarks/al_vs_random_report.py OUT --runs uncertainty random \
#       uncertainty_pf1.5 uncertainty_window random_seed1
# The 2026-11-28 run (same S and A; 3 loops on 2 cores, about 20 min per round): the
# window for 4 rounds with seeds 0 and 1, random with seed 2; round 0 copied from the
# window run (al_state.json set back to round 0 "evaluate"), then
#   env $S ROUNDS=4 STRATEGIES=uncertainty SUFFIX=_window AL_ARGS="$A --sigma-window 0,0.3"
#   ... SUFFIX=_window_seed1 AL_ARGS="$A --sigma-window 0,0.3 --random-seed 1"
#   ... STRATEGIES=random SUFFIX=_seed2 AL_ARGS="$A --random-seed 2"
#   python benchmarks/al_vs_random_report.py OUT --runs uncertainty_window \
#       uncertainty_window_seed1 random_seed2 --previous tutorials/data/al_vs_random.json
# (Now a supported step: add "--fork-from OUT/uncertainty_window --fork-round 0" to
# AL_ARGS instead of copying the folder and editing al_state.json.)
# Their seed/test sets, labels, states and last-round models are in
# benchmarks/results/al-vs-random/checkpoints: copy that folder to OUT and re-run with a
# larger ROUNDS to extend them.
# Session 13 (rounds 5-6, about 7 min per round on one core): forks of the checkpoints,
#   F="--fork-from OUT/uncertainty_window --fork-round 4 --sigma-window 0,0.3"
#   env $S ROUNDS=6 STRATEGIES=uncertainty SUFFIX=_win_atoms AL_ARGS="$A $F --fps-descriptor atoms"
#   env $S ROUNDS=6 STRATEGIES=uncertainty SUFFIX=_win_pooled AL_ARGS="$A $F --fps-descriptor pooled"
#   env $S ROUNDS=5 STRATEGIES=random SUFFIX=_seed2_r5 \
#       AL_ARGS="$A --fork-from OUT/random_seed2 --fork-round 4 --random-seed 2"
#   env $S ROUNDS=5 STRATEGIES=uncertainty SUFFIX=_window_balance \
#       AL_ARGS="$A --sigma-window 0,0.3 --balance source"     (from round 0, not a fork)
# (reported as uncertainty_window, uncertainty_window_atoms and random_seed2; their states are
# in checkpoints/uncertainty_window_r6_pooled, ..._r6_atoms and random_seed2_r5).
# Session 19 (about 7 min per round on one core; per-atom FPS, the default):
#   env $S STRATEGIES=uncertainty SUFFIX=_window_density \
#       AL_ARGS="$A --sigma-window 0,0.3 --density-weight 1"      (from round 0)
#   env $S STRATEGIES=random SUFFIX=_seed3 AL_ARGS="$A --random-seed 3"
# and, to separate the labels from the loop's short per-round fine-tunes, each run's
# 300 labels retrained from scratch (benchmarks/al_retrain.sh).
# All runs above but _win_atoms used the pooled FPS descriptor (mean + max of the per-atom features); since
# session 12 the default (--fps-descriptor auto) compares alanine dipeptide atom by atom. Add
# "--fps-descriptor pooled" to AL_ARGS to extend those runs unchanged.
set -euo pipefail

OUT=${1:-al-vs-random}
ROUNDS=${ROUNDS:-10}
PER_ROUND=${PER_ROUND:-50}
ENSEMBLE=${ENSEMBLE:-4}
MAX_STEPS=${MAX_STEPS:-3000}
MD_STEPS=${MD_STEPS:-4000}
WALKERS=${WALKERS:-2}
WORKERS=${WORKERS:-2}
STRATEGIES=${STRATEGIES:-uncertainty random}
AL_ARGS=${AL_ARGS:-}
SUFFIX=${SUFFIX:-}
THREADS=${THREADS:-1}
PY=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")/.." && pwd)
ALA="$HERE/asecalc/data/alanine_dipeptide.xyz"
PHI="phi=torsion:4,6,8,14"   # 0-based, from the comment line of the xyz file
PSI="psi=torsion:6,8,14,16"
mkdir -p "$OUT"
export OMP_NUM_THREADS=$THREADS

# 1 + 2a: GFN2-xTB MD frames (labels come from the driving calculator)
"$PY" - "$ALA" "$OUT" <<'EOF'
import sys
from pathlib import Path

import ase.db
import numpy as np
from ase import units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from tblite.ase import TBLite

start, out = read(sys.argv[1]), Path(sys.argv[2])


def md_frames(path, n_frames, seed, interval=40, equilibration=400):
    if path.exists():
        return
    atoms = start.copy()
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs,
                   rng=np.random.default_rng(seed + 1))
    dyn.run(equilibration)
    tmp = path.with_suffix(".tmp.db")
    tmp.unlink(missing_ok=True)
    db = ase.db.connect(tmp)
    for _ in range(n_frames):
        dyn.run(interval)
        frame = atoms.copy()
        frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(),
                                           forces=atoms.get_forces())
        db.write(frame, source="md300")
    tmp.rename(path)


md_frames(out / "seed.db", 50, seed=0)
md_frames(out / "test_md.db", 100, seed=100)
EOF

# 2b: metadynamics on phi/psi with GFN2-xTB, frames relabelled without bias
if [ ! -f "$OUT/test_metad.db" ]; then
  eformer metad "$ALA" --calc xtb --cv "$PHI" --cv "$PSI" --temperature 300 \
      --height 1.2 --sigma 0.35 --biasfactor 10 --pace 200 --steps 20000 \
      --trajectory-interval 200 --seed 7 --output-dir "$OUT/metad"
  eformer datagen "$OUT/metad/trajectory.traj" --reference xtb --workers "$WORKERS" \
      --output "$OUT/test_metad.db"
fi
"$PY" - "$OUT" <<'EOF'
import sys
from pathlib import Path

import ase.db

out = Path(sys.argv[1])
if not (out / "test.db").exists():
    tmp = out / "test.tmp.db"
    tmp.unlink(missing_ok=True)
    db = ase.db.connect(tmp)
    for name in ("test_md.db", "test_metad.db"):
        for row in ase.db.connect(out / name).select():
            db.write(row.toatoms(), test_source=name)
    tmp.rename(out / "test.db")
EOF

# 3: the two loops (resumable: re-run this script after a crash)
for STRATEGY in $STRATEGIES; do
  [ "$STRATEGY" = none ] && continue
  # shellcheck disable=SC2086
  eformer al "$OUT/seed.db" --reference xtb --strategy "$STRATEGY" \
      --explore md:300,600,900 --explore "metad:$PHI+$PSI@300" \
      --per-round "$PER_ROUND" --rounds "$ROUNDS" --ensemble "$ENSEMBLE" \
      --md-steps "$MD_STEPS" --interval 20 --walkers "$WALKERS" --sigma-stop 1.0 --sigma-converged 0 \
      --test "$OUT/test.db" --workers "$WORKERS" --threads "$THREADS" --random-seed 0 \
      --train.max-steps "$MAX_STEPS" --train.eval-every 250 \
      --output-dir "$OUT/$STRATEGY$SUFFIX" $AL_ARGS
done
for STRATEGY in uncertainty random; do
  if [ ! -f "$OUT/$STRATEGY/al_report.json" ]; then
    echo "no $OUT/$STRATEGY/al_report.json yet: comparison skipped"
    exit 0
  fi
done

# 4: compare (whole test set and the MD / metadynamics subsets, per round)
"$PY" "$HERE/benchmarks/al_vs_random_report.py" "$OUT"
