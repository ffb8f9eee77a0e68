"""Phonons (phonopy bridge) and molecular vibrations on cheap real calculators."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.io import write

from analysis import phonons as ph
from analysis import vibrations as vib

KB_EV = units.kB
Q_POINTS = {"Gamma": [0.0, 0.0, 0.0], "X": [0.5, 0.0, 0.5], "L": [0.5, 0.5, 0.5]}


@pytest.fixture(scope="module")
def cu_phonon():
    """EMT fcc Cu (primitive, a = 3.6 Å), 3x3x3 supercell, central differences."""
    pytest.importorskip("phonopy")
    phonon = ph.make_phonopy(bulk("Cu", "fcc", a=3.6), (3, 3, 3))
    return ph.compute_force_constants(
        phonon, EMT(), displacement=0.01, is_plusminus=True
    )


# --- units --------------------------------------------------------------------
def test_unit_constants_match_ase_and_physics():
    # h * 1 THz = 4.135667696e-3 eV (CODATA 2018 as in ase.units)
    np.testing.assert_allclose(ph.THZ_TO_EV, 4.135667696e-3, rtol=1e-8)
    np.testing.assert_allclose(ph.THZ_TO_CM, 33.35640952, rtol=1e-8)
    np.testing.assert_allclose(ph.CM_TO_EV, 1.2398419843e-4, rtol=1e-8)
    np.testing.assert_allclose(ph.EV_TO_KJMOL, 96.48533212, rtol=1e-8)
    assert ph.kjmol_to_ev(ph.EV_TO_KJMOL) == pytest.approx(1.0)
    assert ph.thz_to_cm(np.array([1.0, 2.0])) == pytest.approx(
        [33.3564, 66.7128], rel=1e-5
    )
    # ASE's own phonon energy scale: hbar sqrt(eV/(Å^2 amu)) in eV (ase.phonons)
    ase_scale = units._hbar * 1e10 / math.sqrt(units._e * units._amu)
    np.testing.assert_allclose(ph.ASE_TO_THZ * ph.THZ_TO_EV, ase_scale, rtol=1e-10)


@pytest.mark.phonopy
def test_unit_constants_match_phonopy():
    pytest.importorskip("phonopy")
    from phonopy.physical_units import get_physical_units

    phonopy_units = get_physical_units()
    # phonopy uses older CODATA values: agree to a few parts in 1e7
    np.testing.assert_allclose(ph.THZ_TO_EV, phonopy_units.THzToEv, rtol=1e-6)
    np.testing.assert_allclose(ph.THZ_TO_CM, phonopy_units.THzToCm, rtol=1e-6)
    np.testing.assert_allclose(ph.EV_TO_KJMOL, phonopy_units.EvTokJmol, rtol=1e-6)
    np.testing.assert_allclose(ph.ASE_TO_THZ, phonopy_units.DefaultToTHz, rtol=1e-6)
    assert units.kB == pytest.approx(phonopy_units.KB, rel=1e-5)


# --- structures ---------------------------------------------------------------
@pytest.mark.phonopy
def test_phonopy_atoms_roundtrip():
    pytest.importorskip("phonopy")
    atoms = bulk("NaCl", "rocksalt", a=5.64) * (1, 1, 2)
    atoms.rattle(0.05, seed=1)
    masses = atoms.get_masses()
    masses[0] = 24.0  # an isotope survives
    atoms.set_masses(masses)
    back = ph.from_phonopy_atoms(ph.to_phonopy_atoms(atoms))
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols()
    np.testing.assert_allclose(back.cell[:], atoms.cell[:], atol=1e-12)
    np.testing.assert_allclose(back.positions, atoms.positions, atol=1e-10)
    np.testing.assert_allclose(back.get_masses(), masses)
    assert back.pbc.all()
    with pytest.raises(ValueError, match="3D periodic cell"):
        ph.to_phonopy_atoms(molecule("H2O"))


# --- crystals -----------------------------------------------------------------
@pytest.mark.phonopy
def test_cu_emt_matches_ase_phonons(cu_phonon, tmp_path):
    from ase.phonons import Phonons

    reference = Phonons(
        bulk("Cu", "fcc", a=3.6),
        EMT(),
        supercell=(3, 3, 3),
        delta=0.01,
        name=str(tmp_path / "ase_phonons"),
    )
    reference.run()
    reference.read(acoustic=True)
    q = np.array(list(Q_POINTS.values()))
    ase_thz = reference.band_structure(q, verbose=False) / ph.THZ_TO_EV
    ours = np.sort(ph.frequencies_at(cu_phonon, q), axis=1)
    assert np.abs(ours[0]).max() < 0.01  # acoustic sum rule at Gamma
    np.testing.assert_allclose(ours, np.sort(ase_thz, axis=1), atol=0.05)
    assert ours[1, 2] > 7.0  # X LA of EMT Cu ~ 8 THz: not a trivially zero result


@pytest.mark.phonopy
def test_batched_forces_hook_matches_loop(cu_phonon):
    class BatchedEMT(EMT):
        """Real EMT with the optional batch method the phonon code looks for."""

        batch_sizes: list[int]

        def calculate_batch(self, list_of_atoms, properties):
            self.batch_sizes.append(len(list_of_atoms))
            out = []
            for atoms in list_of_atoms:
                atoms.calc = EMT()
                out.append({"forces": atoms.get_forces()})
            return out

    calc = BatchedEMT()
    calc.batch_sizes = []
    structures = [bulk("Cu", "fcc", a=3.6, cubic=True) for _ in range(5)]
    for i, atoms in enumerate(structures):
        atoms.rattle(0.02, seed=i)
    batched = list(vib.compute_forces((a.copy() for a in structures), calc, 2))
    looped = list(vib.compute_forces((a.copy() for a in structures), EMT(), 1))
    assert calc.batch_sizes == [2, 2, 1]
    np.testing.assert_allclose(batched, looped, atol=1e-12)
    assert np.abs(looped[0]).max() > 1e-3


@pytest.mark.phonopy
def test_imaginary_modes_of_unstable_bcc_cu_warn():
    pytest.importorskip("phonopy")
    with pytest.warns(RuntimeWarning, match=r"imaginary phonon mode.*-\d+\.\d+ THz"):
        result = ph.run_phonons(
            bulk("Cu", "bcc", a=2.87),
            EMT(),
            supercell=(3, 3, 3),
            mesh=(6, 6, 6),
            temperatures_K=[300.0],
            npoints=40,
        )
    assert result.min_frequency_THz < -0.5


@pytest.mark.phonopy
def test_stable_cu_pipeline_has_no_warning_and_sane_thermodynamics():
    pytest.importorskip("phonopy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = ph.run_phonons(
            bulk("Cu", "fcc", a=3.6, cubic=True),
            EMT(),
            supercell=(2, 2, 2),
            relax=True,
            relax_cell=True,
            mesh=(12, 12, 12),
            temperatures_K=[0.0, 300.0, 2000.0],
            npoints=40,
        )
    assert len(result.phonon.primitive) == 1  # conventional cell -> fcc BZ
    assert set(result.high_symmetry_frequencies_THz) >= {"Gamma", "X", "L"}
    assert result.free_energy[0] > 0.02  # zero-point energy, eV/atom
    assert result.entropy[0] == pytest.approx(0.0, abs=1e-12)
    assert result.heat_capacity[-1] == pytest.approx(
        3 * KB_EV, rel=0.01
    )  # Dulong-Petit
    assert np.all(np.diff(result.free_energy) < 0)
    assert result.atoms.cell[0, 0] == pytest.approx(3.59, abs=0.01)  # relaxed EMT a


@pytest.mark.phonopy
def test_classical_free_energy_matches_phonopy_and_quantum_limit(cu_phonon):
    temperature_K = 1000.0
    classical = ph.classical_harmonic_free_energy(cu_phonon, temperature_K, (6, 6, 6))
    cu_phonon.run_mesh((6, 6, 6), is_gamma_center=True)
    tp = cu_phonon.run_thermal_properties(
        temperatures=[temperature_K], classical=True, exclude_gamma_acoustic=True
    )
    assert classical == pytest.approx(ph.kjmol_to_ev(tp.free_energy[0]), abs=2e-5)
    # quantum F = classical F + kT sum (x^2/24 - x^4/2880 ...) with x = hbar w / kT
    kT = KB_EV * temperature_K
    freq = np.array(cu_phonon.mesh.frequencies)
    weights = np.array(cu_phonon.mesh.weights, dtype=float)
    x = ph.thz_to_ev(np.sort(freq, axis=1)) / kT
    x[0, :3] = 0.0  # Gamma acoustic modes excluded
    correction = (
        kT * np.sum(weights[:, None] * (x**2 / 24 - x**4 / 2880)) / weights.sum()
    )
    free, _, _ = ph.thermal_properties(cu_phonon, [temperature_K], (6, 6, 6))
    assert free[0] == pytest.approx(classical + correction, abs=2e-6)
    with pytest.raises(ValueError, match="temperature_K"):
        ph.classical_harmonic_free_energy(cu_phonon, 0.0, (6, 6, 6))


# --- molecules ----------------------------------------------------------------
def test_rigid_body_mode_count():
    assert vib.n_rigid_body_modes(molecule("CO2")) == 5
    assert vib.n_rigid_body_modes(molecule("H2O")) == 6
    assert vib.n_rigid_body_modes(Atoms("Ar")) == 3


def test_molecule_vibrations_emt_vs_xtb():
    tblite = pytest.importorskip("tblite.ase")
    water = molecule("H2O")
    ours = vib.harmonic_frequencies(water, EMT(), fmax=1e-3)
    ref = vib.harmonic_frequencies(
        water, tblite.TBLite(method="GFN2-xTB", verbosity=0), fmax=1e-3
    )
    assert ref.n_rigid_body_modes == 6
    assert ref.frequencies_cm.shape == (9,)
    # GFN2-xTB water: bend ~1540, stretches ~3640 cm^-1; rigid modes ~0
    assert 1450 < ref.vibrational_cm[0] < 1650
    assert np.all((ref.vibrational_cm[1:] > 3500) & (ref.vibrational_cm[1:] < 3800))
    by_magnitude = np.sort(np.abs(ref.frequencies_cm))
    assert by_magnitude[5] < 100.0
    np.testing.assert_allclose(
        ref.vibrational_meV, ref.vibrational_cm * units.invcm * 1000, rtol=1e-6
    )
    comparison = vib.compare_frequencies(ours, ref)
    expected = np.mean(np.abs(ours.vibrational_cm - ref.vibrational_cm))
    assert comparison["mae_cm"] == pytest.approx(expected)
    assert comparison["mae_meV"] == pytest.approx(expected * units.invcm * 1000)
    with pytest.raises(ValueError, match="vibrational modes"):
        vib.compare_frequencies(vib.harmonic_frequencies(molecule("N2"), EMT()), ref)


# --- command line -------------------------------------------------------------
@pytest.mark.phonopy
def test_cli_crystal_end_to_end(tmp_path, capsys):
    phonopy = pytest.importorskip("phonopy")
    from asecalc.cli.main import main

    write(tmp_path / "cu.cif", bulk("Cu", "fcc", a=3.6, cubic=True))
    out = tmp_path / "out"
    code = main([
        "phonons", str(tmp_path / "cu.cif"), "--calc", "emt", "--supercell", "3", "3",
        "3", "--mesh", "8", "8", "8", "--npoints", "40", "--json",
        "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "crystal"
    assert summary["n_atoms_supercell"] == 108
    assert not summary["imaginary_modes"]
    assert abs(summary["min_frequency_THz"]) < 0.01
    for name in ("phonopy_params.yaml", "bands_dos.png", "thermal_properties.csv"):
        assert (out / name).stat().st_size > 0
    table = summary["free_energy_table"]
    assert table[0]["temperature_K"] == 0.0
    assert table[6]["free_energy_kJ_per_mol"] == pytest.approx(
        table[6]["free_energy_eV_per_atom"] * ph.EV_TO_KJMOL
    )
    # the saved force constants reproduce the reported frequencies
    loaded = phonopy.load(out / "phonopy_params.yaml")
    loaded.run_qpoints([Q_POINTS["X"]])
    np.testing.assert_allclose(
        np.sort(loaded.qpoints.frequencies[0]),
        np.sort(summary["high_symmetry_frequencies_THz"]["X"]),
        atol=1e-8,
    )
    csv_lines = (out / "thermal_properties.csv").read_text().splitlines()
    assert csv_lines[0].startswith("temperature_K,free_energy_eV_per_atom")
    assert len(csv_lines) == 1 + len(table)


def test_cli_molecule_end_to_end(tmp_path, capsys):
    from asecalc.cli.main import main

    write(tmp_path / "h2o.xyz", molecule("H2O"))
    out = tmp_path / "out"
    code = main([
        "phonons", str(tmp_path / "h2o.xyz"), "--calc", "emt", "--reference", "emt",
        "--json", "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "molecule"
    assert len(summary["frequencies_cm"]) == 3
    assert summary["comparison"]["mae_cm"] == pytest.approx(0.0, abs=1e-6)
    assert (out / "vibrations.csv").read_text().startswith("model_cm,model_meV")
