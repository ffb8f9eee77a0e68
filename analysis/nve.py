"""NVE energy-drift check for any ASE calculator.

:func:`run_nve` seeds Maxwell-Boltzmann velocities, optionally equilibrates with
Langevin dynamics, runs velocity-Verlet NVE and returns a :class:`DriftReport`:
the drift of the total energy (slope of a linear fit, meV/atom/ps), its
fluctuation, the temperature, blow-up diagnostics and the Jacobian asymmetry λ of
the forces (:mod:`analysis.jacobian`), which tells a non-conservative force field
from a conservative one.

Velocity Verlet has a bounded (shadow-Hamiltonian) energy error of order
``dt²`` and no systematic drift for a conservative, smooth force field [1]_, so a
drift well above the fluctuation points at non-conservative or non-smooth forces
(or too long a timestep).

References
----------
.. [1] E. Hairer, C. Lubich and G. Wanner, "Geometric numerical integration
   illustrated by the Störmer-Verlet method", Acta Numerica 12, 399 (2003).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.io import Trajectory, write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet
from numpy.typing import NDArray

from analysis._nve_tools import (
    check_arguments,
    degrees_of_freedom,
    minimum_distance,
    plot_energies,
)
from analysis.jacobian import jacobian_asymmetry

try:  # ase >= 3.29 deprecates MaxwellBoltzmannDistribution for this
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - ase < 3.29
    from ase.md.velocitydistribution import (
        MaxwellBoltzmannDistribution as thermalize_momenta,
    )

logger = logging.getLogger(__name__)

__all__ = [
    "DriftReport",
    "degrees_of_freedom",
    "minimum_distance",
    "plot_energies",
    "run_nve",
]


@dataclass
class DriftReport:
    """Result of :func:`run_nve`; scalars go to JSON with :meth:`to_dict`.

    Energies per atom are in meV/atom, times in ps, temperatures in K. The
    time series (``time_ps`` and the ``*_energy`` arrays, shape ``(n_samples,)``,
    energies in eV for the whole system) are kept for plotting.
    """

    n_atoms: int
    n_steps: int
    n_steps_requested: int
    timestep_fs: float
    duration_ps: float
    temperature_K_target: float
    drift_meV_per_atom_per_ps: float
    fluctuation_meV_per_atom: float
    max_excursion_meV_per_atom: float
    kinetic_fluctuation_meV_per_atom: float
    drift_to_kinetic_fluctuation: float
    temperature_K_mean: float
    temperature_K_std: float
    temperature_slope_K_per_ps: float
    min_distance_A: float
    max_force_eV_per_A: float
    jacobian_asymmetry: float | None
    jacobian_asymmetry_frames: list[float]
    wall_time_s: float
    steps_per_s: float
    exploded: bool
    time_ps: NDArray[np.float64] = field(repr=False)
    potential_energy: NDArray[np.float64] = field(repr=False)
    kinetic_energy: NDArray[np.float64] = field(repr=False)
    explosion_reason: str | None = None
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the scalar fields as a JSON-ready dict (non-finite -> None)."""
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, np.ndarray):
                continue
            if isinstance(value, float) and not np.isfinite(value):
                value = None
            out[item.name] = value
        return out


