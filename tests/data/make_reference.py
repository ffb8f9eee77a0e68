"""Regenerate the regression reference: a seeded tiny model and its predictions.

Run only when a deliberate change to the model's maths is made:
``python tests/data/make_reference.py``. It rewrites ``tiny_model.pt`` and
``tiny_reference.json`` beside this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1]))


def structures():
    """The fixed structures the reference is computed on."""
    from ase.build import bulk, molecule

    ethanol = molecule("CH3CH2OH")
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    cu.positions[0] += [0.05, -0.03, 0.02]
    return {"ethanol": ethanol, "cu": cu}


def main() -> None:
    from asecalc import EformerCalculator
    from asecalc.checkpoint import save_model
    from tests.conftest import make_tiny_model

    model = make_tiny_model(7, n_scalars=8, n_vectors=4, n_tensors=4, radial_hidden=8)
    save_model(HERE / "tiny_model.pt", model, metadata={"purpose": "regression"})
    calc = EformerCalculator(model=HERE / "tiny_model.pt")
    reference = {}
    for name, atoms in structures().items():
        atoms.calc = calc
        entry = {
            "energy": atoms.get_potential_energy(),
            "forces": atoms.get_forces().tolist(),
        }
        if atoms.pbc.all():
            entry["stress"] = atoms.get_stress().tolist()
        reference[name] = entry
    (HERE / "tiny_reference.json").write_text(json.dumps(reference, indent=1))


if __name__ == "__main__":
    main()
