#!/usr/bin/env bash
# DiaSL acceptance run: at equal training FLOPs, does the adaptive controller end
# with a lower validation force MAE than the best fixed configuration chosen up
# front (S and M presets on all the data, cosine schedule over the budget)?
#
# Usage: benchmarks/scale_compare.sh [OUT]    (default OUT=scale-compare-out)
# Environment: XTB_BUDGET, ASPIRIN_BUDGET (FLOPs per run), DTYPE (float64; float32
# runs about 2x faster at the same FLOPs), RMD17_DIR, EFORMER.
# Every run's best model is also tested on a test set no run sees (--test): the
# validation set picks the models and drives DiaSL, so it flatters DiaSL a little.
# About an hour per dataset on one core at the default budgets (four runs each);
# resumable (re-run the same command).
# Measured FLOPs per training step (batch 4, forward + backward incl. the force
# double backward, scaled to the mean structure of the whole set), 2026-11-27:
# aspirin S 6.8e8, M 3.7e9, DiaSL start (S, 1 layer) 3.3e8;
# GFN2-xTB CHNO/water S 5.1e8, start 2.5e8.
# The 1e13 aspirin runs of 2026-11-28 (README, tutorial 06): ASPIRIN_BUDGET=1e13 DTYPE=float32,
# fixed sizes small and s1 only (about 40 min each on one thread), DiaSL three ways: as then
# (--diasl.window-span 1), the same with --diasl.initial-fraction 1.0, and the default
# (window span 2). Collected with benchmarks/collect_scale_compare.py into
# tutorials/data/diasl_compare.json as "aspirin 1e13, ...".
# The laws-guided run of 2026-11-29 ("aspirin 1e13, laws"): a constant-rate pilot,
#   eformer scale sweep $RMD17/rmd17_aspirin_train01.db --budget-flops 2e12 \
#     --sizes s1:S:n_layers=1,small,s3:S:n_layers=3 --data-fractions 1.0 --n-evals 20 \
#     --model.dtype float32 --train.schedule constant --output-dir pilot
#   eformer scale fit pilot --metric val_forces_mae_meV_per_A
# then the compare above (ASPIRIN_BUDGET=1e13 DTYPE=float32, fixed small and s1) with
#   --laws pilot/fit.json --diasl.growth laws --diasl.schedule cosine \
#   --diasl.initial-fraction 1.0 --diasl.max-width-factor 1 --diasl.max-layers 3
# (about 25 min for the pilot and 45 min for the DiaSL run on one thread).
# 2026-11-29 (session 16): the same laws run with the faded-in growth (ed56642), stopped at 5.9e12
# FLOPs when it was behind both fixed runs; and on the xTB database, the same recipe (pilot
# eformer scale sweep data/xtb_chno_water.db ... as above, then compare with --laws on its fit.json).
# The growth experiments behind tutorials/data/aspirin_growth_2e12.json force one depth growth with a
# law file under which growing at the first check always pays (tests/asecalc/training/test_diasl_laws.py
# builds the same) and --diasl.min-points 3 or 15 (growth at step 300 or 1500), --train.seed 0/1/2.
# "s1" is the start architecture trained fixed on all the data: the control
# that tells a gain from the decisions apart from a gain from starting small.
# Results: OUT/<dataset>/compare.json ("adaptive_wins", force MAEs in meV/Å);
# benchmarks/collect_scale_compare.py gathers them for tutorial 06.
set -euo pipefail
OUT="${1:-scale-compare-out}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
EFORMER="${EFORMER:-eformer}"
XTB_BUDGET="${XTB_BUDGET:-1e12}"          # training FLOPs per run
ASPIRIN_BUDGET="${ASPIRIN_BUDGET:-1e12}"
DTYPE="${DTYPE:-float64}"
RMD17="${RMD17_DIR:-$HERE/../shared/data/rmd17}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# Optional: fit laws first so the controller decides from them (--laws).
# $EFORMER scale sweep "$HERE/data/xtb_chno_water.db" --sizes small,medium \
#     --data-fractions 0.1,0.2,0.5,1.0 --budget-flops 2e11 --output-dir "$OUT/xtb-sweep"
# $EFORMER scale fit "$OUT/xtb-sweep" --json > "$OUT/xtb-fit.json"

# GFN2-xTB database of the project (~2 000 S steps at 1e12 FLOPs).
nice -n 10 $EFORMER scale compare "$HERE/data/xtb_chno_water.db" \
    --budget-flops "$XTB_BUDGET" --fixed-sizes small,medium,s1:S:n_layers=1 --start-size start:S:n_layers=1 \
    --model.dtype "$DTYPE" --test "$HERE/data/xtb_chno_water_test.db" --output-dir "$OUT/xtb" --json

# rMD17 aspirin (1 000 structures; ~1 500 S steps at 1e12 FLOPs).
nice -n 10 $EFORMER scale compare "$RMD17/rmd17_aspirin_train01.db" \
    --budget-flops "$ASPIRIN_BUDGET" --fixed-sizes small,medium,s1:S:n_layers=1 --start-size start:S:n_layers=1 \
    --model.dtype "$DTYPE" --test "$RMD17/rmd17_aspirin_test01.db" --output-dir "$OUT/aspirin" --json
