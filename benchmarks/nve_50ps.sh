#!/usr/bin/env bash
# Issue #4's stability target: 50 ps of NVE at 300 K, 0.5 fs, float64, with the bundled
# default model, for alanine dipeptide (22 atoms) and 64-molecule liquid water (192 atoms).
# Each run checkpoints every 2000 steps (1 ps); re-running this script resumes whatever is
# unfinished, so the runs can be spread over several sessions (about 55 min of one core
# for alanine dipeptide at 31 steps/s, about 8 h at 0.29 s/step for water, as measured in
# sessions 17-18). Runs both at once, one thread each.
# Usage: [THREADS=N] benchmarks/nve_50ps.sh [OUT_DIR] [ala2|water64|both]
# (THREADS: torch threads per run, default 1. Session 19 measured water64 alone with 2 threads
# at 0.30 s/step, no faster than one thread: run the systems side by side instead.)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$HERE/benchmarks/results/nve-50ps}
WHICH=${2:-both}
export OMP_NUM_THREADS=${THREADS:-1}
run() {  # name structure
  local dir="$OUT/$1" extra=()
  [ -f "$dir/nve_checkpoint.npz" ] && extra=(--resume)
  eformer nve "$2" --calc eformer --temperature 300 --timestep 0.5 --steps 100000 \
      --equilibration-steps 2000 --seed 0 --checkpoint-interval 2000 \
      --trajectory-interval 200 --output-dir "$dir" --json "${extra[@]}" \
      > "$dir.json.tmp" && mv "$dir.json.tmp" "$dir.json"
}
mkdir -p "$OUT"
pids=()
if [ "$WHICH" = ala2 ] || [ "$WHICH" = both ]; then
  run ala2 "$HERE/asecalc/data/alanine_dipeptide.xyz" & pids+=($!)
fi
if [ "$WHICH" = water64 ] || [ "$WHICH" = both ]; then
  run water64 "$HERE/asecalc/data/water64.xyz" & pids+=($!)
fi
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
