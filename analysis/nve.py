"""NVE energy-drift check for any ASE calculator.

:func:`run_nve` seeds Maxwell-Boltzmann velocities, optionally equilibrates with
Langevin dynamics, runs velocity-Verlet NVE and returns a :class:`DriftReport`:
the drift of the total energy (slope of a linear fit, meV/atom/ps), its
fluctuation, the temperature, blow-up diagnostics and the Jacobian asymmetry λ of
the forces (:mod:`analysis.jacobian`), which tells a non-conservative force field
from a conservative one. Runs of hours or days checkpoint to ``output_dir``
(``checkpoint_interval``) and continue after a kill (``resume=True``) with the
report of an uninterrupted run; the loop lives in :mod:`analysis._nve_run`.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation
from numpy.typing import NDArray

from analysis._nve_run import NVERun, refuse_to_overwrite
from analysis._nve_tools import (
    check_arguments,
    degrees_of_freedom,
    minimum_distance,
    plot_energies,
)
from analysis._resume import calculator_identity
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
    checkpoint_interval: int = 0,
    resume: bool = False,
) -> DriftReport:
    """Run Langevin equilibration (optional), then NVE, and measure energy drift.

    Long runs can be checkpointed and resumed: velocity Verlet is deterministic
    given positions and momenta, so a run killed and resumed gives the report of
    one run in one go (energy series equal to round-off, wall time aside).

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
        Where ``nve.traj``, ``energies.png``, the checkpoint and, after a blow-up,
        ``last_good.xyz`` are written. Nothing is written if None.
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
    checkpoint_interval : int
        With ``output_dir``, save a checkpoint every this many NVE steps (at step
        0 after the equilibration, then every ``checkpoint_interval`` steps and at
        the end) to ``output_dir/nve_checkpoint.npz``, atomically: positions (Å),
        momenta (amu·Å/ASE time), cell, pbc, masses, numbers, the potential and
        kinetic energy series so far (eV), the counters (steps done, wall time,
        minimum distance, maximum force, Jacobian frames) and the arguments.
        0 (default) writes none, or with ``resume`` keeps the stored interval.
    resume : bool
        Continue the run checkpointed in ``output_dir`` until ``n_steps`` NVE
        steps in total (a larger ``n_steps`` extends a finished run) from the
        saved positions and momenta: no new velocities, no equilibration.
        ``atoms`` gives the species (checked), calculator and constraints;
        ``timestep``, ``temperature_K``, ``seed``, ``equilibration_steps``,
        ``friction``, ``check_interval`` and ``trajectory_interval`` must be those
        of the checkpointed run. Frames of ``nve.traj`` written after the
        checkpoint are dropped; the wall time adds up over the pieces (work lost
        after the last checkpoint is not counted).

    Returns
    -------
    report : DriftReport
        On a blow-up the run stops, ``report.exploded`` is True, the reason is
        logged and stored, and the last frame that passed every check is saved.

    Raises
    ------
    FileNotFoundError
        ``resume=True`` and ``output_dir`` holds no checkpoint.
    FileExistsError
        ``resume=False`` and ``output_dir`` holds a checkpoint (days of work
        that a new run would overwrite).
    ValueError
        Arguments out of range, or a checkpoint of another run (the message
        names the argument that differs).
    """
    check_arguments(temperature_K, timestep, n_steps, equilibration_steps)
    calc = calc if calc is not None else atoms.calc
    if calc is None:
        raise ValueError("no calculator: pass calc= or set atoms.calc")
    if (checkpoint_interval > 0 or resume) and output_dir is None:
        raise ValueError(
            f"checkpoint_interval={checkpoint_interval}, resume={resume} need "
            "output_dir: pass the directory that holds (or will hold) the checkpoint"
        )
    if checkpoint_interval < 0:
        raise ValueError(
            f"checkpoint_interval must be >= 0 steps, got {checkpoint_interval}"
        )
    atoms = atoms.copy()
    atoms.calc = calc
    output = None if output_dir is None else Path(output_dir)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    arguments = {
        "timestep": float(timestep),
        "temperature_K": float(temperature_K),
        "seed": int(seed),
        "equilibration_steps": int(equilibration_steps),
        "friction": float(friction),
        "check_interval": int(check_interval),
        "trajectory_interval": int(trajectory_interval),
        "calculator": calculator_identity(calc),
    }
    if resume:
        run = NVERun.from_checkpoint(atoms, arguments, output)
        checkpoint_interval = checkpoint_interval or run.checkpoint_interval
    else:
        refuse_to_overwrite(output)
        _start(atoms, temperature_K, timestep, equilibration_steps, friction, seed)
        run = NVERun(atoms, arguments, output)
    run.limits = (min_distance, max_force, max_excursion_per_atom * len(atoms))
    run.execute(n_steps, checkpoint_interval)
    asymmetries = _jacobian_on_frames(
        run.jacobian_candidates(), calc, jacobian_frames, jacobian_displacement
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


def _start(
    atoms: Atoms,
    temperature_K: float,
    timestep: float,
    equilibration_steps: int,
    friction: float,
    seed: int,
) -> None:
    """Seed Maxwell-Boltzmann momenta, then equilibrate with Langevin (optional)."""
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    _remove_drift(atoms)
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


def _remove_drift(atoms: Atoms) -> None:
    """Zero the centre-of-mass momentum, and the rotation of molecules."""
    Stationary(atoms)
    if not any(atoms.pbc) and len(atoms) > 2:
        ZeroRotation(atoms)


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
    run: NVERun,
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
