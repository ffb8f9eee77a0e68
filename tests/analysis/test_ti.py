"""Thermodynamic integration, Frenkel–Ladd and the ``eformer ti`` command.

Science checks: harmonic → harmonic against the analytic ΔF, Frenkel–Ladd of
EMT Cu against the classical harmonic free energy from phonopy's Γ-point
frequencies of the MD cell (3 zero modes dropped, as the MD fixes the centre of
mass), resume after a damaged window, and MBAR agreeing with TI.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.harmonic import SpringCalculator
from ase.calculators.lj import LennardJones

from analysis.statistics import (
    analyse_series,
    block_average_error,
    detect_equilibration,
    integrated_autocorrelation_time,
)
from analysis.ti import (
    EinsteinCalculator,
    LambdaCalculator,
    frenkel_ladd,
    gauss_legendre,
    integrate,
    plot_dudl,
    trapezoid,
)

A_CU = 3.59  # Å, near the EMT minimum


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    x = np.empty(n)
    x[0] = rng.normal()
    noise = rng.normal(size=n) * np.sqrt(1 - phi**2)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    return x


def _phonopy_classical_free_energy(atoms: Atoms, temperature_K: float) -> float:
    """U0 + k_B T Σ ln(ħω/k_B T) in eV over the Γ modes of the cell but 3 zero modes."""
    phonopy = pytest.importorskip("phonopy")
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell[:],
        scaled_positions=atoms.get_scaled_positions(),
    )
    ph = phonopy.Phonopy(
        unit, supercell_matrix=np.eye(3, dtype=int), primitive_matrix="P"
    )
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        displaced = Atoms(
            sc.symbols,
            cell=sc.cell,
            scaled_positions=sc.scaled_positions,
            pbc=True,
            calculator=EMT(),
        )
        forces.append(displaced.get_forces())
    ph.forces = forces
    ph.produce_force_constants()
    ph.run_qpoints([[0.0, 0.0, 0.0]])
    freqs_thz = np.sort(ph.qpoints.frequencies[0])
    assert np.all(np.abs(freqs_thz[:3]) < 1e-3)
    assert np.all(freqs_thz[3:] > 0.1)
    omega = 2 * np.pi * freqs_thz[3:] * 1e12  # rad/s
    hbar = units._hbar / units._e  # eV s
    kt = units.kB * temperature_K
    ref = atoms.copy()
    ref.calc = EMT()
    return ref.get_potential_energy() + kt * np.sum(np.log(hbar * omega / kt))


def test_quadrature_rules():
    nodes, weights = gauss_legendre(4)
    assert np.isclose(weights.sum(), 1.0)
    assert np.isclose(weights @ nodes**7, 1 / 8)  # exact to degree 2n - 1
    quad = trapezoid([0.0, 0.25, 1.0])
    assert np.allclose(quad.weights, [0.125, 0.5, 0.375])
    with pytest.raises(ValueError, match="start at 0"):
        trapezoid([0.1, 1.0])
    with pytest.raises(ValueError, match="positive integer"):
        gauss_legendre(0)


def test_statistics_on_ar1_process():
    rng = np.random.default_rng(1)
    phi = 0.8
    x = _ar1(rng, 40_000, phi)
    tau_exact = 0.5 * (1 + phi) / (1 - phi)  # 4.5 samples
    assert integrated_autocorrelation_time(x) == pytest.approx(tau_exact, rel=0.15)
    acf_error = np.sqrt(np.var(x) * 2 * tau_exact / x.size)
    assert block_average_error(x) == pytest.approx(acf_error, rel=0.3)
    assert integrated_autocorrelation_time(rng.normal(size=5000)) < 0.8
    shifted = x[:4000].copy()
    shifted[:300] += 8.0 * np.exp(-np.arange(300) / 60.0)  # decaying transient
    t0, _ = detect_equilibration(shifted)
    assert 60 <= t0 <= 1000
    stats = analyse_series(shifted)
    assert abs(stats.mean) < 5 * stats.error


def test_lambda_calculator_mixes_energy_forces_stress():
    atoms = bulk("Cu", "fcc", a=A_CU, cubic=True)
    atoms.rattle(0.05, seed=3)
    ref_a, ref_b = atoms.copy(), atoms.copy()
    ref_a.calc, ref_b.calc = EMT(), LennardJones(sigma=2.3, epsilon=0.4, rc=6.0)
    mixed = atoms.copy()
    mixed.calc = LambdaCalculator(
        EMT(), LennardJones(sigma=2.3, epsilon=0.4, rc=6.0), 0.3
    )
    for prop in ("get_potential_energy", "get_forces", "get_stress"):
        expected = 0.7 * getattr(ref_a, prop)() + 0.3 * getattr(ref_b, prop)()
        assert np.allclose(getattr(mixed, prop)(), expected, atol=1e-12)
    e_a, e_b = mixed.calc.get_energy_contributions(mixed)
    assert np.isclose(e_a, ref_a.get_potential_energy())
    assert np.isclose(e_b, ref_b.get_potential_energy())
    mixed.positions[0, 0] += 0.01  # cache must notice the move
    ref_a.positions[0, 0] += 0.01
    ref_b.positions[0, 0] += 0.01
    expected = 0.7 * ref_a.get_potential_energy() + 0.3 * ref_b.get_potential_energy()
    assert np.isclose(mixed.get_potential_energy(), expected)
    with pytest.raises(ValueError, match="lambda_"):
        LambdaCalculator(EMT(), EMT(), 1.5)


def test_einstein_free_energy_matches_ase_and_com_counting():
    from analysis.frenkel_ladd import einstein_free_energy

    masses, kappa, temp = np.full(8, 63.546), 2.0, 300.0
    per_atom = SpringCalculator.compute_Einstein_solid_free_energy(kappa, 63.546, temp)
    free = einstein_free_energy(masses, np.full(8, kappa), temp, fix_com=False)
    assert free == pytest.approx(8 * per_atom, rel=1e-10)
    fixed = einstein_free_energy(masses, np.full(8, kappa), temp, fix_com=True)
    assert fixed == pytest.approx(7 * per_atom, rel=1e-10)  # 3N - 3 modes


def test_harmonic_to_harmonic_matches_analytic(tmp_path):
    """ΔF = (3N/2) k_B T ln(κ_B/κ_A) for N classical oscillators."""
    atoms = bulk("Cu", "fcc", a=A_CU, cubic=True).repeat(2)
    kappa_a, kappa_b, temp = 1.0, 4.0, 300.0
    result = integrate(
        atoms,
        EinsteinCalculator(atoms.positions, kappa_a),
        EinsteinCalculator(atoms.positions, kappa_b),
        temperature_K=temp,
        lambdas=gauss_legendre(6),
        n_steps=2000,
        timestep=4.0 * units.fs,
        fix_com=False,
        n_workers=2,
        output_dir=tmp_path / "windows",
    )
    exact = 1.5 * len(atoms) * units.kB * temp * np.log(kappa_b / kappa_a)
    print(
        f"harmonic: TI {result.delta_F_eV:.4f} ± {result.error_eV:.4f}, MBAR "
        f"{result.mbar_delta_F_eV:.4f} ± {result.mbar_error_eV:.4f}, "
        f"exact {exact:.4f} eV"
    )
    # 3σ: over seeds 0-3 this run lands +0.9σ to +2.1σ from the exact value
    assert abs(result.delta_F_eV - exact) < 3 * result.error_eV
    assert abs(result.mbar_delta_F_eV - exact) < 3 * result.mbar_error_eV + 0.01 * exact
    assert result.error_eV < 0.03 * exact  # the error bar is informative
    assert len(list((tmp_path / "windows").glob("window_*.npz"))) == 6
    payload = result.to_dict()
    assert set(payload["windows"][0]) >= {
        "lambda",
        "weight",
        "mean_eV",
        "error_eV",
        "n_samples",
        "tau",
    }
    png = plot_dudl(result, tmp_path / "dudl.png")
    assert png.stat().st_size > 5000


def _small_run(out, n_steps=400, **kwargs):
    atoms = bulk("Cu", "fcc", a=A_CU, cubic=True)
    return integrate(
        atoms,
        EinsteinCalculator(atoms.positions, 1.0),
        EinsteinCalculator(atoms.positions, 3.0),
        temperature_K=300.0,
        lambdas=[0.0, 0.5, 1.0],
        n_steps=n_steps,
        sample_interval=5,
        checkpoint_interval=100,
        n_workers=1,
        output_dir=out,
        **kwargs,
    )


def test_resume_redoes_only_damaged_window(tmp_path):
    first = _small_run(tmp_path)
    assert [w.status for w in first.windows] == ["computed"] * 3
    damaged = tmp_path / "window_01.npz"
    damaged.write_bytes(
        damaged.read_bytes()[:200]
    )  # truncated, as by a crash or a full disk
    second = _small_run(tmp_path)
    assert [w.status for w in second.windows] == ["loaded", "computed", "loaded"]
    assert second.delta_F_eV == pytest.approx(first.delta_F_eV, abs=1e-12)  # seeded
    (tmp_path / "window_02.npz").unlink()
    third = _small_run(tmp_path)
    assert [w.status for w in third.windows] == ["loaded", "loaded", "computed"]
    with pytest.raises(ValueError, match="temperature_K"):
        integrate(
            bulk("Cu", "fcc", a=A_CU, cubic=True),
            EMT(),
            EMT(),
            500.0,
            lambdas=[0.0, 1.0],
            n_steps=400,
            checkpoint_interval=100,
            n_workers=1,
            output_dir=tmp_path,
        )


def test_resume_refuses_other_calculators(tmp_path):
    """Finished or partial windows of one pair of models never mix with another's."""
    _small_run(tmp_path, n_steps=200)
    atoms = bulk("Cu", "fcc", a=A_CU, cubic=True)
    for calc_b in (EinsteinCalculator(atoms.positions, 2.0), EMT()):
        with pytest.raises(ValueError, match=r"calculators.*new output directory"):
            integrate(
                atoms,
                EinsteinCalculator(atoms.positions, 1.0),
                calc_b,
                temperature_K=300.0,
                lambdas=[0.0, 0.5, 1.0],
                n_steps=400,
                sample_interval=5,
                checkpoint_interval=100,
                n_workers=1,
                output_dir=tmp_path,
            )