def run_nve(
    atoms: Atoms,
    calc: Any = None,
    temperature_K: float = 300.0,
    timestep: float = 0.5 * units.fs,
    n_steps: int = 1000,
    equilibration_steps: int = 0,
    friction: float = 0.01 / units.fs,
    seed: int = 0,
    check_interval: int = 10,
    trajectory_interval: int = 10,
    output_dir: str | Path | None = None,
    jacobian_frames: int = 2,
    jacobian_displacement: float = 1e-3,
    min_distance: float = 0.5,
    max_force: float = 50.0,
    max_excursion_per_atom: float = 1.0,
) -> DriftReport:
    """Run Langevin equilibration (optional), then NVE, and measure energy drift.

    Parameters
    ----------
    atoms : Atoms
        Starting structure; it is copied, not modified (its momenta are
        replaced by seeded Maxwell-Boltzmann ones).
    calc : Calculator, optional
        Any ASE calculator (``atoms.calc`` if None).
    temperature_K : float
        Temperature of the initial velocities and of the equilibration, in K.
    timestep : float
        Time step in ASE time units (``0.5 * units.fs``).
    n_steps, equilibration_steps : int
        Number of NVE and Langevin steps.
    friction : float
        Langevin friction in inverse ASE time units (``0.01 / units.fs``).
    seed : int
        Seed of the velocities and of the Langevin noise.
    check_interval : int
        Steps between minimum-distance checks (energy and forces are checked at
        every step).
    trajectory_interval : int
        Steps between trajectory frames (if ``output_dir`` is given).
    output_dir : str or Path, optional
        Where ``nve.traj``, ``energies.png`` and, after a blow-up, ``last_good.xyz``
        are written. Nothing is written if None.
    jacobian_frames : int
        Number of frames (spread over the run) on which the Jacobian asymmetry λ
        is computed; 0 to skip. Each costs ``6 * min(n_atoms, 32)`` force calls.
    jacobian_displacement : float
        Finite-difference step of λ in Å (see :mod:`analysis.jacobian`).
    min_distance : float
        A pair of atoms closer than this (Å) is a blow-up (collapse).
    max_force : float
        A force component above this (eV/Å) is a blow-up.
    max_excursion_per_atom : float
        A change of total energy above this (eV/atom) is a blow-up.

    Returns
    -------
    report : DriftReport
        On a blow-up the run stops, ``report.exploded`` is True, the reason is
        logged and stored, and the last frame that passed every check is saved.
    """
    check_arguments(temperature_K, timestep, n_steps, equilibration_steps)
    calc = calc if calc is not None else atoms.calc
    if calc is None:
        raise ValueError("no calculator: pass calc= or set atoms.calc")
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    output = None if output_dir is None else Path(output_dir)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    _seed_velocities(atoms, temperature_K, rng)
    if equilibration_steps > 0:
        logger.info("Langevin equilibration: %d steps", equilibration_steps)
        langevin = Langevin(
            atoms,
            timestep,
            temperature_K=temperature_K,
            friction=friction,
            fixcm=False,  # drift removed below; fixcm=True is deprecated
            rng=rng,
        )
        langevin.run(equilibration_steps)
        _remove_drift(atoms)
    run = _NVERun(atoms, timestep, output, trajectory_interval)
    run.limits = (min_distance, max_force, max_excursion_per_atom * len(atoms))
    run.execute(n_steps, check_interval)
    asymmetries = _jacobian_on_frames(
        run.frames, calc, jacobian_frames, jacobian_displacement
    )
    report = _build_report(run, temperature_K, timestep, n_steps, asymmetries)
    if output is not None:
        report.files["energies_png"] = str(
            plot_energies(report, output / "energies.png")
        )
    if report.duration_ps < 1.0:
        logger.warning(
            "NVE run of %.3g ps: the drift of runs shorter than ~1 ps is dominated "
            "by Verlet oscillations; use more steps for a real check",
            report.duration_ps,
        )
    logger.info(
        "NVE: drift %.3g meV/atom/ps, %d steps, %.1f steps/s",
        report.drift_meV_per_atom_per_ps,
        report.n_steps,
        report.steps_per_s,
    )
    return report


def _seed_velocities(atoms: Atoms, temperature_K: float, rng: Any) -> None:
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    _remove_drift(atoms)


def _remove_drift(atoms: Atoms) -> None:
    """Zero the centre-of-mass momentum, and the rotation of molecules."""
    Stationary(atoms)
    if not any(atoms.pbc) and len(atoms) > 2:
        ZeroRotation(atoms)


