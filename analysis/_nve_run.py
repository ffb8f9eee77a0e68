"""Velocity-Verlet loop of :func:`analysis.nve.run_nve`, with resumable checkpoints.

Private helper of :mod:`analysis.nve`. :class:`NVERun` integrates, records the
potential and kinetic energy at every step, checks for blow-ups and keeps a pool
of frames for the Jacobian asymmetry. With ``checkpoint_interval > 0`` it
rewrites ``nve_checkpoint.npz`` in the output directory atomically every
``checkpoint_interval`` steps (step 0, after any equilibration, included) and at
the end; :meth:`NVERun.from_checkpoint` continues from it. Velocity Verlet is
deterministic given positions and momenta, so a resumed run reproduces the
uninterrupted one as far as the calculator is deterministic.

Everything lives in one file, so a kill leaves the previous checkpoint or the new
one, never a mix of two:

- ``positions`` (n_atoms, 3) in Å and ``momenta`` (n_atoms, 3) in amu·Å/ASE time
  after step ``steps_done``; ``cell`` (3, 3) in Å, ``pbc`` (3,) bool, ``masses``
  (n_atoms,) in amu, ``numbers`` (n_atoms,) int. After a blow-up they are the last
  good frame, and the run is not continued.
- ``potential_energy``, ``kinetic_energy`` (steps_done + 1,) float64 in eV, the
  whole system at steps 0 … steps_done.
- ``frame_steps`` (n_frames,) int, ``frame_positions``, ``frame_momenta``
  (n_frames, n_atoms, 3): the pool of Jacobian frames; ``last_good_positions``,
  ``last_good_momenta`` (n_atoms, 3): the last frame that passed every check.
- ``meta``: a JSON string with the counters (steps done, wall time in s, minimum
  distance in Å, maximum force in eV/Å, …) and the run's arguments.

``nve.traj`` is appended to as the run goes (ASE flushes every frame, and the
file is fsynced before each checkpoint); frames written after the last
checkpoint are dropped on resume.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.io import Trajectory, write
from ase.md.verlet import VelocityVerlet

from analysis._nve_tools import minimum_distance, truncate_trajectory
from analysis._resume import check_calculator
from asecalc.fileio import atomic_write

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "nve_checkpoint.npz"
TRAJECTORY_NAME = "nve.traj"
FORMAT_VERSION = 1
#: Arguments of run_nve stored in a checkpoint that a resumed call must repeat.
CHECKED_ARGUMENTS = (
    "timestep",
    "temperature_K",
    "seed",
    "equilibration_steps",
    "friction",
    "check_interval",
    "trajectory_interval",
)
#: The Jacobian frame pool keeps at most this many frames (plus the last one).
FRAME_POOL_SIZE = 16


class NVERun:
    """Velocity-Verlet loop with per-step sampling, blow-up checks and checkpoints.

    Parameters
    ----------
    atoms : Atoms
        System with calculator, positions and momenta set; integrated in place.
    arguments : dict
        The run's settings: every key of :data:`CHECKED_ARGUMENTS` (``timestep``
        in ASE time units, ``temperature_K`` in K, ``friction`` in 1/ASE time,
        integer step counts), stored in checkpoints.
    output : Path, optional
        Directory of ``nve.traj``, the checkpoint and ``last_good.xyz``.
    """

    def __init__(
        self, atoms: Atoms, arguments: dict[str, Any], output: Path | None
    ) -> None:
        self.atoms = atoms
        self.arguments = dict(arguments)
        self.timestep = float(arguments["timestep"])
        self.check_interval = max(int(arguments["check_interval"]), 1)
        self.traj_interval = max(int(arguments["trajectory_interval"]), 1)
        self.output = output
        self.limits = (0.5, 50.0, float(len(atoms)))  # Å, eV/Å, eV
        self.potential: list[float] = []  # eV, one per step
        self.kinetic: list[float] = []  # eV, one per step
        self.frames: list[tuple[int, Atoms]] = []  # (step, copy): Jacobian pool
        self.frame_stride = self.check_interval
        self.last_good = (-1, atoms.copy())  # (step, frame); -1: not checked yet
        self.min_distance = np.inf
        self.max_force = 0.0
        self.reason: str | None = None
        self.steps_done = 0
        self.n_steps_requested = 0
        self.checkpoint_interval = 0
        self.wall_time = 0.0
        self.files: dict[str, str] = {}

    @property
    def checkpoint_path(self) -> Path:
        """The checkpoint file (needs an output directory)."""
        if self.output is None:
            raise ValueError("checkpoints need an output directory")
        return self.output / CHECKPOINT_NAME

    def execute(self, n_steps: int, checkpoint_interval: int = 0) -> None:
        """Integrate up to step ``n_steps`` (in total, counting resumed steps)."""
        if n_steps < self.steps_done:
            raise ValueError(
                f"the checkpoint already holds {self.steps_done} NVE steps, more "
                f"than n_steps={n_steps}: pass n_steps >= {self.steps_done}"
            )
        self.n_steps_requested = n_steps
        self.checkpoint_interval = checkpoint_interval
        if self.reason is not None:
            logger.warning("checkpointed run blew up (%s): not continued", self.reason)
            return
        first = self.steps_done + 1 if self.potential else 0
        dyn = VelocityVerlet(self.atoms, timestep=self.timestep)
        traj = self._open_trajectory(first)
        wall_before, start = self.wall_time, time.perf_counter()
        try:
            for step in range(first, n_steps + 1):
                if step > 0:
                    dyn.step()
                full = step % self.check_interval == 0 or step == n_steps
                self.reason = self._check(step, full)
                if self.reason is not None:
                    break
                self.steps_done = step
                if full:
                    self._keep_frame(step)
                if traj is not None and step % self.traj_interval == 0:
                    traj.write()
                if _due(step, checkpoint_interval) and step < n_steps:
                    self.wall_time = wall_before + time.perf_counter() - start
                    self.save_checkpoint(traj)  # the final one is written below
        finally:
            self.wall_time = wall_before + time.perf_counter() - start
            if traj is not None:
                traj.close()
        if self.reason is not None:
            self._report_blow_up()
        if checkpoint_interval > 0:
            self.save_checkpoint(None)

    def jacobian_candidates(self) -> list[Atoms]:
        """Frames to pick the Jacobian frames from: the pool and the last good one."""
        frames = [frame for _, frame in self.frames]
        step, last = self.last_good
        if step >= 0 and (not self.frames or step > self.frames[-1][0]):
            frames.append(last)
        return frames

    def _open_trajectory(self, first: int) -> Any:
        if self.output is None:
            return None
        path = self.output / TRAJECTORY_NAME
        self.files["trajectory"] = str(path)
        if first == 0:
            return Trajectory(path, "w", self.atoms)
        truncate_trajectory(path, self.steps_done // self.traj_interval + 1)
        return Trajectory(path, "a", self.atoms)

    def _keep_frame(self, step: int) -> None:
        """Remember a frame that passed every check; pool it on the stride grid.

        The pool depends only on the steps run, not on ``n_steps``, so a run
        extended by resuming picks the same frames as one run in one go.
        """
        frame = self.atoms.copy()
        self.last_good = (step, frame)
        if step % self.frame_stride:
            return
        self.frames.append((step, frame))
        if len(self.frames) > FRAME_POOL_SIZE:
            self.frame_stride *= 2
            self.frames = [
                item for item in self.frames if item[0] % self.frame_stride == 0
            ]

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

    def _report_blow_up(self) -> None:
        message = f"NVE blow-up: {self.reason}; stopped after step {self.steps_done}"
        if self.output is not None:
            path = self.output / "last_good.xyz"
            write(path, self.last_good[1], format="extxyz")
            self.files["last_good"] = str(path)
            message += f"; last good frame saved to {path}"
        logger.error(message)

    def save_checkpoint(self, traj: Any) -> None:
        """Write the checkpoint atomically, after an fsync of ``traj`` (if open)."""
        if traj is not None:
            os.fsync(traj.backend.fd.fileno())
        path = self.checkpoint_path
        self.files["checkpoint"] = str(path)
        state = self.last_good[1] if self.reason is not None else self.atoms
        n_samples = self.steps_done + 1
        shape = (len(self.frames), len(state), 3)
        data: dict[str, Any] = {
            "positions": state.get_positions(),
            "momenta": state.get_momenta(),
            "cell": state.cell.array,
            "pbc": state.pbc,
            "masses": state.get_masses(),
            "numbers": state.numbers,
            "potential_energy": np.asarray(self.potential[:n_samples], dtype=float),
            "kinetic_energy": np.asarray(self.kinetic[:n_samples], dtype=float),
            "frame_steps": np.array([step for step, _ in self.frames], dtype=np.int64),
            "frame_positions": np.array(
                [frame.positions for _, frame in self.frames], dtype=float
            ).reshape(shape),
            "frame_momenta": np.array(
                [frame.get_momenta() for _, frame in self.frames], dtype=float
            ).reshape(shape),
            "last_good_positions": self.last_good[1].get_positions(),
            "last_good_momenta": self.last_good[1].get_momenta(),
            "meta": np.array(json.dumps(self._meta())),
        }

        def savez(tmp: str) -> None:
            with open(tmp, "wb") as handle:  # np.savez(str) would add ".npz"
                np.savez(handle, **data)

        atomic_write(path, savez)
        logger.info("NVE checkpoint at step %d: %s", self.steps_done, path)

    def _meta(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "steps_done": self.steps_done,
            "n_steps_requested": self.n_steps_requested,
            "checkpoint_interval": self.checkpoint_interval,
            "wall_time_s": self.wall_time,
            "min_distance_A": (
                None if np.isinf(self.min_distance) else float(self.min_distance)
            ),
            "max_force_eV_per_A": self.max_force,
            "explosion_reason": self.reason,
            "frame_stride": self.frame_stride,
            "last_good_step": self.last_good[0],
            "trajectory_frames": self.steps_done // self.traj_interval + 1,
            "files": self.files,
            "arguments": self.arguments,
        }

    @classmethod
    def from_checkpoint(
        cls, atoms: Atoms, arguments: dict[str, Any], output: Path | None
    ) -> NVERun:
        """Load the checkpoint in ``output`` onto ``atoms`` (same species, order).

        ``atoms`` provides the calculator, constraints and info; positions,
        momenta, cell, pbc and masses come from the checkpoint. Raises
        FileNotFoundError without a checkpoint, ValueError if it was written with
        other :data:`CHECKED_ARGUMENTS`, calculator or system.
        """
        if output is None:
            raise ValueError("resume=True needs the output_dir of the checkpoint")
        path = output / CHECKPOINT_NAME
        if not path.exists():
            raise FileNotFoundError(
                f"resume=True but there is no NVE checkpoint {path}: start the run "
                "without resume and with checkpoint_interval > 0 (--checkpoint-"
                "interval N) so that it writes one"
            )
        with np.load(path) as npz:
            data = {key: npz[key] for key in npz.files}
        meta = json.loads(str(data["meta"]))
        _check_compatible(path, meta, arguments, atoms, data["numbers"])
        _restore(atoms, data["positions"], data["momenta"])
        atoms.cell = data["cell"]
        atoms.pbc = data["pbc"]
        atoms.set_masses(data["masses"])
        run = cls(atoms, arguments, output)
        run.potential = [float(value) for value in data["potential_energy"]]
        run.kinetic = [float(value) for value in data["kinetic_energy"]]
        run.steps_done = int(meta["steps_done"])
        run.checkpoint_interval = int(meta["checkpoint_interval"])
        run.wall_time = float(meta["wall_time_s"])
        distance = meta["min_distance_A"]
        run.min_distance = np.inf if distance is None else float(distance)
        run.max_force = float(meta["max_force_eV_per_A"])
        run.reason = meta["explosion_reason"]
        run.frame_stride = int(meta["frame_stride"])
        run.files = {str(key): str(value) for key, value in meta["files"].items()}
        for step, positions, momenta in zip(
            data["frame_steps"], data["frame_positions"], data["frame_momenta"],
            strict=True,
        ):  # fmt: skip
            run.frames.append((int(step), _restore(atoms.copy(), positions, momenta)))
        last = _restore(
            atoms.copy(), data["last_good_positions"], data["last_good_momenta"]
        )
        run.last_good = (int(meta["last_good_step"]), last)
        logger.info(
            "resuming NVE from step %d (%s, %.0f s of wall time so far)",
            run.steps_done,
            path,
            run.wall_time,
        )
        return run


def refuse_to_overwrite(output: Path | None) -> None:
    """Raise FileExistsError if a new run would overwrite a checkpointed one."""
    path = None if output is None else output / CHECKPOINT_NAME
    if path is not None and path.exists():
        raise FileExistsError(
            f"{path} holds the checkpoint of an earlier run, which a new run would "
            "overwrite: pass resume=True (--resume) to continue it, or delete the "
            "file or use another output_dir to start over"
        )


def _due(step: int, interval: int) -> bool:
    return interval > 0 and step % interval == 0


def _restore(atoms: Atoms, positions: Any, momenta: Any) -> Atoms:
    atoms.set_positions(positions, apply_constraint=False)
    atoms.set_momenta(momenta, apply_constraint=False)
    return atoms


def _check_compatible(
    path: Path,
    meta: dict[str, Any],
    arguments: dict[str, Any],
    atoms: Atoms,
    numbers: Any,
) -> None:
    """Raise ValueError if the checkpoint belongs to another run or system."""
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {meta.get('format_version')}, this code "
            f"reads version {FORMAT_VERSION}; start a new run in a new output_dir"
        )
    for key in CHECKED_ARGUMENTS:
        stored, requested = meta["arguments"][key], arguments[key]
        if not np.isclose(float(stored), float(requested), rtol=1e-12, atol=0.0):
            note = ""
            if key == "timestep":
                note = f" ({stored / units.fs:g} fs vs {requested / units.fs:g} fs)"
            raise ValueError(
                f"cannot resume: {path} was written with {key}={stored}, this call "
                f"has {key}={requested}{note}; pass {key}={stored} to resume it, or "
                "use another output_dir for a new run"
            )
    check_calculator(path, meta["arguments"], arguments)
    if len(numbers) != len(atoms) or not np.array_equal(numbers, atoms.numbers):
        stored_formula = Atoms(numbers=numbers).get_chemical_formula()
        raise ValueError(
            f"cannot resume: {path} holds {len(numbers)} atoms ({stored_formula}), "
            f"the structure has {len(atoms)} ({atoms.get_chemical_formula()}); pass "
            "the structure of the checkpointed run"
        )
