"""D3 dispersion on top of a model (real dftd3 library, real bundled models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.calculators.mixing import SumCalculator

from asecalc import EformerCalculator
from asecalc.cli._common import make_calculator
from asecalc.dispersion import d3_calculator, with_d3

pytest.importorskip("dftd3")


def _si2(distance: float) -> Atoms:
    return Atoms("Si2", positions=[[0, 0, 0], [distance, 0, 0]])


def _binding(calc, distance: float) -> float:
    pair = _si2(distance)
    pair.calc = calc
    far = _si2(100.0)
    far.calc = calc
    return pair.get_potential_energy() - far.get_potential_energy()


def test_d3_reaches_beyond_the_model_cutoff():
    model = EformerCalculator(model="mlearn-pbe")
    both = with_d3(EformerCalculator(model="mlearn-pbe"))
    assert isinstance(both, SumCalculator)
    # two Si atoms 7 Å apart: beyond the 5 Å cutoff the model gives nothing
    assert _binding(model, 7.0) == pytest.approx(0.0, abs=1e-12)
    e7, e14 = _binding(both, 7.0), _binding(both, 14.0)
    assert e7 < e14 < 0
    assert e7 == pytest.approx(_binding(d3_calculator("pbe"), 7.0), rel=1e-10)
    # -C6/R^6 - C8/R^8 at large R: halving R multiplies it by between 2^6 and 2^8
    assert 2**6 < e7 / e14 < 2**8


def test_d3_sum_forces_and_stress_are_derivatives():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=3)
    parts = [EformerCalculator(model="mlearn-pbe"), d3_calculator("pbe")]
    expected = {}
    for calc in parts:
        atoms.calc = calc
        for key in ("forces", "stress"):
            expected[key] = expected.get(key, 0) + atoms.calc.get_property(key, atoms)
    atoms.calc = with_d3(EformerCalculator(model="mlearn-pbe"), method="pbe")
    forces, stress = atoms.get_forces(), atoms.get_stress()
    np.testing.assert_allclose(forces, expected["forces"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(stress, expected["stress"], rtol=0, atol=1e-12)
    # dftd3 truncates its lattice sums (no smoothing), so its energy has tiny steps
    # and finite differences agree to ~1e-4 eV/Å (the model alone: 1e-8)
    fd_forces = calculate_numerical_forces(atoms, 1e-3)
    np.testing.assert_allclose(forces, fd_forces, rtol=0, atol=2e-4)
    fd_stress = calculate_numerical_stress(atoms, 1e-4)
    np.testing.assert_allclose(stress, fd_stress, rtol=0, atol=2e-5)
    assert np.abs(forces - parts[0].get_forces(atoms)).max() > 1e-3  # D3 matters
    # cell relaxations ask for the force-consistent energy
    energy = atoms.get_potential_energy(force_consistent=True)
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=1e-12)


def test_d3_refusals_and_specs(tmp_path):
    with pytest.raises(ValueError, match="D4 dispersion"):
        with_d3(EformerCalculator())  # GFN2-xTB model: dispersion already in it
    with pytest.raises(ValueError, match="method='pbe'"):
        with_d3(EMT())  # no recorded functional
    with pytest.raises(ValueError, match="damping"):
        d3_calculator("pbe", damping="d4")
    spec = make_calculator("mlearn-pbe+d3")
    assert isinstance(spec, SumCalculator)
    model = EformerCalculator(model="mlearn-pbe")
    assert spec.fingerprint == f"{model.fingerprint}+d3(pbe,d3bj)"
    assert isinstance(make_calculator("emt+d3:pbe"), SumCalculator)
    odd_name = tmp_path / "si+d3.pt"  # a model file whose name holds "+d3"
    odd_name.write_bytes(Path(model.bundle.path).read_bytes())
    assert isinstance(make_calculator(str(odd_name)), EformerCalculator)
    with pytest.raises(ValueError, match="SPEC\\+d3:XC"):
        make_calculator("mlearn-pbe+d3pbe")
