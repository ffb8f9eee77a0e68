"""Metadynamics with the real PLUMED kernel: units, CVs, restart, double well."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms, FixCartesian

from analysis import fes, metad


class DoubleWell(Calculator):
    """V(d_x) = a((d_x - c)² - b²)², d = r_1 - r_0 (Å, eV): wells at d_x = c ± b."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, a: float = 0.078, b: float = 1.0, c: float = 2.5) -> None:
        super().__init__(a=a, b=b, c=c)  # parameters: a restart can tell wells apart
        self.a, self.b, self.c = a, b, c

    def potential(self, x: np.ndarray) -> np.ndarray:
        """Analytic V at separation ``x`` in Å (eV)."""
        return self.a * ((x - self.c) ** 2 - self.b**2) ** 2

    def check_state(self, atoms, tol=1e-15):
        """Cheap cache check (positions only): the toy's cost is ASE's overhead."""
        same = self.atoms is not None and np.array_equal(
            self.atoms.positions, atoms.positions
        )
        return [] if same else ["positions"]

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        """Energy and forces of the double well."""
        super().calculate(atoms, properties, system_changes)
        u = self.atoms.positions[1, 0] - self.atoms.positions[0, 0] - self.c
        grad = 4 * self.a * u * (u * u - self.b**2)
        forces = np.zeros((2, 3))
        forces[0, 0], forces[1, 0] = grad, -grad
        e = float(self.potential(u + self.c))
        self.results = {"energy": e, "free_energy": e, "forces": forces}


def double_well_atoms(mass: float = 2.0) -> Atoms:
    """Atom 0 fixed, atom 1 moving along x only: the distance is exactly 1D."""
    atoms = Atoms("HH", positions=[[0, 0, 0], [1.5, 0, 0]], masses=[mass, mass])
    atoms.set_constraint([FixAtoms([0]), FixCartesian(1, mask=(False, True, True))])
    return atoms


def run_double_well(
    tmp_path: Path,
    n_steps: int,
    a: float,
    seed: int = 1,
    restart: bool = False,
    **settings,
):
    """Well-tempered metadynamics of the toy on the distance (0-based atoms 0, 1)."""
    kwargs = {
        "height_kJmol": 1.5,
        "sigma": (0.015,),
        "biasfactor": 5.0,
        "pace": 100,
        "colvar_stride": 5,
        "grid": ((0.05, 0.45),),
        **settings,
    }
    lines = metad.build_plumed_input(
        [metad.parse_cv("distance:0,1")], metad.MetadynamicsSettings(**kwargs)
    )
    calc = DoubleWell(a=a)
    run = metad.run_metadynamics(
        double_well_atoms(),
        calc,
        lines,
        n_steps,
        tmp_path,
        temperature_K=300,
        timestep=4 * units.fs,
        friction=0.02 / units.fs,
        seed=seed,
        restart=restart,
    )
    return run, calc


def max_deviation_kT(surface: fes.FreeEnergySurface, calc: DoubleWell) -> float:
    """Max |F - V| in kT over the sampled range |x - c| <= 1.3 Å, minima at 0."""
    x = surface.axes[0] * 10.0  # nm -> Å
    sel = (np.abs(x - calc.c) <= 1.3) & np.isfinite(surface.free_energy)
    dev = surface.free_energy[sel] - calc.potential(x[sel])
    return float(np.abs(dev).max() / surface.kT)


# ------------------------------------------------------------------ no kernel
def test_unit_constants_match_ase_plumed() -> None:
    """PLUMED units in ASE units, and the setMD*Units ASE's Plumed calculator sends."""
    assert pytest.approx(0.01036427, rel=1e-6) == metad.KJMOL  # eV per kJ/mol
    assert pytest.approx(10.0) == metad.NM
    assert metad.PS / units.fs == pytest.approx(1000.0)
    md = metad.plumed_md_units()
    assert md["setMDEnergyUnits"] == pytest.approx(units.mol / units.kJ)
    assert md["setMDLengthUnits"] == pytest.approx(1 / units.nm)
    assert md["setMDTimeUnits"] == pytest.approx(1 / (1000 * units.fs))
    assert metad.kT_kJmol(300) == pytest.approx(2.494339, rel=1e-5)


