"""Which FPS descriptor tells alanine dipeptide conformations apart?

For the 201 held-out frames of the active-learning benchmark (300 K MD +
φ/ψ metadynamics, ``benchmarks/results/al-vs-random/checkpoints/test.db``) and a
model, compares the descriptors of :mod:`asecalc.training.al_features`:
the Spearman correlation of pairwise (standardised) descriptor distance with
pairwise φ/ψ distance (periodic, radians), and how well 20 frames picked by
farthest-point sampling cover the φ/ψ plane (mean distance of every frame to its
nearest pick, degrees; random picks for scale). Seconds on one core.

Usage: python benchmarks/al_descriptor_study.py MODEL [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from ase.db import connect
from scipy.stats import spearmanr

from asecalc import EformerCalculator
from asecalc.training.al_features import model_features
from asecalc.training.al_select import farthest_point_sampling

TEST = "benchmarks/results/al-vs-random/checkpoints/test.db"
PHI, PSI = (
    (4, 6, 8, 14),
    (6, 8, 14, 16),
)  # 0-based atoms of asecalc/data/alanine_dipeptide


def torsion_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Periodic distance between (..., 2) φ/ψ arrays in radians."""
    d = np.abs(a - b)
    return np.linalg.norm(np.minimum(d, 2 * np.pi - d), axis=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    images = [row.toatoms() for row in connect(TEST).select()]
    angles = np.radians([[a.get_dihedral(*PHI), a.get_dihedral(*PSI)] for a in images])
    calc = EformerCalculator(args.model)
    pairs = np.triu_indices(len(images), 1)
    torsion = torsion_distance(angles[:, None], angles[None])
    result: dict[str, dict[str, float]] = {}
    for name in ("pooled", "atoms"):
        desc = model_features(calc, images, descriptor=name)["descriptors"]
        desc = desc / (desc.std(axis=0) + 1e-12)
        dist = np.linalg.norm(desc[:, None] - desc[None], axis=-1)
        cover = [
            torsion[:, farthest_point_sampling(desc, 20, first=f)].min(axis=1).mean()
            for f in range(0, 200, 40)
        ]
        result[name] = {
            "dim": int(desc.shape[1]),
            "spearman_vs_torsion": float(spearmanr(dist[pairs], torsion[pairs])[0]),
            "fps20_coverage_deg": float(np.degrees(np.mean(cover))),
        }
    rng = np.random.default_rng(0)
    random_cover = [
        torsion[:, rng.choice(len(images), 20, replace=False)].min(axis=1).mean()
        for _ in range(50)
    ]
    result["random"] = {"fps20_coverage_deg": float(np.degrees(np.mean(random_cover)))}
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, **result}, f, indent=1)


if __name__ == "__main__":
    main()
