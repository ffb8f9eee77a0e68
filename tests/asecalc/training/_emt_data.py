"""Shared test data for training tests.

Tiny model settings and EMT-labelled databases.
"""

from __future__ import annotations

import ase.db
import numpy as np
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

#: ModelConfig overrides of a model small enough for second-scale training tests.
TINY_MODEL = {
    "n_scalars": 8,
    "n_vectors": 4,
    "n_layers": 1,
    "n_heads": 2,
    "radial_hidden": 8,
    "readout_hidden": 8,
    "cutoff": 3.5,
}


def label(atoms, calc, stress=False):
    """Return ``atoms`` with ``calc``'s energy, forces (and stress) frozen in a
    SinglePointCalculator, as ase.db stores labels."""
    atoms.calc = calc
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if stress:
        results["stress"] = atoms.get_stress()
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def write_emt_database(path, n_molecules, n_cells, key_value_pairs=False):
    """Rattled H2O/CH4/NH3 and strained Cu cells labelled with EMT (seeded)."""
    rng = np.random.default_rng(0)
    with ase.db.connect(path) as db:
        for i in range(n_molecules):
            atoms = molecule(["H2O", "CH4", "NH3"][i % 3])
            atoms.rattle(0.08, rng=rng)
            kv = {"molecule": atoms.get_chemical_formula(), "split": "train"}
            db.write(label(atoms, EMT()), **(kv if key_value_pairs else {}))
        for i in range(n_cells):
            atoms = bulk("Cu", "fcc", a=3.6 + 0.02 * i)
            atoms.rattle(0.05, rng=rng)
            kv = {"molecule": "Cu", "split": "train"}
            db.write(
                label(atoms, EMT(), stress=True), **(kv if key_value_pairs else {})
            )
    return path