def test_interrupted_window_continues_exactly(tmp_path):
    """A partial window continues from its stored state (positions, momenta, RNG)."""
    _small_run(tmp_path / "split", n_steps=200)
    resumed = _small_run(tmp_path / "split", n_steps=400)
    fresh = _small_run(tmp_path / "fresh", n_steps=400)
    assert [w.status for w in resumed.windows] == ["resumed"] * 3
    for a, b in zip(resumed.samples, fresh.samples, strict=True):
        assert np.allclose(a, b, rtol=0, atol=1e-9)


def test_any_executor_gives_the_serial_result(tmp_path):
    serial = _small_run(None, n_steps=200)
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = _small_run(None, n_steps=200, executor=pool)
    assert threaded.delta_F_eV == pytest.approx(serial.delta_F_eV, abs=1e-12)


@pytest.mark.phonopy
def test_frenkel_ladd_emt_cu_matches_phonopy_harmonic(tmp_path):
    """At 50 K anharmonicity is negligible: F_FL ≈ classical harmonic F (1 meV/atom)."""
    atoms = bulk("Cu", "fcc", a=A_CU).repeat(2)  # 8 atoms
    temp = 50.0
    reference = _phonopy_classical_free_energy(atoms, temp)
    result = frenkel_ladd(
        atoms,
        EMT(),
        temp,
        lambdas=gauss_legendre(4),
        n_steps=800,
        timestep=4.0 * units.fs,
        msd_steps=300,
        n_workers=2,
        output_dir=tmp_path,
    )
    n = len(atoms)
    diff_mev = 1000 * (result.free_energy_eV - reference) / n
    print(f"FL 8 atoms: F - F_harm = {diff_mev:.3f} ± {1000 * result.error_eV / n:.3f}")
    assert abs(diff_mev) < 1.0, (diff_mev, result.error_eV)
    mbar = result.reference_free_energy_eV + result.ti.mbar_delta_F_eV
    assert abs(1000 * (mbar - reference) / n) < 1.0
    assert (tmp_path / "einstein_springs.json").exists()
    assert result.spring_constants["Cu"] > 1.0  # eV/Å², EMT Cu ≈ 6


