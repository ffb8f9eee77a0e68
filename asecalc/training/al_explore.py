"""Exploration for active learning: uncertainty-aware MD and metadynamics.

The current model (with ensemble or MC-dropout uncertainty) drives Langevin MD
at several temperatures, or well-tempered metadynamics on given collective
variables (PLUMED, through :mod:`analysis.metad`) to reach rare events. Every
``interval`` steps a frame is kept with its per-atom force uncertainty; a
trajectory stops as soon as the largest per-atom σ exceeds ``sigma_stop``
(eV/Å) and keeps only the frames before that step (beyond it the model is
extrapolating and the dynamics is no longer trustworthy).

Cost: by default (``driver="first"``) the first ensemble member alone drives the
dynamics and the whole ensemble (or the MC-dropout passes) is evaluated only on
the frames checked every ``interval`` steps, as DP-GEN does with its model
deviation. A K-member exploration then costs about ``1 + K/interval`` single-model
calls per step instead of ``K``. ``driver="mean"`` drives with the ensemble mean
and checks σ at every step (K calls per step).

Exploration specs (command line ``--explore``)::

    md:300,600,900                        Langevin MD at 300, 600 and 900 K
    metad:torsion:4,6,8,14                metadynamics on one CV at 300 K
    metad:phi=torsion:4,6,8,14+psi=torsion:6,8,14,16@600
                                          two CVs ('+'), at 600 K ('@T')

CV shorthands are those of ``eformer metad`` (0-based atom indices).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

logger = logging.getLogger(__name__)

_SPEC_HELP = (
    "expected 'md:T1,T2,...' (K) or 'metad:CV[+CV...][@T]' with CV shorthands of "
    "`eformer metad` such as 'torsion:4,6,8,14'"
)


@dataclass(frozen=True)
class ExploreSpec:
    """One exploration method: ``kind`` ``"md"`` or ``"metad"``.

    ``temperatures_K`` in K; ``cvs`` are CV shorthands (metadynamics only).
    """

    kind: str
    temperatures_K: tuple[float, ...] = (300.0,)
    cvs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """Short text for provenance (``md`` or ``metad:<cvs>``)."""
        return self.kind if self.kind == "md" else "metad:" + "+".join(self.cvs)


def parse_explore(spec: str) -> ExploreSpec:
    """Parse an exploration spec (see the module docstring).

    Examples
    --------
    >>> parse_explore("md:300,600").temperatures_K
    (300.0, 600.0)
    >>> parse_explore("metad:torsion:4,6,8,14@500")
    ExploreSpec(kind='metad', temperatures_K=(500.0,), cvs=('torsion:4,6,8,14',))
    """
    kind, sep, body = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "md":
        try:
            temps = tuple(float(t) for t in body.split(",") if t.strip()) or (300.0,)
        except ValueError as err:
            raise ValueError(f"bad exploration spec {spec!r}: {_SPEC_HELP}") from err
        if min(temps) <= 0:
            raise ValueError(f"temperatures must be > 0 K, got {temps} in {spec!r}")
        return ExploreSpec("md", temps)
    if kind == "metad" and sep and body:
        body, at, temp = body.partition("@")
        try:
            temps = (float(temp),) if at else (300.0,)
        except ValueError as err:
            raise ValueError(f"bad temperature in {spec!r}: {_SPEC_HELP}") from err
        cvs = tuple(c.strip() for c in body.split("+") if c.strip())
        from analysis.metad import parse_cv

        for k, cv in enumerate(cvs):  # validate now, not after a training round
            parse_cv(cv, f"cv{k + 1}")
        return ExploreSpec("metad", temps, cvs)
    raise ValueError(f"bad exploration spec {spec!r}: {_SPEC_HELP}")


@dataclass(frozen=True)
class ExploreSettings:
    """Length and sampling of each exploration trajectory.

    Parameters
    ----------
    n_steps : int
        Maximum steps per trajectory.
    interval : int
        Steps between kept frames.
    timestep : float
        ASE time units (``0.5 * units.fs``).
    friction : float
        Langevin friction in 1/(ASE time).
    sigma_stop : float
        Stop a trajectory when the largest per-atom force σ exceeds this (eV/Å).
    walkers : int
        Trajectories per (method, temperature), each from a different start.
    metad_height_kJmol, metad_sigma, metad_biasfactor, metad_pace
        Well-tempered metadynamics (PLUMED units: kJ/mol, CV units, steps).
    driver : {"first", "mean"}
        ``"first"``: the first member (dropout off) drives, σ is computed every
        ``interval`` steps; ``"mean"``: the ensemble mean drives and σ is
        checked at every step.
    """

    n_steps: int = 2000
    interval: int = 20
    timestep: float = 0.5 * units.fs
    friction: float = 0.01 / units.fs
    sigma_stop: float = 1.0
    walkers: int = 1
    metad_height_kJmol: float = 1.2
    metad_sigma: float = 0.35
    metad_biasfactor: float = 10.0
    metad_pace: int = 50
    driver: str = "first"

    def __post_init__(self) -> None:
        if self.driver not in ("first", "mean"):
            raise ValueError(
                f"exploration driver must be 'first' or 'mean', got {self.driver!r}"
            )


@dataclass
class Trajectory:
    """Frames kept from one exploration trajectory.

    ``frames`` carry ``info`` keys ``source``, ``step``, ``temperature_K``,
    ``sigma_max`` (eV/Å) and per-atom array ``forces_std`` (n_atoms,) eV/Å.
    ``sigma_max`` is the largest σ seen, including the stopping step.
    """

    name: str
    frames: list[Atoms] = field(default_factory=list)
    n_steps: int = 0
    stopped: bool = False
    sigma_max: float = 0.0


def explore(
    starts: Sequence[Atoms],
    calc: Any,
    specs: Sequence[ExploreSpec],
    settings: ExploreSettings,
    work_dir: str | Path,
    seed: int = 0,
) -> list[Trajectory]:
    """Run every (spec, temperature, walker) trajectory with the current model.

    Parameters
    ----------
    starts : sequence of ase.Atoms
        Start structures; walker ``k`` starts from ``starts[k % len(starts)]``.
    calc : EformerCalculator
        The model with uncertainty (reset before each trajectory; each
        metadynamics trajectory gets its own PLUMED wrapper).
    specs : sequence of ExploreSpec
    settings : ExploreSettings
    work_dir : str or Path
        PLUMED files (HILLS, COLVAR, log) go to ``work_dir/<trajectory>/``.
    seed : int
        Seed of velocities and Langevin noise (each trajectory its own).
    """
    if not starts:
        raise ValueError(
            "expected at least one start structure for exploration, got none"
        )
    out, n = [], 0
    for spec in specs:
        for temperature in spec.temperatures_K:
            for walker in range(settings.walkers):
                start = starts[n % len(starts)]
                name = f"{spec.name}@{temperature:g}K#{walker}"
                calc.reset()
                traj = run_trajectory(
                    start,
                    calc,
                    spec,
                    temperature,
                    settings,
                    Path(work_dir) / f"traj{n:03d}",
                    seed + 7919 * n,
                    name,
                )
                logger.info(
                    "explore %s: %d steps, %d frames, max σ %.3f eV/Å%s",
                    name,
                    traj.n_steps,
                    len(traj.frames),
                    traj.sigma_max,
                    " (stopped)" if traj.stopped else "",
                )
                out.append(traj)
                n += 1
    return out


def run_trajectory(
    start: Atoms,
    calc: Any,
    spec: ExploreSpec,
    temperature_K: float,
    settings: ExploreSettings,
    work_dir: Path,
    seed: int,
    name: str,
) -> Trajectory:
    """One Langevin trajectory (MD or metadynamics) with σ-based stopping."""
    from ase.md.langevin import Langevin

    try:  # ase >= 3.29
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:
        from ase.md.velocitydistribution import (
            MaxwellBoltzmannDistribution as thermalize_momenta,
        )

    atoms = Atoms(start.numbers, start.positions, cell=start.cell, pbc=start.pbc)
    thermalize_momenta(
        atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed)
    )
    every_step = settings.driver == "mean"
    model = calc if every_step else first_member(calc)
    driver = model
    if spec.kind == "metad":
        driver = _plumed_calculator(
            atoms, model, spec, temperature_K, settings, work_dir
        )
    atoms.calc = driver
    dyn = Langevin(
        atoms,
        settings.timestep,
        temperature_K=temperature_K,
        friction=settings.friction,
        fixcm=False,
        rng=np.random.default_rng(seed + 1),
    )
    traj = Trajectory(name)
    try:
        for _ in dyn.irun(settings.n_steps):
            step = dyn.nsteps
            traj.n_steps = step
            kept = step % settings.interval == 0 and step
            if every_step:
                sigma = np.asarray(calc.results["forces_std"], float)
            elif kept:
                sigma = np.asarray(calc.get_forces_std(atoms), float)
            else:
                continue
            traj.sigma_max = max(traj.sigma_max, float(sigma.max()))
            if not np.isfinite(sigma).all() or sigma.max() > settings.sigma_stop:
                traj.stopped = True
                break
            if kept:
                traj.frames.append(_frame(atoms, sigma, name, step, temperature_K))
    finally:
        if spec.kind == "metad":
            driver.plumed.finalize()
    return traj


def first_member(calc: Any) -> Any:
    """A calculator of ``calc``'s first ensemble member, no uncertainty, no dropout.

    Shares the torch module with ``calc`` (no copy); used to drive exploration.
    """
    from asecalc.calculator import EformerCalculator
    from asecalc.checkpoint import ModelBundle

    bundle = ModelBundle(calc.config, calc.models[:1], calc.bundle.metadata)
    return EformerCalculator(bundle, device=str(calc.device), uncertainty=None)


def _frame(
    atoms: Atoms, sigma: np.ndarray, name: str, step: int, temperature_K: float
) -> Atoms:
    frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.info.update(
        source=name,
        step=step,
        temperature_K=float(temperature_K),
        sigma_max=float(sigma.max()),
    )
    frame.arrays["forces_std"] = sigma.copy()
    return frame


def _plumed_calculator(
    atoms: Atoms,
    calc: Any,
    spec: ExploreSpec,
    temperature_K: float,
    settings: ExploreSettings,
    work_dir: Path,
) -> Any:
    """Wrap ``calc`` in a PLUMED metadynamics bias writing files to ``work_dir``."""
    from analysis.metad import (
        MetadynamicsSettings,
        build_plumed_input,
        make_plumed_calculator,
        parse_cv,
    )

    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    cvs = [parse_cv(cv, f"cv{k + 1}") for k, cv in enumerate(spec.cvs)]
    metad = MetadynamicsSettings(
        height_kJmol=settings.metad_height_kJmol,
        sigma=(settings.metad_sigma,),
        biasfactor=settings.metad_biasfactor,
        pace=settings.metad_pace,
        temperature_K=temperature_K,
        colvar_stride=settings.interval,
    )
    lines = [
        line.replace("FILE=HILLS", f"FILE={work_dir / 'HILLS'}").replace(
            "FILE=COLVAR", f"FILE={work_dir / 'COLVAR'}"
        )
        for line in build_plumed_input(cvs, metad, work_dir)
    ]
    return make_plumed_calculator(
        atoms,
        calc,
        lines,
        settings.timestep,
        temperature_K,
        log=str(work_dir / "plumed.log"),
    )