class _NVERun:
    """Velocity-Verlet loop with per-step sampling and blow-up checks."""

    def __init__(
        self, atoms: Atoms, timestep: float, output: Path | None, traj_interval: int
    ) -> None:
        self.atoms = atoms
        self.timestep = timestep
        self.output = output
        self.traj_interval = max(int(traj_interval), 1)
        self.limits = (0.5, 50.0, float(len(atoms)))
        self.potential: list[float] = []
        self.kinetic: list[float] = []
        self.frames: list[Atoms] = []  # last-good copies, for the Jacobian
        self.min_distance = np.inf
        self.max_force = 0.0
        self.reason: str | None = None
        self.steps_done = 0
        self.wall_time = 0.0
        self.files: dict[str, str] = {}

    def execute(self, n_steps: int, check_interval: int) -> None:
        atoms = self.atoms
        dyn = VelocityVerlet(atoms, timestep=self.timestep)
        traj = None
        if self.output is not None:
            traj = Trajectory(self.output / "nve.traj", "w", atoms)
            self.files["trajectory"] = str(self.output / "nve.traj")
        last_good = atoms.copy()
        frame_every = max(n_steps // 8, 1)
        start = time.perf_counter()
        try:
            for step in range(n_steps + 1):
                if step > 0:
                    dyn.step()
                full = step % check_interval == 0 or step == n_steps
                self.reason = self._check(step, full)
                if self.reason is not None:
                    break
                self.steps_done = step
                if full:
                    last_good = atoms.copy()
                    if step % frame_every == 0:
                        self.frames.append(last_good)
                if traj is not None and step % self.traj_interval == 0:
                    traj.write()
        finally:
            self.wall_time = time.perf_counter() - start
            if traj is not None:
                traj.close()
        if self.reason is not None:
            self._report_blow_up(last_good)

    def _check(self, step: int, full: bool) -> str | None:
        """Record energies at this step; return a blow-up reason or None."""
        atoms = self.atoms
        min_distance, max_force, max_excursion = self.limits
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        kinetic = atoms.get_kinetic_energy()
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            return f"non-finite energy or forces at step {step}"
        force = float(np.abs(forces).max(initial=0.0))
        self.max_force = max(self.max_force, force)
        self.potential.append(energy)
        self.kinetic.append(kinetic)
        if force > max_force:
            return f"force {force:.3g} eV/Å > max_force={max_force} at step {step}"
        excursion = abs(energy + kinetic - self.potential[0] - self.kinetic[0])
        if excursion > max_excursion:
            return (
                f"total energy changed by {excursion:.3g} eV > "
                f"{max_excursion:.3g} eV (max_excursion_per_atom) at step {step}"
            )
        if full:
            distance = minimum_distance(atoms)
            self.min_distance = min(self.min_distance, distance)
            if distance < min_distance:
                return (
                    f"atoms {distance:.3f} Å apart < min_distance={min_distance} Å "
                    f"at step {step} (collapse: missing short-range repulsion?)"
                )
        return None

    def _report_blow_up(self, last_good: Atoms) -> None:
        message = f"NVE blow-up: {self.reason}; stopped after step {self.steps_done}"
        if self.output is not None:
            path = self.output / "last_good.xyz"
            write(path, last_good, format="extxyz")
            self.files["last_good"] = str(path)
            message += f"; last good frame saved to {path}"
        logger.error(message)


def _jacobian_on_frames(
    frames: list[Atoms], calc: Any, n_frames: int, displacement: float
) -> list[float]:
    if n_frames <= 0 or not frames:
        return []
    picks = np.unique(np.linspace(0, len(frames) - 1, n_frames).round().astype(int))
    values = []
    for i in picks:
        frames[i].calc = calc
        values.append(jacobian_asymmetry(frames[i], displacement=displacement))
    logger.info("Jacobian asymmetry λ on %d frames: %s", len(values), values)
    return values


def _build_report(
    run: _NVERun,
    temperature_K: float,
    timestep: float,
    n_steps_requested: int,
    asymmetries: list[float],
) -> DriftReport:
    n_atoms = len(run.atoms)
    n_samples = run.steps_done + 1
    potential = np.asarray(run.potential[:n_samples])  # (n_samples,) eV
    kinetic = np.asarray(run.kinetic[:n_samples])  # (n_samples,) eV
    time_ps = np.arange(n_samples, dtype=np.float64) * timestep / (1000.0 * units.fs)
    total_meV = (potential + kinetic) * 1000.0 / n_atoms  # (n_samples,) meV/atom
    temperature = 2.0 * kinetic / (degrees_of_freedom(run.atoms) * units.kB)
    drift = _slope(time_ps, total_meV)
    duration = float(time_ps[-1])
    kinetic_std = float(np.std(kinetic * 1000.0 / n_atoms))
    wall = run.wall_time
    return DriftReport(
        n_atoms=n_atoms,
        n_steps=run.steps_done,
        n_steps_requested=n_steps_requested,
        timestep_fs=timestep / units.fs,
        duration_ps=duration,
        temperature_K_target=temperature_K,
        drift_meV_per_atom_per_ps=drift,
        fluctuation_meV_per_atom=float(np.std(total_meV)),
        max_excursion_meV_per_atom=float(np.abs(total_meV - total_meV[0]).max()),
        kinetic_fluctuation_meV_per_atom=kinetic_std,
        drift_to_kinetic_fluctuation=(
            abs(drift) * duration / kinetic_std if kinetic_std > 0 else float("nan")
        ),
        temperature_K_mean=float(temperature.mean()),
        temperature_K_std=float(temperature.std()),
        temperature_slope_K_per_ps=_slope(time_ps, temperature),
        min_distance_A=run.min_distance,
        max_force_eV_per_A=run.max_force,
        jacobian_asymmetry=float(np.mean(asymmetries)) if asymmetries else None,
        jacobian_asymmetry_frames=asymmetries,
        wall_time_s=wall,
        steps_per_s=run.steps_done / wall if wall > 0 else float("nan"),
        exploded=run.reason is not None,
        explosion_reason=run.reason,
        files=dict(run.files),
        time_ps=time_ps,
        potential_energy=potential,
        kinetic_energy=kinetic,
    )


def _slope(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    """Slope of a least-squares line through (x, y); nan with fewer than 2 points."""
    if len(x) < 2:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])