@pytest.mark.slow
@pytest.mark.phonopy
def test_frenkel_ladd_and_anharmonic_32_atoms(tmp_path):
    from analysis.ti import anharmonic_free_energy

    atoms = bulk("Cu", "fcc", a=A_CU, cubic=True).repeat(2)
    temp, n = 50.0, 32
    reference = _phonopy_classical_free_energy(atoms, temp)
    fl = frenkel_ladd(
        atoms,
        EMT(),
        temp,
        lambdas=gauss_legendre(4),
        n_steps=600,
        timestep=4.0 * units.fs,
        msd_steps=200,
        n_workers=2,
    )
    anh = anharmonic_free_energy(
        atoms,
        EMT(),
        temp,
        lambdas=gauss_legendre(3),
        n_steps=600,
        timestep=4.0 * units.fs,
        n_workers=2,
    )
    print(
        f"FL 32: {1000 * (fl.free_energy_eV - reference) / n:.3f} ± "
        f"{1000 * fl.error_eV / n:.3f}; anh {1000 * anh.ti.delta_F_eV / n:.4f} ± "
        f"{1000 * anh.error_eV / n:.4f} meV/atom"
    )
    assert abs(1000 * (fl.free_energy_eV - reference) / n) < 1.0
    assert abs(1000 * (anh.reference_free_energy_eV - reference) / n) < 0.01
    assert abs(1000 * anh.ti.delta_F_eV / n) < 0.2  # anharmonicity at 50 K is tiny
    json.dumps(fl.to_dict())


