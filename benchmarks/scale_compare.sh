#!/usr/bin/env bash
# DiaSL acceptance run: at equal training FLOPs, does the adaptive controller end
# with a lower validation force MAE than the best fixed configuration chosen up
# front (S and M presets on all the data, cosine schedule over the budget)?
#
# Usage: benchmarks/scale_compare.sh [OUT]    (default OUT=scale-compare-out)
# Environment: XTB_BUDGET, ASPIRIN_BUDGET (FLOPs per run), RMD17_DIR, EFORMER.
# Long: hours on a quiet 2-core CPU. Resumable for the fixed runs (re-run the
# same command); the adaptive run restarts from scratch.
# Measured FLOPs per training step (batch 4, forward + backward incl. the force
# double backward): aspirin S 1.4e8, M 1.2e9, DiaSL start (S, 1 layer) 7.0e7;
# GFN2-xTB CHNO/water S 4.3e7, M 3.7e8, start 2.1e7.
# Results: OUT/<dataset>/compare.json ("adaptive_wins", force MAEs in meV/Å).
set -euo pipefail
OUT="${1:-scale-compare-out}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
EFORMER="${EFORMER:-eformer}"
XTB_BUDGET="${XTB_BUDGET:-5e11}"          # training FLOPs per run
ASPIRIN_BUDGET="${ASPIRIN_BUDGET:-1e12}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# Optional: fit laws first so the controller decides from them (--laws).
# $EFORMER scale sweep "$HERE/data/xtb_chno_water.db" --sizes small,medium \
#     --data-fractions 0.1,0.2,0.5,1.0 --budget-flops 2e11 --output-dir "$OUT/xtb-sweep"
# $EFORMER scale fit "$OUT/xtb-sweep" --json > "$OUT/xtb-fit.json"

# GFN2-xTB database of the project (~5 000 small-molecule S steps per 2e11 FLOPs).
nice -n 10 $EFORMER scale compare "$HERE/data/xtb_chno_water.db" \
    --budget-flops "$XTB_BUDGET" --fixed-sizes small,medium --start-size start:S:n_layers=1 \
    --output-dir "$OUT/xtb" --json

# rMD17 aspirin (1 000 structures; ~7 000 S steps at 1e12 FLOPs).
nice -n 10 $EFORMER scale compare "${RMD17_DIR:-$HERE/../shared/data/rmd17}/rmd17_aspirin_train01.db" \
    --budget-flops "$ASPIRIN_BUDGET" --fixed-sizes small,medium --start-size start:S:n_layers=1 \
    --output-dir "$OUT/aspirin" --json
