"""Tests of analysis.nve, analysis.jacobian and ``eformer nve`` on cheap physics.

Threshold for a conservative force field: velocity Verlet conserves a shadow
Hamiltonian, so the total energy oscillates with an amplitude of order
``(ω dt)² / 4`` times the vibrational energy (``3 kB T`` per atom) and does not
drift (Hairer, Lubich & Wanner 2003). For Cu (highest phonon about 7.5 THz,
ω dt = 0.094 at 2 fs) at 300 K that bounds the error at 0.17 meV/atom, so over a
run of length τ a conservative calculator must show |drift| < 0.17 meV/atom / τ.
EMT measures 1e-3 meV/atom/ps, about 300 times below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.io import read

from analysis.jacobian import CurlForceCalculator, force_jacobian, jacobian_asymmetry
from analysis.nve import DriftReport, run_nve
from asecalc.cli.main import main

CU_OMEGA_MAX = 2 * np.pi * 7.5e12 * 1e-15 / units.fs  # rad per ASE time unit


def verlet_error_bound(timestep: float, temperature_K: float) -> float:
    """Verlet energy-error amplitude (ω dt)² / 4 · 3 kB T in meV/atom for Cu."""
    return (CU_OMEGA_MAX * timestep) ** 2 / 4 * 3 * units.kB * temperature_K * 1e3


class GaussianWellCalculator(Calculator):
    """Pair attraction ``-depth exp(-r²/2σ²)`` with no repulsion: atoms collapse."""

    implemented_properties = ["energy", "forces"]  # noqa: RUF012

    def __init__(self, depth: float = 2.0, sigma: float = 2.0) -> None:
        super().__init__()
        self.depth, self.sigma = depth, sigma

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        positions = self.atoms.get_positions()
        delta = positions[:, None, :] - positions[None, :, :]  # (n, n, 3) r_i - r_j
        r2 = (delta**2).sum(-1)
        pair = -self.depth * np.exp(-r2 / (2 * self.sigma**2))  # (n, n)
        np.fill_diagonal(pair, 0.0)
        self.results["energy"] = 0.5 * pair.sum()
        # F_i = -dE/dr_i = sum_j pair_ij (r_i - r_j) / sigma^2
        self.results["forces"] = (pair[:, :, None] * delta).sum(1) / self.sigma**2


@pytest.fixture
def cu_bulk() -> Atoms:
    return bulk("Cu", cubic=True).repeat(2)


@pytest.fixture
def cu_cluster() -> Atoms:
    return Icosahedron("Cu", 2)


def test_emt_drift_below_verlet_bound(cu_bulk, tmp_path):
    timestep = 2.0 * units.fs
    report = run_nve(
        cu_bulk, EMT(), 300.0, timestep, n_steps=300, output_dir=tmp_path,
        jacobian_frames=1,
    )  # fmt: skip
    assert not report.exploded
    bound = verlet_error_bound(timestep, 300.0)
    assert abs(report.drift_meV_per_atom_per_ps) * report.duration_ps < bound
    assert report.max_excursion_meV_per_atom < bound
    assert report.jacobian_asymmetry is not None
    assert report.jacobian_asymmetry < 1e-5
    # started on the lattice: equipartition leaves about T/2
    assert 0.25 * 300 < report.temperature_K_mean < 0.8 * 300
    assert report.min_distance_A > 2.0
    frames = read(tmp_path / "nve.traj", ":")
    assert len(frames) == 31
    assert (tmp_path / "energies.png").stat().st_size > 1000
    json.dumps(report.to_dict(), allow_nan=False)


def test_langevin_equilibration_reaches_temperature(cu_bulk):
    # without equilibration a lattice start ends near T/2 (equipartition);
    # 10 friction times of Langevin bring the NVE run to about T
    report = run_nve(
        cu_bulk, EMT(), 600.0, 2.0 * units.fs, n_steps=100, equilibration_steps=100,
        friction=0.05 / units.fs, jacobian_frames=0,
    )  # fmt: skip
    assert 0.7 * 600 < report.temperature_K_mean < 1.4 * 600
    assert not report.exploded


def test_verlet_error_scales_as_timestep_squared(cu_bulk):
    fluctuation = []
    for dt_fs, n_steps in ((1.0, 240), (2.0, 120)):
        report = run_nve(
            cu_bulk, EMT(), 300.0, dt_fs * units.fs, n_steps, jacobian_frames=0
        )
        fluctuation.append(report.fluctuation_meV_per_atom)
    assert 2.5 < fluctuation[1] / fluctuation[0] < 6.5


def test_force_jacobian_of_curl_field_is_analytic(cu_cluster):
    strength = 0.3
    cu_cluster.rattle(0.05, seed=1)
    cu_cluster.calc = EMT()
    base = force_jacobian(cu_cluster)
    cu_cluster.calc = CurlForceCalculator(EMT(), strength)
    curl = force_jacobian(cu_cluster)
    # F_rot = c (-y, x, 0): J_xy = -dF_x/dy = c, J_yx = -c on every atom
    block = np.zeros((3, 3))
    block[0, 1], block[1, 0] = strength, -strength
    expected = np.kron(np.eye(len(cu_cluster)), block)
    np.testing.assert_allclose(curl - base, expected, atol=1e-6)
    np.testing.assert_allclose(base, base.T, atol=1e-5)


def test_non_conservative_calculator_heats_and_is_flagged(cu_cluster):
    common = {"temperature_K": 300.0, "timestep": 1.0 * units.fs, "n_steps": 300}
    conservative = run_nve(cu_cluster, EMT(), **common)
    curl = run_nve(cu_cluster, CurlForceCalculator(EMT(), 0.1), **common)
    assert conservative.jacobian_asymmetry < 1e-5
    assert curl.jacobian_asymmetry > 1e-2
    assert abs(conservative.drift_meV_per_atom_per_ps) < 1.0
    assert curl.drift_meV_per_atom_per_ps > 100.0
    assert curl.temperature_slope_K_per_ps > 500.0
    assert curl.drift_to_kinetic_fluctuation > 1.0
    assert conservative.drift_to_kinetic_fluctuation < 0.05


def test_collapse_is_detected_and_last_good_frame_saved(cu_cluster, tmp_path):
    report = run_nve(
        cu_cluster, GaussianWellCalculator(), 300.0, 1.0 * units.fs, n_steps=2000,
        output_dir=tmp_path, check_interval=5, jacobian_frames=0,
    )  # fmt: skip
    assert report.exploded
    assert "apart" in report.explosion_reason
    assert report.n_steps < 2000
    last_good = read(tmp_path / "last_good.xyz")
    distances = last_good.get_all_distances()[np.triu_indices(len(last_good), 1)]
    assert distances.min() >= 0.5
    assert last_good.get_momenta().any()
    assert Path(report.files["last_good"]) == tmp_path / "last_good.xyz"


def test_force_threshold_stops_run(cu_bulk):
    cu_bulk.rattle(0.1, seed=0)
    report = run_nve(cu_bulk, EMT(), 300.0, 1.0 * units.fs, 50, max_force=0.05)
    assert report.exploded
    assert "max_force" in report.explosion_reason
    assert report.n_steps == 0


def test_timestep_in_femtoseconds_is_rejected(cu_bulk):
    with pytest.raises(ValueError, match=r"units\.fs"):
        run_nve(cu_bulk, EMT(), timestep=2.0, n_steps=10)
    with pytest.raises(ValueError, match="calc"):
        run_nve(cu_bulk, None, n_steps=10)


def test_jacobian_asymmetry_large_system_uses_local_cluster():
    atoms = bulk("Cu", cubic=True).repeat(3)  # 108 atoms > 32
    atoms.rattle(0.05, seed=2)
    atoms.calc = CurlForceCalculator(EMT(), 0.5)
    assert jacobian_asymmetry(atoms, max_atoms=8) > 0.02
    atoms.calc = EMT()
    assert jacobian_asymmetry(atoms, max_atoms=8) < 1e-5


def test_cli_nve_emt_json(cu_bulk, tmp_path, capsys):
    structure = tmp_path / "cu.xyz"
    cu_bulk.write(structure)
    out = tmp_path / "out"
    code = main(
        ["nve", str(structure), "--calc", "emt", "--timestep", "2", "--steps", "60",
         "--jacobian-frames", "1", "--output-dir", str(out), "--json"]
    )  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    for key in (
        "drift_meV_per_atom_per_ps", "fluctuation_meV_per_atom",
        "max_excursion_meV_per_atom", "temperature_K_mean", "n_atoms",
        "steps_per_s", "exploded", "drift_to_kinetic_fluctuation",
        "jacobian_asymmetry",
    ):  # fmt: skip
        assert key in data
    assert data["n_atoms"] == 32
    assert data["timestep_fs"] == pytest.approx(2.0)
    assert data["exploded"] is False
    assert data["jacobian_asymmetry"] < 1e-5
    assert json.loads((out / "report.json").read_text())["n_steps"] == 60
    assert (out / "nve.traj").exists()
    assert (out / "energies.png").exists()


def test_cli_nve_blow_up_exits_nonzero(cu_bulk, tmp_path, capsys):
    structure = tmp_path / "cu.xyz"
    cu_bulk.write(structure)
    code = main(
        ["nve", str(structure), "--calc", "emt", "--steps", "20", "--max-force",
         "1e-6", "--jacobian-frames", "0", "--output-dir", str(tmp_path / "o")]
    )  # fmt: skip
    assert code == 2
    assert "blew up" in capsys.readouterr().err
    assert (tmp_path / "o" / "last_good.xyz").exists()


# --- checkpoint and resume -------------------------------------------------------

#: Settings of the resume tests: 13-atom EMT cluster, 200 steps of 1 fs in total.
RESUME_RUN = {"temperature_K": 300.0, "timestep": 1.0 * units.fs, "jacobian_frames": 3}
#: Report fields that differ between a run in one go and a resumed one.
UNEQUAL_FIELDS = {"wall_time_s", "steps_per_s", "files"}


class SimulatedKill(Exception):
    """Stands for the SIGKILL that ends a work session in the middle of a step."""


class KilledEMT(Calculator):
    """EMT that raises :class:`SimulatedKill` at its ``(n_calls + 1)``-th evaluation.

    A failure injection around the real EMT (one evaluation per MD step).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "forces"]

    def __init__(self, n_calls: int) -> None:
        super().__init__()
        self.emt, self.n_calls, self.calls = EMT(), n_calls, 0

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.calls > self.n_calls:
            raise SimulatedKill(f"killed in evaluation {self.calls}")
        self.results = {
            "energy": self.emt.get_potential_energy(self.atoms),
            "forces": self.emt.get_forces(self.atoms),
        }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[DriftReport, Path]:
    """200 NVE steps in one go, without checkpoints, and its output directory."""
    output = tmp_path_factory.mktemp("uninterrupted")
    report = run_nve(
        Icosahedron("Cu", 2), EMT(), n_steps=200, output_dir=output, **RESUME_RUN
    )
    return report, output


