"""The structures shipped in ``asecalc/data`` load and are what their comments say."""

from pathlib import Path

import ase.io
import numpy as np
from ase import units
from ase.neighborlist import neighbor_list

import asecalc

DATA = Path(asecalc.__file__).parent / "data"


def test_water64_is_intact_liquid_water_at_one_g_per_cm3():
    atoms = ase.io.read(DATA / "water64.xyz")
    assert atoms.get_chemical_formula() == "H128O64"
    assert atoms.pbc.all()
    density = atoms.get_masses().sum() / units.mol / (atoms.get_volume() * 1e-24)
    assert abs(density - 1.0) < 0.02  # g/cm³
    # every O has exactly two H within 1.2 Å and every H exactly one O: whole molecules
    i, j = neighbor_list("ij", atoms, 1.2)
    z = atoms.numbers
    oh = (z[i] == 8) & (z[j] == 1)
    assert np.array_equal(np.bincount(i[oh], minlength=len(atoms))[z == 8], [2] * 64)
    ho = (z[i] == 1) & (z[j] == 8)
    assert np.array_equal(np.bincount(i[ho], minlength=len(atoms))[z == 1], [1] * 128)
    # molecules do not overlap: all pairs closer than 1.4 Å are O-H bonds
    i, j, d = neighbor_list("ijd", atoms, 1.4)
    assert np.all((z[i] != z[j]) & (d < 1.2))


def test_alanine_dipeptide_torsion_indices_name_the_backbone():
    atoms = ase.io.read(DATA / "alanine_dipeptide.xyz")
    assert atoms.get_chemical_formula() == "C6H12N2O2"
    phi = [int(k) for k in atoms.info["phi_indices"]]
    psi = [int(k) for k in atoms.info["psi_indices"]]
    # phi = C-N-CA-C, psi = N-CA-C-N
    assert "".join(atoms[k].symbol for k in phi) == "CNCC"
    assert "".join(atoms[k].symbol for k in psi) == "NCCN"
    # C7eq: phi about -83 degrees, psi about 72 (ASE gives angles in [0, 360))
    assert -110 < (atoms.get_dihedral(*phi) + 180) % 360 - 180 < -60
    assert 50 < (atoms.get_dihedral(*psi) + 180) % 360 - 180 < 95