def test_parse_cv_zero_based_to_plumed() -> None:
    """0-based indices in the API, 1-based in the PLUMED input; labels and units."""
    assert metad.parse_cv("torsion:4,6,8,14").to_plumed(Path(".")) == [
        "cv1: TORSION ATOMS=5,7,9,15"
    ]
    assert metad.parse_cv("d=distance:0,1").to_plumed(Path("."))[0].startswith("d: ")
    cv = metad.parse_cv("coordination:0,1;2-4(2.5A)")
    assert cv.r0_nm == pytest.approx(0.25)
    assert "GROUPA=1,2 GROUPB=3,4,5 R_0=0.25" in cv.to_plumed(Path("."))[0]
    assert metad.parse_cv("coordination:0;1(0.3)").r0_nm == pytest.approx(0.3)
    for bad in ("torsion:1,2,3", "distance:-1,2", "foo:1,2", "angle", "rmsd:"):
        with pytest.raises(ValueError, match="CV spec"):
            metad.parse_cv(bad)


def test_build_input_torsions_get_grid_and_rct() -> None:
    """Two torsions: one METAD with per-CV sigma, ±π grid, rbias printed."""
    cvs = [
        metad.parse_cv("phi=torsion:4,6,8,14"),
        metad.parse_cv("psi=torsion:6,8,14,16"),
    ]
    settings = metad.MetadynamicsSettings(sigma=(0.35,), biasfactor=6, pace=500)
    lines = metad.build_plumed_input(cvs, settings)
    line = next(x for x in lines if "METAD" in x)
    assert "ARG=phi,psi" in line
    assert "SIGMA=0.35,0.35" in line
    assert "GRID_MIN=-pi,-pi GRID_MAX=pi,pi CALC_RCT" in line
    assert "metad.rbias" in lines[-1]
    with pytest.raises(ValueError, match="biasfactor"):
        metad.MetadynamicsSettings(biasfactor=1.0)


# ------------------------------------------------------------------ real kernel
@pytest.mark.plumed
def test_kernel_environment_not_leaked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing plumed leaves PLUMED_KERNEL unset; a user's value wins; bad named."""
    pytest.importorskip("plumed")
    monkeypatch.delenv("PLUMED_KERNEL", raising=False)
    kernel = metad.find_plumed_kernel()
    assert Path(kernel).is_file()
    assert "PLUMED_KERNEL" not in os.environ
    monkeypatch.setenv("PLUMED_KERNEL", kernel)
    assert metad.find_plumed_kernel() == kernel
    monkeypatch.setenv("PLUMED_KERNEL", "/nonexistent/libplumedKernel.so")
    with pytest.raises(ImportError, match="hillclimber"):
        metad.find_plumed_kernel()
    assert os.environ["PLUMED_KERNEL"] == "/nonexistent/libplumedKernel.so"


@pytest.mark.plumed
def test_plumed_input_error_is_python_exception(tmp_path: Path) -> None:
    """PLUMED's own message comes back as PlumedInputError, the interpreter survives."""
    pytest.importorskip("plumed")
    atoms = double_well_atoms()
    for line, expected in (
        ("x: FOOBAR ATOMS=1,2", "FOOBAR"),
        ("d: DISTANCE ATOMS=1,3", "out of range"),
    ):
        with pytest.raises(metad.PlumedInputError, match=expected):
            metad.run_metadynamics(atoms, DoubleWell(), [line], 2, tmp_path)


