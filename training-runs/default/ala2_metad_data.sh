#!/usr/bin/env bash
# Alanine dipeptide frames from GFN2-xTB well-tempered metadynamics on phi/psi,
# added to the default model's training and test databases (session 4).
#
# The MD/normal-mode "peptides" recipe samples only the basin it starts in
# (C7eq); metadynamics reaches C5, alphaR, alphaL and C7ax, which the model's own
# metadynamics (tutorial 03) needs. Frames are relabelled without bias.
# Training: seed 11, 20 ps (40 000 steps of 0.5 fs), a frame every 100 steps.
# Test:     seed 12,  6 ps (12 000 steps), a frame every 100 steps.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-ala2-metad-data}
ALA="$HERE/asecalc/data/alanine_dipeptide.xyz"
export OMP_NUM_THREADS=1
for spec in train:11:40000 test:12:12000; do
  IFS=: read -r name seed steps <<< "$spec"
  eformer metad "$ALA" --calc xtb --cv "phi=torsion:4,6,8,14" --cv "psi=torsion:6,8,14,16" \
      --temperature 300 --height 1.2 --sigma 0.35 --biasfactor 10 --pace 200 \
      --steps "$steps" --trajectory-interval 100 --seed "$seed" --output-dir "$OUT/metad_$name"
  eformer datagen "$OUT/metad_$name/trajectory.traj" --reference xtb --workers 0 \
      --output "$OUT/ala2_metad_$name.db"
done
# tag the rows (recipe "ala2-metad") and append them to the project databases; frames
# already there (same uid) are skipped, so re-running is safe
for spec in train:11:xtb_chno_water.db test:12:xtb_chno_water_test.db; do
  IFS=: read -r name seed target <<< "$spec"
  eformer merge "$HERE/data/$target" "$OUT/ala2_metad_$name.db" --set recipe=ala2-metad \
      --set structure=alanine_dipeptide --set sampler=metad --set temperature_K=300.0 \
      --set "source=eformer metad --calc xtb seed $seed"
done
