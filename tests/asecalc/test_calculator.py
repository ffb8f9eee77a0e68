"""EformerCalculator: symmetry, derivatives, periodic images, ASE contract, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError

from asecalc import EformerCalculator
from asecalc.testing import (
    assert_equivariant_calculator,
    assert_fd_forces,
    assert_fd_stress,
    assert_image_invariant,
)


@pytest.fixture
def ethanol(rng):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, rng=rng)
    return atoms


@pytest.fixture
def cu_cell(rng):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, rng=rng)
    atoms.cell = atoms.cell.array @ (np.eye(3) + 0.02 * rng.normal(size=(3, 3)))
    return atoms


def test_molecule_equivariance(ethanol, calc, rng):
    assert_equivariant_calculator(ethanol, calc, rng, rtol=1e-10)


def test_periodic_equivariance_and_stress_rotation(cu_cell, calc, rng):
    assert_equivariant_calculator(cu_cell, calc, rng, rtol=1e-10)


def test_fd_forces_molecule(ethanol, calc):
    assert_fd_forces(ethanol, calc)


def test_fd_forces_and_stress_periodic(cu_cell, calc):
    assert_fd_forces(cu_cell, calc)
    assert_fd_stress(cu_cell, calc)


def test_image_invariance(cu_cell, calc, rng):
    assert_image_invariant(cu_cell, calc, rng)


def test_supercell_extensive(cu_cell, calc):
    cu_cell.calc = calc
    e1, f1 = cu_cell.get_potential_energy(), cu_cell.get_forces()
    big = cu_cell.repeat((2, 2, 2))
    big.calc = calc
    assert big.get_potential_energy() == pytest.approx(8 * e1, rel=1e-10)
    np.testing.assert_allclose(big.get_forces(), np.tile(f1, (8, 1)), atol=1e-9)
    np.testing.assert_allclose(big.get_stress(), cu_cell.get_stress(), atol=1e-10)


def test_cell_smaller_than_cutoff(calc):
    small = bulk("Si", "diamond", a=5.43)  # 2 atoms, cell vectors 3.84 Å < cutoff
    small.rattle(0.03, seed=3)
    assert calc.config.cutoff > np.linalg.norm(small.cell, axis=1).min()
    small.calc = calc
    e1 = small.get_potential_energy()
    big = small.repeat((3, 1, 2))
    big.calc = calc
    assert big.get_potential_energy() == pytest.approx(6 * e1, rel=1e-10)
    assert_fd_stress(small, calc)


def test_mixed_pbc_slab(calc):
    slab = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 2))
    slab.pbc = [True, True, False]
    slab.rattle(0.02, seed=1)
    assert_fd_forces(slab, calc)


def test_energy_continuous_across_cutoff(calc):
    rc = calc.config.cutoff
    energies = []
    for d in (rc - 1e-4, rc - 1e-7, rc + 1e-7, rc + 1e-4):
        a = Atoms("CO", positions=[[0, 0, 0], [0, 0, d]])
        a.calc = EformerCalculator(model=calc.bundle)
        energies.append(a.get_potential_energy())
    isolated = energies[-1]
    assert abs(energies[0] - isolated) < 1e-9
    assert abs(energies[1] - energies[2]) < 1e-12
    a = Atoms("CO", positions=[[0, 0, 0], [0, 0, rc + 0.5]])
    a.calc = calc
    np.testing.assert_allclose(a.get_forces(), 0.0, atol=1e-14)


def test_additivity_at_large_separation(calc):
    water, methane = molecule("H2O"), molecule("CH4")
    both = water.copy() + methane.copy()
    both.positions[len(water) :] += [0, 0, 20.0]
    parts = []
    for m in (water, methane, both):
        m.calc = calc
        parts.append(m.get_potential_energy())
    assert parts[2] == pytest.approx(parts[0] + parts[1], abs=1e-10)


def test_batch_equals_single(calc, ethanol, cu_cell):
    images = [ethanol, cu_cell, molecule("H2O")]
    batch = calc.calculate_batch(images, properties=("energy", "forces"))
    for atoms, res in zip(images, batch, strict=True):
        atoms.calc = EformerCalculator(model=calc.bundle)
        assert res["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(res["forces"], atoms.get_forces(), atol=1e-10)


def test_float32_close_to_float64(tiny_model_path, ethanol):
    f64 = EformerCalculator(model=tiny_model_path)
    f32 = EformerCalculator(model=tiny_model_path, dtype="float32")
    assert f32.dtype.is_floating_point
    assert str(f32.dtype) == "torch.float32"
    a, b = ethanol.copy(), ethanol.copy()
    a.calc, b.calc = f64, f32
    assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-4)
    np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-4)


def test_fingerprint_names_the_weights_and_dtype(tiny_model_path, tiny_ensemble_path):
    a = EformerCalculator(model=tiny_model_path).fingerprint
    assert a == EformerCalculator(model=tiny_model_path).fingerprint
    assert a.endswith("/float64")
    assert len(a.split("/")[0]) == 16
    assert EformerCalculator(model=tiny_model_path, dtype="float32").fingerprint != a
    assert EformerCalculator(model=tiny_ensemble_path).fingerprint != a
    # a model file from before files carried each block's fade-in scale keeps
    # its fingerprint, so checkpointed NVE/TI runs resume after the upgrade ...
    old_file = Path(__file__).parents[1] / "data" / "tiny_model.pt"
    calc = EformerCalculator(model=old_file)
    assert calc.fingerprint == "3ad51bac95729664/float64"
    # ... while a block still fading in (a grown model mid-training) differs
    calc.models[0].layers[-1].residual_scale.fill_(0.5)
    assert calc.fingerprint != "3ad51bac95729664/float64"


def test_ase_contract(calc, cu_cell):
    before = list(EformerCalculator.implemented_properties)
    EformerCalculator(model=calc.bundle)
    EformerCalculator(model=calc.bundle, uncertainty=None)
    assert before == EformerCalculator.implemented_properties
    cu_cell.calc = calc
    energy = cu_cell.get_potential_energy()
    assert isinstance(energy, float)
    assert cu_cell.get_potential_energy(force_consistent=True) == energy
    energies = cu_cell.get_potential_energies()
    assert energies.shape == (len(cu_cell),)
    assert energies.sum() == pytest.approx(energy, abs=1e-10)
    assert cu_cell.get_forces().shape == (len(cu_cell), 3)
    stress = cu_cell.get_stress()
    assert stress.shape == (6,)
    assert stress.dtype == np.float64
    # cached: no recomputation for unchanged atoms
    calls = []
    original = calc._evaluate
    calc._evaluate = lambda *a, **k: calls.append(1) or original(*a, **k)
    cu_cell.get_forces()
    cu_cell.get_potential_energy()
    assert not calls


def test_energy_only_skips_autograd(calc, ethanol):
    ethanol.calc = calc
    ethanol.get_potential_energy()
    assert "forces" not in calc.results


def test_stress_requires_periodic_cell(calc, ethanol):
    ethanol.calc = calc
    with pytest.raises(PropertyNotImplementedError, match="3D-periodic"):
        ethanol.get_stress()


def test_skin_list_rebuilds_on_wrap_and_matches_fresh(calc, cu_cell):
    calc.neighbours.skin = 1.0
    cu_cell.calc = calc
    cu_cell.get_forces()
    builds = calc.neighbours.n_builds
    cu_cell.positions[0] += 0.2  # within skin/2: reused
    f_reused = cu_cell.get_forces()
    assert calc.neighbours.n_builds == builds
    fresh = cu_cell.copy()
    fresh.calc = EformerCalculator(model=calc.bundle, skin=0.0)
    np.testing.assert_allclose(f_reused, fresh.get_forces(), atol=1e-12)
    cu_cell.positions[1] += cu_cell.cell[0]  # wrap-like jump by a lattice vector
    e = cu_cell.get_potential_energy()
    assert calc.neighbours.n_builds == builds + 1
    assert e == pytest.approx(fresh.get_potential_energy(), abs=1e-10)


def test_ensemble_uncertainty(tiny_ensemble_path, ethanol):
    calc = EformerCalculator(model=tiny_ensemble_path)
    assert calc.uncertainty == "ensemble"
    ethanol.calc = calc
    forces = ethanol.get_forces()
    assert calc.get_energy_std() > 0
    std = calc.get_forces_std()
    assert std.shape == (len(ethanol),)
    assert (std > 0).all()
    members = []
    for model in calc.models:
        single = EformerCalculator(model=tiny_ensemble_path)
        single.models = [model]
        single.uncertainty = None
        a = ethanol.copy()
        a.calc = single
        members.append(a.get_forces())
    np.testing.assert_allclose(forces, np.mean(members, axis=0), atol=1e-10)


def test_dropout_uncertainty(tmp_path, ethanol):
    from asecalc.checkpoint import save_model
    from tests.conftest import make_tiny_model

    path = tmp_path / "drop.pt"
    save_model(path, make_tiny_model(1, dropout=0.2))
    calc = EformerCalculator(model=path, uncertainty="dropout", n_dropout_samples=6)
    ethanol.calc = calc
    ethanol.get_forces()
    assert calc.get_energy_std() > 0
    deterministic = EformerCalculator(model=path)
    a = ethanol.copy()
    a.calc = deterministic
    e1 = a.get_potential_energy()
    a.calc = EformerCalculator(model=path)
    assert a.get_potential_energy() == e1  # dropout off by default


def test_compressed_dimer_is_repulsive(calc):
    energies = []
    for d in (0.25, 0.4, 0.6):
        a = Atoms("CC", positions=[[0, 0, 0], [0, 0, d]])
        a.calc = EformerCalculator(model=calc.bundle)
        with (
            pytest.warns(RuntimeWarning, match="closer than")
            if d < 0.3
            else _nullcontext()
        ):
            energies.append(a.get_potential_energy())
    assert energies[0] > energies[1] > energies[2]
    assert energies[0] - energies[2] > 10.0  # ZBL wall, eV


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize(
    ("atoms", "match"),
    [
        (Atoms(), "zero atoms"),
        (
            Atoms("UO2", positions=[[0, 0, 0], [0, 0, 1.8], [0, 0, -1.8]]),
            "element.*U.*not in this model",
        ),
        (Atoms("H2", positions=[[0, 0, 0], [0, 0, np.nan]]), "NaN"),
        (Atoms("H2", positions=[[0, 0, 0], [0, 0, 0]]), "overlap"),
        (Atoms("Cu", cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]], pbc=True), "degenerate"),
    ],
)
def test_bad_input_errors(calc, atoms, match):
    atoms.calc = calc
    with pytest.raises(ValueError, match=match):
        atoms.get_potential_energy()


def test_corrupt_and_foreign_model_files(tmp_path):
    import torch

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a readable eformer file"):
        EformerCalculator(model=corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not an eformer model file"):
        EformerCalculator(model=foreign)
    with pytest.raises(FileNotFoundError, match="not found"):
        EformerCalculator(model=tmp_path / "missing.pt")


def test_attention_weights_retrievable(calc, ethanol):
    from asecalc.graph import atoms_to_graph

    graph = atoms_to_graph(ethanol, calc.elements, calc.config.cutoff)
    out = calc.models[0](graph, compute_forces=False, return_attention=True)
    alpha = out["attention"]
    assert len(alpha) == calc.config.n_layers
    assert alpha[0].shape == (len(graph["edge_src"]), calc.config.n_heads)
    sums = np.zeros((len(ethanol), calc.config.n_heads))
    np.add.at(sums, graph["edge_dst"].numpy(), alpha[0].detach().numpy())
    assert (alpha[0] >= 0).all()
    assert (sums < 1.0).all()