@pytest.mark.plumed
def test_units_masses_and_virial_through_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restraint in PLUMED units gives the analytic bias in eV and eV/Å; ENERGY,
    masses and the virial (stress vs finite differences) cross the boundary right."""
    pytest.importorskip("plumed")
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.fd import calculate_numerical_stress

    atoms = bulk("Cu", cubic=True)
    atoms.rattle(0.05, seed=1)
    atoms.set_masses([7.5, 63.546, 63.546, 63.546])
    kappa, at = 500.0, 0.24  # kJ/mol/nm², nm
    lines = [
        "d: DISTANCE ATOMS=1,2",
        "e: ENERGY",
        "v: VOLUME",
        f"RESTRAINT ARG=d AT={at} KAPPA={kappa}",
        "RESTRAINT ARG=v AT=0.05 KAPPA=2e5",
        "DUMPMASSCHARGE FILE=masses ONLY_MASSES",
        "PRINT ARG=d,e FILE=COLVAR",
    ]
    monkeypatch.chdir(tmp_path)
    atoms.calc = metad.make_plumed_calculator(atoms, EMT(), lines, 1.0 * units.fs, 300)
    e_unbiased = EMT().get_potential_energy(atoms.copy())
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    stress = atoms.get_stress()
    numeric = calculate_numerical_stress(atoms, eps=1e-5)
    atoms.calc.plumed.finalize()
    d_nm = atoms.get_distance(0, 1, mic=True) / metad.NM
    v_nm3 = atoms.get_volume() / metad.NM**3
    bias_kJmol = 0.5 * kappa * (d_nm - at) ** 2 + 0.5 * 2e5 * (v_nm3 - 0.05) ** 2
    assert energy - e_unbiased == pytest.approx(bias_kJmol * metad.KJMOL, rel=1e-6)
    unit = atoms.get_distance(0, 1, mic=True, vector=True) / (d_nm * metad.NM)
    f_bias = forces[1] - EMT().get_forces(atoms.copy())[1]
    radial = -kappa * (d_nm - at) * metad.KJMOL / metad.NM  # eV/Å on atom 2
    assert np.dot(f_bias, unit) == pytest.approx(radial, rel=1e-3)
    np.testing.assert_allclose(stress, numeric, atol=1e-7)
    colvar = fes.read_plumed_file(tmp_path / "COLVAR")
    assert colvar["d"][0] == pytest.approx(d_nm, rel=1e-6)
    assert colvar["e"][0] == pytest.approx(e_unbiased / metad.KJMOL, rel=1e-5)
    masses = np.loadtxt(tmp_path / "masses")
    np.testing.assert_allclose(masses[:, 1], atoms.get_masses())


@pytest.mark.plumed
def test_every_cv_shorthand_matches_ase_geometry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each shorthand, run through PLUMED, equals ASE's geometry (0-based, nm, rad)."""
    pytest.importorskip("plumed")
    from ase.build import molecule
    from ase.calculators.emt import EMT
    from ase.io import write

    atoms = molecule("CH3CH2OH")
    write(tmp_path / "ref.xyz", atoms)
    specs = [
        "distance:0,1",
        "angle:0,1,2",
        "torsion:3,0,1,2",
        "coordination:0;1-3(1.5A)",
        f"rmsd:{tmp_path / 'ref.xyz'}",
    ]
    cvs = [metad.parse_cv(spec, f"c{k}") for k, spec in enumerate(specs)]
    lines = [line for cv in cvs for line in cv.to_plumed(tmp_path)]
    lines.append(f"PRINT ARG={','.join(cv.label for cv in cvs)} FILE=COLVAR")
    monkeypatch.chdir(tmp_path)
    moved = atoms.copy()
    moved.positions[4] += [0.0, 0.0, 0.3]
    moved.calc = metad.make_plumed_calculator(moved, EMT(), lines, units.fs, 300)
    moved.get_forces()
    moved.calc.plumed.finalize()
    values = fes.read_plumed_file(tmp_path / "COLVAR").data[0, 1:]
    dihedral = (moved.get_dihedral(3, 0, 1, 2) + 180) % 360 - 180
    assert values[0] == pytest.approx(moved.get_distance(0, 1) / metad.NM, rel=1e-5)
    assert values[1] == pytest.approx(np.radians(moved.get_angle(0, 1, 2)), rel=1e-5)
    assert values[2] == pytest.approx(np.radians(dihedral), abs=1e-5)
    r = moved.get_distances(0, [1, 2, 3]) / 1.5
    assert values[3] == pytest.approx(np.sum((1 - r**6) / (1 - r**12)), rel=1e-4)
    rmsd_unaligned = np.sqrt(0.3**2 / len(atoms)) / metad.NM  # nm
    assert 0.5 * rmsd_unaligned < values[4] <= rmsd_unaligned + 1e-6


@pytest.mark.plumed
def test_restart_extends_without_losing_bias(tmp_path: Path) -> None:
    """Extend a run from its HILLS and last frame: bias continuous, hills appended."""
    pytest.importorskip("plumed")
    settings = {"pace": 50, "colvar_stride": 1}
    run1, _ = run_double_well(tmp_path, 610, a=0.078, **settings)  # last hill: step 600
    c1 = fes.read_plumed_file(run1.colvar)
    assert len(fes.read_plumed_file(run1.hills).data) == 12
    assert c1["metad.bias"][-1] > 0.1
    ext, _ = run_double_well(tmp_path, 610, a=0.078, restart=True, **settings)
    assert ext.total_steps == 1220
    c2 = fes.read_plumed_file(ext.colvar)
    first_new = len(c1.data)  # rows of the extension follow the first run's rows
    assert c2["time"][first_new] > c2["time"][first_new - 1]
    # same configuration, same hills: the bias picks up where it stopped
    assert c2["metad.bias"][first_new] == pytest.approx(
        c2["metad.bias"][first_new - 1], rel=1e-6
    )
    assert len(fes.read_plumed_file(ext.hills).data) == 24


@pytest.mark.plumed
def test_restart_with_another_calculator_is_refused(tmp_path: Path) -> None:
    """Extending with another energy surface would mix two models' hills: refused."""
    pytest.importorskip("plumed")
    run_double_well(tmp_path, 60, a=0.078, pace=20)
    hills = (tmp_path / "HILLS").read_text()
    with pytest.raises(ValueError, match=r"cannot resume: .*DoubleWell.*a.*0\.05"):
        run_double_well(tmp_path, 60, a=0.05, restart=True, pace=20)
    assert (tmp_path / "HILLS").read_text() == hills  # nothing was appended
    ext, _ = run_double_well(tmp_path, 60, a=0.078, restart=True, pace=20)
    assert ext.total_steps == 120