def assert_same_run(resumed: DriftReport, output: Path, uninterrupted) -> None:
    """Same energy series, report (but wall time) and nve.traj as one run."""
    reference, reference_dir = uninterrupted
    np.testing.assert_allclose(
        resumed.potential_energy, reference.potential_energy, rtol=0, atol=1e-10
    )
    np.testing.assert_allclose(
        resumed.kinetic_energy, reference.kinetic_energy, rtol=0, atol=1e-10
    )
    expected = reference.to_dict()
    for key, value in resumed.to_dict().items():
        if key in UNEQUAL_FIELDS:
            continue
        if isinstance(value, float) or key == "jacobian_asymmetry_frames":
            assert value == pytest.approx(expected[key], rel=1e-8, abs=1e-12), key
        else:
            assert value == expected[key], key
    frames = read(output / "nve.traj", ":")
    reference_frames = read(reference_dir / "nve.traj", ":")
    assert len(frames) == len(reference_frames) == 21
    for frame, reference_frame in zip(frames, reference_frames, strict=True):
        np.testing.assert_allclose(
            frame.positions, reference_frame.positions, rtol=0, atol=1e-10
        )


def test_resumed_run_reproduces_uninterrupted_run(tmp_path, uninterrupted):
    first = run_nve(
        Icosahedron("Cu", 2), EMT(), n_steps=120, output_dir=tmp_path,
        checkpoint_interval=40, **RESUME_RUN,
    )  # fmt: skip
    with np.load(tmp_path / "nve_checkpoint.npz") as checkpoint:
        meta = json.loads(str(checkpoint["meta"]))
        assert checkpoint["potential_energy"].shape == (121,)
        np.testing.assert_array_equal(
            checkpoint["kinetic_energy"], first.kinetic_energy
        )
        assert checkpoint["momenta"].shape == (13, 3)
        assert checkpoint["momenta"].any()
    assert meta["steps_done"] == 120
    assert meta["arguments"]["timestep"] == pytest.approx(1.0 * units.fs)
    assert meta["checkpoint_interval"] == 40
    # a larger n_steps extends the finished run; the stored interval is kept
    resumed = run_nve(
        Icosahedron("Cu", 2), EMT(), n_steps=200, output_dir=tmp_path, resume=True,
        **RESUME_RUN,
    )  # fmt: skip
    assert_same_run(resumed, tmp_path, uninterrupted)
    assert resumed.n_steps == resumed.n_steps_requested == 200
    assert resumed.wall_time_s > first.wall_time_s
    with np.load(tmp_path / "nve_checkpoint.npz") as checkpoint:
        assert json.loads(str(checkpoint["meta"]))["steps_done"] == 200


