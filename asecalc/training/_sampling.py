"""Samplers behind :mod:`asecalc.training.datagen` (run inside worker processes).

``md``
    Langevin MD from the (relaxed) start; a frame every ``md_interval`` steps after
    ``equilibration_steps``. With the reference driving the MD the frames carry
    its labels already; with a cheaper sampling calculator they are perturbed
    and labelled afterwards.
``normal-modes``
    Harmonic normal modes of the relaxed start from an :mod:`ase.vibrations`
    finite-difference Hessian; each mode is displaced by a Gaussian amplitude of
    classical Boltzmann variance ``kT / lambda`` in mass-weighted coordinates.
``random``
    Gaussian displacements of every atom (and a random cell strain for
    periodic cells).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

logger = logging.getLogger(__name__)

#: Lowest harmonic frequency used for normal-mode amplitudes, in eV (200 cm⁻¹). Soft
#: modes (intermolecular, torsions) are strongly anharmonic: with a 50 cm⁻¹ floor about
#: half of the water-cluster frames lay > 0.25 eV/atom above the minimum.
MIN_MODE_ENERGY = 200 * units.invcm


def strip_atoms(atoms: Atoms) -> Atoms:
    """Copy ``atoms`` without calculator, constraints or info."""
    clean = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if atoms.has("initial_magmoms"):
        clean.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments())
    if atoms.has("initial_charges"):
        clean.set_initial_charges(atoms.get_initial_charges())
    return clean


def label(atoms: Atoms, reference: Any) -> Atoms:
    """Return a copy of ``atoms`` holding reference energy, forces (and stress).

    ``reference`` is a spec or factory (see ``datagen.build_calculator``; a
    calculator class such as ``EMT`` is a factory) or an ASE calculator. Stress
    (eV/Å³, Voigt) is computed for 3D periodic cells only.
    """
    from asecalc.training.datagen import build_calculator

    work = atoms.copy()
    is_instance = hasattr(reference, "get_property") and not isinstance(reference, type)
    work.calc = reference if is_instance else build_calculator(reference)
    return _snapshot(work)


def _snapshot(atoms: Atoms) -> Atoms:
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if atoms.pbc.all():
        results["stress"] = atoms.get_stress()
    frame = atoms.copy()
    frame.constraints = []
    frame.calc = SinglePointCalculator(frame, free_energy=results["energy"], **results)
    return frame


def sample(task: Any, reference: Any) -> list[Atoms]:
    """Return ``len(task.uids)`` frames for one task (labelled or not)."""
    if task.sampler == "label":
        return [atoms.copy() for atoms in task.atoms]
    from asecalc.training.datagen import build_calculator

    rng = np.random.default_rng(task.seed)
    start = task.atoms[0].copy()
    calc = build_calculator(reference)
    if task.preoptimize:
        from ase.optimize import BFGS

        start.calc = calc
        BFGS(start, logfile=None).run(fmax=0.05, steps=200)
    n_frames = len(task.uids)
    if task.sampler == "md":
        return _sample_md(start, task, calc, rng, n_frames)
    if task.sampler == "normal-modes":
        return _sample_normal_modes(start, task, calc, rng, n_frames)
    if task.sampler == "random":
        return [_perturb(start, task, rng, 1.0) for _ in range(n_frames)]
    raise ValueError(f"unknown sampler {task.sampler!r}")


def _perturb(atoms: Atoms, task: Any, rng: np.random.Generator, scale: float) -> Atoms:
    """Gaussian displacements (Å) and, for periodic cells, a symmetric cell strain."""
    frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    factor = np.sqrt(task.temperature_K / 300.0) * scale
    if task.strain_sigma and frame.pbc.all():
        strain = rng.normal(0.0, task.strain_sigma * factor, (3, 3))
        strain = 0.5 * (strain + strain.T)
        frame.set_cell(frame.cell[:] @ (np.eye(3) + strain), scale_atoms=True)
    frame.positions += rng.normal(
        0.0, task.rattle_sigma * factor, frame.positions.shape
    )
    return frame


def _sample_md(
    start: Atoms, task: Any, calc: Any, rng: np.random.Generator, n_frames: int
) -> list[Atoms]:
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation

    from asecalc.training._water import flexible_water_calculator, thermalize
    from asecalc.training.datagen import build_calculator

    config = task.config
    atoms = start.copy()
    if task.md_calculator is None:
        atoms.calc = calc
    elif task.md_calculator == "flexible-water":
        atoms.calc = flexible_water_calculator(atoms)
    else:
        atoms.calc = build_calculator(task.md_calculator)
    thermalize(atoms, temperature_K=task.temperature_K, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    dyn = Langevin(
        atoms,
        config.timestep,
        temperature_K=task.temperature_K,
        friction=config.friction,
        fixcm=False,
        rng=rng,
    )
    dyn.run(config.equilibration_steps)
    frames = []
    for _ in range(n_frames):
        dyn.run(config.md_interval)
        if task.md_calculator is None:
            frames.append(_snapshot(atoms))
        else:
            frames.append(_perturb(atoms, task, rng, 0.5))
    return frames


def _normal_modes(atoms: Atoms, calc: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return eigenvalues (eV/(Å² amu)) and mass-weighted modes (n_modes, n_atoms, 3).

    The rigid-body modes (3 periodic, 5 linear, 6 otherwise) are removed.
    """
    from ase.vibrations import Vibrations

    work = atoms.copy()
    work.calc = calc
    with tempfile.TemporaryDirectory() as tmp:
        vib = Vibrations(work, name=str(Path(tmp) / "vib"), delta=0.01, nfree=2)
        vib.run()
        hessian = vib.get_vibrations().get_hessian_2d()  # (3 n_atoms, 3 n_atoms) eV/Å²
    inv_sqrt_mass = np.repeat(atoms.get_masses() ** -0.5, 3)
    dynamical = hessian * np.outer(inv_sqrt_mass, inv_sqrt_mass)
    values, vectors = np.linalg.eigh(0.5 * (dynamical + dynamical.T))
    if atoms.pbc.any():
        n_rigid = 3
    else:
        inertia = np.sort(atoms.get_moments_of_inertia())
        n_rigid = 5 if inertia[0] < 1e-3 * inertia[-1] else 6
    keep = np.argsort(np.abs(values))[n_rigid:]
    return values[keep], vectors[:, keep].T.reshape(len(keep), len(atoms), 3)


def _sample_normal_modes(
    start: Atoms, task: Any, calc: Any, rng: np.random.Generator, n_frames: int
) -> list[Atoms]:
    values, modes = _normal_modes(start, calc)
    # lambda = omega**2 in eV/(Å² amu); soft and imaginary modes floored
    min_value = (
        (MIN_MODE_ENERGY * units._e / units._hbar) ** 2 * units._amu * 1e-20 / units._e
    )
    values = np.maximum(np.abs(values), min_value)
    sqrt_mass = np.sqrt(start.get_masses())[:, None]
    kT = units.kB * task.temperature_K
    frames = []
    for _ in range(n_frames):
        amplitudes = rng.normal(0.0, np.sqrt(kT / values))  # Å sqrt(amu)
        frame = Atoms(start.numbers, start.positions, cell=start.cell, pbc=start.pbc)
        frame.positions += np.einsum("k,kai->ai", amplitudes, modes) / sqrt_mass
        frames.append(frame)
    return frames