@pytest.mark.slow
def test_gibbs_energy_matches_quasi_harmonic(tmp_path):
    from ase.eos import EquationOfState

    from analysis.frenkel_ladd import (
        finite_difference_hessian,
        gibbs_free_energy,
        harmonic_free_energy,
    )

    atoms = bulk("Cu", "fcc", a=A_CU).repeat(2)
    temp = 50.0
    scales = (0.97, 0.985, 1.0, 1.015, 1.03)
    result = gibbs_free_energy(
        atoms,
        EMT(),
        temp,
        pressure=0.0,
        volume_scales=scales,
        lambdas=gauss_legendre(3),
        n_steps=600,
        timestep=4.0 * units.fs,
        msd_steps=200,
        n_workers=2,
    )
    harmonic = []
    for volume, scale in zip(result.volumes, scales, strict=True):
        strained = atoms.copy()
        strained.set_cell(atoms.cell * scale ** (1 / 3), scale_atoms=True)
        strained.calc = EMT()
        assert np.isclose(strained.get_volume(), volume)
        hessian = finite_difference_hessian(strained, EMT())
        harmonic.append(
            harmonic_free_energy(
                strained, hessian, temp, strained.get_potential_energy()
            )
        )
    qha = EquationOfState(result.volumes, harmonic, eos="birchmurnaghan")
    v0, g0, _ = qha.fit(warn=False)
    print(
        f"Gibbs - QHA {1000 * (result.gibbs_eV - g0) / len(atoms):.3f} meV/atom, "
        f"V {result.volume:.3f} vs {v0:.3f}, B {result.bulk_modulus_GPa:.1f} GPa"
    )
    assert abs(1000 * (result.gibbs_eV - g0) / len(atoms)) < 1.0
    assert result.volume == pytest.approx(v0, rel=0.01)
    assert 100 < result.bulk_modulus_GPa < 200  # EMT Cu ≈ 134 GPa