def test_killed_run_resumes_where_it_stopped(tmp_path, uninterrupted):
    # evaluation k + 1 is step k: killed in step 100, after the checkpoint at 80
    with pytest.raises(SimulatedKill):
        run_nve(
            Icosahedron("Cu", 2), KilledEMT(n_calls=100), n_steps=200,
            output_dir=tmp_path, checkpoint_interval=40, **RESUME_RUN,
        )  # fmt: skip
    with np.load(tmp_path / "nve_checkpoint.npz") as checkpoint:
        assert json.loads(str(checkpoint["meta"]))["steps_done"] == 80
    assert len(read(tmp_path / "nve.traj", ":")) == 10  # steps 0 to 90
    resumed = run_nve(  # same calculator class (a resume checks it), no kill now
        Icosahedron("Cu", 2), KilledEMT(n_calls=10**9), n_steps=200,
        output_dir=tmp_path, checkpoint_interval=40, resume=True, **RESUME_RUN,
    )  # fmt: skip
    assert_same_run(resumed, tmp_path, uninterrupted)


def test_resume_rejects_other_runs(cu_cluster, cu_bulk, tmp_path):
    common = {"temperature_K": 300.0, "jacobian_frames": 0, "output_dir": tmp_path}
    run_nve(
        cu_cluster, EMT(), timestep=1.0 * units.fs, n_steps=20,
        checkpoint_interval=10, **common,
    )  # fmt: skip
    mismatches = [  # (structure, timestep in fs, n_steps, seed, expected message)
        (cu_cluster, 2.0, 40, 0, r"timestep=.*\(1 fs vs 2 fs\)"),
        (cu_cluster, 1.0, 40, 1, "seed=0, this call has seed=1"),
        (cu_bulk, 1.0, 40, 0, r"holds 13 atoms \(Cu13\)"),
        (cu_cluster, 1.0, 10, 0, "holds 20 NVE steps"),
    ]
    for atoms, timestep_fs, n_steps, seed, message in mismatches:
        with pytest.raises(ValueError, match=message):
            run_nve(
                atoms, EMT(), timestep=timestep_fs * units.fs, n_steps=n_steps,
                resume=True, seed=seed, **common,
            )  # fmt: skip
    from ase.calculators.lj import LennardJones

    with pytest.raises(
        ValueError, match=r"calculator EMT:.*this call has LennardJones"
    ):
        run_nve(
            cu_cluster, LennardJones(), timestep=1.0 * units.fs, n_steps=40,
            resume=True, **common,
        )  # fmt: skip
    with pytest.raises(FileExistsError, match=r"resume=True \(--resume\)"):
        run_nve(cu_cluster, EMT(), timestep=1.0 * units.fs, n_steps=20, **common)
    with pytest.raises(FileNotFoundError, match="no NVE checkpoint"):
        run_nve(cu_cluster, EMT(), n_steps=40, resume=True, output_dir=tmp_path / "new")
    with pytest.raises(ValueError, match="need output_dir"):
        run_nve(cu_cluster, EMT(), n_steps=40, checkpoint_interval=10)