@pytest.mark.plumed
def test_double_well_free_energy_matches_analytic(tmp_path: Path) -> None:
    """3 kT double well: reweighted FES within 0.5 kT, hills sum within 1 kT."""
    pytest.importorskip("plumed")
    run, calc = run_double_well(tmp_path, 20000, a=0.078)
    ranges = [(0.11, 0.39)]
    reweighted = fes.fes_from_colvar(run.colvar, 300, ranges=ranges, bins=28)
    assert max_deviation_kT(reweighted, calc) < 0.5
    summed = fes.fes_from_hills(run.hills, 300, ranges=ranges, bins=57)
    assert max_deviation_kT(summed, calc) < 1.0
    summary = fes.summarize(summed)
    minima = sorted(m["cv"]["cv1"] for m in summary["minima"])
    # flat well bottoms: 0.02 nm off the minimum, V is only 0.5 kT higher
    assert minima == pytest.approx([0.15, 0.35], abs=0.02)  # nm
    barrier = summary["barriers"][0]["forward"]["kT"]
    assert barrier == pytest.approx(calc.a / (units.kB * 300), abs=0.5)


@pytest.mark.slow
@pytest.mark.plumed
def test_double_well_5kT_hills_within_half_kT(tmp_path: Path) -> None:
    """5 kT barrier, longer run: the summed hills themselves within 0.5 kT."""
    pytest.importorskip("plumed")
    run, calc = run_double_well(tmp_path, 60000, a=0.13)
    summed = fes.fes_from_hills(run.hills, 300, ranges=[(0.11, 0.39)], bins=57)
    assert max_deviation_kT(summed, calc) < 0.5
    reweighted = fes.fes_from_colvar(run.colvar, 300, ranges=[(0.11, 0.39)], bins=28)
    assert max_deviation_kT(reweighted, calc) < 0.5


# ------------------------------------------------------------------------ CLI
@pytest.mark.plumed
def test_cli_metad_fes_raw_input_restart_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eformer metad` (shorthand and raw input), `--restart`, `eformer fes`, errors."""
    pytest.importorskip("plumed")
    import json

    from ase.io import write

    from asecalc.cli.main import main

    structure = tmp_path / "dimer.xyz"
    write(structure, Atoms("Ar2", positions=[[0, 0, 0], [1.12, 0, 0]]))
    out = tmp_path / "m1"
    common = ["--calc", "lj", "--steps", "300", "--timestep", "1", "--output-dir"]
    argv = [
        "metad",
        str(structure),
        "--cv",
        "d=distance:0,1",
        "--sigma",
        "0.005",
        "--height",
        "0.5",
        "--pace",
        "20",
        *common,
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["total_steps"] == 300
    assert summary["wall_hours_per_ns"] > 0
    assert "d: DISTANCE ATOMS=1,2" in (out / "plumed.dat").read_text()
    assert len(fes.read_plumed_file(out / "HILLS").data) == 15
    assert main(["metad", str(structure), "--restart", *common, str(out)]) == 0
    assert len(fes.read_plumed_file(out / "HILLS").data) == 30
    assert (
        main(["fes", str(out / "HILLS"), "--json", "--output-dir", str(tmp_path / "f")])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["cv_names"] == ["d"]
    assert result["minima"]
    assert (tmp_path / "f" / "fes.png").is_file()

    raw = tmp_path / "my_plumed.dat"
    raw.write_text(
        "# a comment\nd: DISTANCE ATOMS=1,2\nMETAD ...\n  LABEL=m ARG=d SIGMA=0.005\n"
        "  HEIGHT=0.5 PACE=10 FILE=HILLS\n...\n"
        "PRINT ARG=d,m.bias STRIDE=5 FILE=COLVAR\n"
    )
    assert (
        main(
            [
                "metad",
                str(structure),
                "--plumed-input",
                str(raw),
                *common,
                str(tmp_path / "m2"),
            ]
        )
        == 0
    )
    assert len(fes.read_plumed_file(tmp_path / "m2" / "HILLS").data) == 30
    assert fes.read_plumed_file(tmp_path / "m2" / "COLVAR").fields == [
        "time",
        "d",
        "m.bias",
    ]
    raw.write_text("d: DISTANCE ATOMS=1,2\nWRONGACTION ARG=d\n")
    assert (
        main(
            [
                "metad",
                str(structure),
                "--plumed-input",
                str(raw),
                *common,
                str(tmp_path / "m3"),
            ]
        )
        == 2
    )
    assert "WRONGACTION" in capsys.readouterr().err