def test_cli_ti_json_and_resume(tmp_path, capsys):
    from ase.io import write

    from asecalc.cli.main import main

    write(tmp_path / "cu.cif", bulk("Cu", "fcc", a=A_CU, cubic=True))
    out = tmp_path / "out"
    argv = [
        "ti",
        str(tmp_path / "cu.cif"),
        "--from",
        "einstein",
        "--to",
        "emt",
        "--temperature",
        "50",
        "--lambdas",
        "2",
        "--steps",
        "200",
        "--checkpoint-interval",
        "100",
        "--msd-steps",
        "100",
        "--workers",
        "1",
        "--output-dir",
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("delta_F_eV", "error_eV", "delta_F_meV_per_atom", "windows", "mbar"):
        assert key in summary
    assert summary["crystal"]["reference"] == "einstein"
    assert (out / "ti.json").exists()
    assert (out / "dudl.png").exists()
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert {w["status"] for w in again["windows"]} == {"loaded"}
    assert again["delta_F_eV"] == pytest.approx(summary["delta_F_eV"], abs=1e-12)


@pytest.mark.timeout(300)
def test_forked_window_workers_with_a_torch_model_do_not_hang(tmp_path, calc):
    """Forked λ workers after the parent ran torch on several threads: libgomp's
    pool does not survive fork, and without one thread per worker the first
    model call in a child hung (tutorial 05 on mlearn-pbe, CI without
    OMP_NUM_THREADS)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.randn(300, 300)
        for _ in range(5):  # start the parent's OpenMP worker threads
            x = torch.tanh(x @ x)
        atoms = bulk("Si", "diamond", a=5.43, cubic=True)
        # serial (1) and forked (2) workers
        free_energy = {
            workers: frenkel_ladd(
                atoms,
                calc,
                300.0,
                lambdas=gauss_legendre(2),
                n_steps=40,
                msd_steps=10,
                n_workers=workers,
                output_dir=tmp_path / f"workers-{workers}",
            ).free_energy_meV_per_atom
            for workers in (1, 2)
        }
    finally:
        torch.set_num_threads(previous)
    assert np.isfinite(free_energy[2])
    assert free_energy[2] == pytest.approx(free_energy[1], abs=1e-6)


def test_hessian_springs_and_thermal_starts_match_the_harmonic_crystal():
    """κ from the Hessian and the start samplers against closed forms (no MD)."""
    from analysis.frenkel_ladd import (
        einstein_displacements,
        harmonic_displacements,
        spring_constants_from_hessian,
    )

    atoms = bulk("Cu", "fcc", a=A_CU, cubic=True)  # 4 atoms
    n, kappa, temp = len(atoms), 2.5, 300.0
    # COM fixed: an Einstein crystal's MSD is 3 k_B T (1 - 1/N) / κ
    springs = spring_constants_from_hessian(atoms, kappa * np.eye(3 * n))
    assert springs == pytest.approx(np.full(n, kappa * n / (n - 1)), rel=1e-12)
    rng = np.random.default_rng(0)
    masses = atoms.get_masses()
    u = np.array(
        [einstein_displacements(masses, kappa, temp, rng) for _ in range(4000)]
    )
    assert np.abs(np.einsum("i,sij->sj", masses, u)).max() < 1e-12  # COM unmoved
    msd = (u**2).sum(axis=2).mean()
    assert msd == pytest.approx(3 * units.kB * temp * (1 - 1 / n) / kappa, rel=0.03)
    # a random positive Hessian with translation zero modes: <u u^T> = k_B T H^+
    a = np.random.default_rng(1).standard_normal((3 * n, 3 * n))
    proj = np.eye(3 * n) - np.kron(np.ones((n, n)) / n, np.eye(3))
    hessian = proj @ (a @ a.T + np.eye(3 * n)) @ proj
    draws = np.array(
        [
            harmonic_displacements(masses, hessian, temp, rng).ravel()
            for _ in range(6000)
        ]
    )
    expected = units.kB * temp * np.linalg.pinv(hessian, hermitian=True)
    assert np.cov(draws.T, bias=True) == pytest.approx(
        expected, abs=0.06 * expected.max()
    )
    kappa_h = spring_constants_from_hessian(atoms, hessian)
    assert kappa_h == pytest.approx(
        3 / np.trace(expected / (units.kB * temp)) * n, rel=1e-9
    )