def test_cli_nve_resume_round_trip(cu_cluster, tmp_path, capsys):
    structure = tmp_path / "cu13.xyz"
    cu_cluster.write(structure)
    base = ["nve", str(structure), "--calc", "emt", "--timestep", "1",
            "--jacobian-frames", "0", "--json"]  # fmt: skip
    code = main([*base, "--steps", "100", "--output-dir", str(tmp_path / "full")])
    assert code == 0
    full = json.loads(capsys.readouterr().out)
    piece = [*base, "--checkpoint-interval", "20", "--output-dir", str(tmp_path / "o")]
    assert main([*piece, "--steps", "60"]) == 0
    assert json.loads(capsys.readouterr().out)["n_steps"] == 60
    assert main([*piece, "--steps", "100", "--resume"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["n_steps"] == 100
    for key in ("drift_meV_per_atom_per_ps", "fluctuation_meV_per_atom",
                "max_excursion_meV_per_atom", "temperature_K_mean"):  # fmt: skip
        assert resumed[key] == pytest.approx(full[key], rel=1e-8), key
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["drift_meV_per_atom_per_ps"] == resumed["drift_meV_per_atom_per_ps"]
    assert report["files"]["checkpoint"] == str(tmp_path / "o" / "nve_checkpoint.npz")
    assert len(read(tmp_path / "o" / "nve.traj", ":")) == 11
    code = main([*base, "--steps", "100", "--resume", "--output-dir",
                 str(tmp_path / "empty")])  # fmt: skip
    assert code == 2
    assert "no NVE checkpoint" in capsys.readouterr().err
