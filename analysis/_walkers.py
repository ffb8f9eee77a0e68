"""Multiple-walkers well-tempered metadynamics: one PLUMED process per walker.

Private helper of :mod:`analysis.metad` (re-exported there). PLUMED's multiple
walkers without MPI (Raiteri, Laio, Gervasio, Micheletti, Parrinello, JPCB 110,
3533 (2006)): walker ``i`` runs :func:`analysis.metad.run_metadynamics` in
``output_dir/walker_<i>/`` (its own COLVAR, plumed.log, trajectory.traj,
restart.traj, metad.json) and writes its hills to the shared
``output_dir/HILLS.<i>``; every ``read_stride`` steps it reads what the other
walkers appended to theirs, so all walkers build and feel one bias.

What the PLUMED kernel does (checked with PLUMED 2.11), and what follows here:

* A walker opens the other walkers' HILLS files when it starts and reads whatever
  they hold at its first read, so hills left in the directory by an earlier run
  would join this run's bias: a fresh run refuses a directory holding ``HILLS.*``.
* With RESTART every walker reads all ``HILLS.*`` back before its first step
  (``Restarting from .../HILLS.<i>`` in its plumed.log), so no bias is lost.
* COLVAR and the other PRINT files get no walker suffix: each walker needs its
  own working directory, hence ``walker_<i>/``.
* Each ``HILLS.<i>`` has an extra ``clock`` column (wall-clock seconds).
* Walkers share the bias only while they run at the same time, so they all run
  at once: one process each (the working directory is per process, so threads
  cannot run walkers).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms, units

from analysis._plumed_input import (
    CollectiveVariable,
    MetadynamicsSettings,
    Walker,
    build_plumed_input,
)
from asecalc.fileio import write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from analysis.metad import MetadynamicsRun

logger = logging.getLogger(__name__)


@dataclass
class WalkersRun:
    """Finished walkers of one multiple-walkers run.

    ``output_dir``: the shared directory (``HILLS.<i>``, ``walker_<i>/``,
    walkers.json); ``runs``: one :class:`~analysis.metad.MetadynamicsRun` per
    walker, in walker order; ``wall_time_s``: wall time of the whole call (s).
    """

    output_dir: Path
    runs: list[MetadynamicsRun]
    wall_time_s: float

    @property
    def hills(self) -> list[Path]:
        """``HILLS.<i>`` of every walker (kJ/mol heights, γ/(γ-1) included)."""
        return [run.hills for run in self.runs]

    @property
    def colvars(self) -> list[Path]:
        """``walker_<i>/COLVAR`` of every walker."""
        return [run.colvar for run in self.runs]

    @property
    def total_steps(self) -> list[int]:
        """Steps of every walker since its first run."""
        return [run.total_steps for run in self.runs]


@dataclass(frozen=True)
class _WalkerTask:
    """One walker's arguments of :func:`analysis.metad.run_metadynamics`."""

    atoms: Atoms
    calc_factory: Callable[[], Any]
    plumed_input: list[str]
    n_steps: int
    output_dir: Path
    hills_file: Path
    temperature_K: float
    timestep: float
    friction: float
    seed: int
    restart: bool
    trajectory_interval: int


def _run_walker(task: _WalkerTask) -> MetadynamicsRun:
    """Build the calculator in this process, limit torch to one thread, run."""
    from analysis.metad import run_metadynamics

    calc = task.calc_factory()
    torch = sys.modules.get("torch")
    if torch is not None:  # N walkers on N cores: one thread each
        torch.set_num_threads(1)
    return run_metadynamics(
        task.atoms,
        calc,
        task.plumed_input,
        task.n_steps,
        task.output_dir,
        temperature_K=task.temperature_K,
        timestep=task.timestep,
        friction=task.friction,
        seed=task.seed,
        restart=task.restart,
        trajectory_interval=task.trajectory_interval,
        hills_file=task.hills_file,
    )


def _one_thread_per_walker() -> None:
    """Initializer of the default pool's worker processes.

    Sets OpenMP's default thread count to 1 in the worker process only (the
    caller's environment is unchanged), for OpenMP codes such as tblite loaded
    there, and torch's thread count if torch was inherited through ``fork``
    (a forked child must not reuse its parent's OpenMP threads).
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _map_walkers(
    tasks: list[_WalkerTask], executor: Executor | None
) -> list[MetadynamicsRun]:
    """Run all walkers at once: through ``executor`` or one process each."""
    if isinstance(executor, ThreadPoolExecutor):
        raise TypeError(
            "walkers need one process each (PLUMED runs in the walker's working "
            "directory, which threads share): pass a ProcessPoolExecutor or None"
        )
    if executor is not None:
        return list(executor.map(_run_walker, tasks))
    # fork (as analysis.ti): workers start in milliseconds, nothing re-imported
    context = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(
        max_workers=len(tasks),
        mp_context=context,
        initializer=_one_thread_per_walker,
    ) as pool:
        return list(pool.map(_run_walker, tasks))


def _check_directory(
    out: Path, n_walkers: int | None, restart: bool
) -> tuple[int | None, dict[str, Any]]:
    """Walker count and the stored walkers.json (restart), or {} for a fresh run."""
    record = out / "walkers.json"
    if not restart:
        stale = sorted(p.name for p in out.glob("HILLS.*"))
        if stale:
            raise ValueError(
                f"{out} already holds {', '.join(stale)} of an earlier run, which "
                "the walkers would read as bias: extend it with restart=True or "
                "use a new output directory"
            )
        return n_walkers, {}
    if not record.is_file():
        raise ValueError(f"cannot extend: no walkers.json in {out}; run first")
    stored: dict[str, Any] = json.loads(record.read_text())
    if n_walkers is not None and n_walkers != stored["n_walkers"]:
        raise ValueError(
            f"{out} holds {stored['n_walkers']} walkers, asked to extend "
            f"{n_walkers}: pass n_walkers={stored['n_walkers']} or None"
        )
    return int(stored["n_walkers"]), stored


def run_walkers(
    starts: Atoms | Sequence[Atoms],
    calc_factory: Callable[[], Any],
    cvs: Sequence[CollectiveVariable],
    settings: MetadynamicsSettings,
    n_steps: int,
    output_dir: str | os.PathLike[str],
    n_walkers: int | None = None,
    read_stride: int | None = None,
    timestep: float = 0.5 * units.fs,
    friction: float = 0.01 / units.fs,
    seed: int = 0,
    restart: bool = False,
    trajectory_interval: int = 100,
    executor: Executor | None = None,
) -> WalkersRun:
    """Well-tempered metadynamics with ``n_walkers`` walkers sharing one bias.

    Walker ``i`` starts from ``starts[i % len(starts)]`` with seed ``seed + i``
    and runs :func:`analysis.metad.run_metadynamics` (Langevin at
    ``settings.temperature_K``) in ``output_dir/walker_<i>/``; its hills go to
    ``output_dir/HILLS.<i>``, read by the others every ``read_stride`` steps.
    ``output_dir/walkers.json`` records walker count, seeds, start indices and
    the steps and wall time of each walker; ``starts.traj`` the start frames.

    Parameters
    ----------
    starts : Atoms or sequence of Atoms
        Start structures, cycled if fewer than ``n_walkers``; on restart only
        masses and constraints are used (positions and momenta come from each
        walker's restart.traj).
    calc_factory : callable
        Zero-argument callable returning an ASE calculator, called once in each
        walker's process; it must pickle (a class, a module-level function or a
        ``functools.partial`` of one, e.g. of
        ``asecalc.cli._common.make_calculator`` with a spec such as ``"xtb"``).
    cvs, settings
        As for :func:`analysis.metad.build_plumed_input`.
    n_steps : int
        Steps per walker in this call.
    n_walkers : int, optional
        Default: ``len(starts)``, or the stored count when restarting.
    read_stride : int, optional
        Steps between reads of the other walkers' hills (default: the pace).
    timestep, friction : float
        ASE time and 1/ASE time, as for ``run_metadynamics``.
    restart : bool
        Extend every walker by ``n_steps``; PLUMED RESTART reads all
        ``HILLS.*`` back. A fresh run refuses a directory holding ``HILLS.*``.
    executor : concurrent.futures.Executor, optional
        Runs the walkers, one process each, all at once (walkers share the bias
        only while running together, so give it ``n_walkers`` workers). Default:
        a process pool of ``n_walkers`` (fork where available) whose workers
        run torch and OpenMP on one thread; a ThreadPoolExecutor is refused.

    Returns
    -------
    WalkersRun
        The runs of all walkers, in walker order.
    """
    try:
        pickle.dumps(calc_factory)
    except Exception as err:
        raise TypeError(
            f"calc_factory must pickle to reach the walker processes, got "
            f"{calc_factory!r} ({err}): use a class, a module-level function or "
            "functools.partial of one instead of a lambda or a local function"
        ) from err
    frames = [starts] if isinstance(starts, Atoms) else list(starts)
    if not frames:
        raise ValueError("expected at least one start structure, got none")
    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    n, stored = _check_directory(out, n_walkers, restart)
    n = len(frames) if n is None else n
    if n < 1:
        raise ValueError(f"expected n_walkers >= 1, got {n}")
    walkers = [Walker(n, i, out, read_stride) for i in range(n)]
    start_index = [i % len(frames) for i in range(n)]
    tasks = []
    for walker, k in zip(walkers, start_index, strict=True):
        lines = build_plumed_input(cvs, settings, out, walker)
        walker_dir = out / f"walker_{walker.index}"
        write_text_atomic(walker_dir / "plumed.dat", "\n".join(lines) + "\n")
        tasks.append(
            _WalkerTask(
                frames[k].copy(),  # without its calculator
                calc_factory,
                lines,
                n_steps,
                walker_dir,
                walker.hills_file,
                settings.temperature_K,
                timestep,
                friction,
                seed + walker.index,
                restart,
                trajectory_interval,
            )
        )
    if not restart:
        from ase.io import write

        write(out / "starts.traj", [frames[k] for k in start_index], format="traj")
    start = time.perf_counter()
    runs = _map_walkers(tasks, executor)
    wall = time.perf_counter() - start
    previous_wall = stored.get("wall_time_s", [0.0] * n)
    write_json_atomic(
        out / "walkers.json",
        {
            "n_walkers": n,
            "read_stride": read_stride or settings.pace,
            "seeds": [task.seed for task in tasks],
            "start_index": start_index,
            "steps": [run.total_steps for run in runs],
            "wall_time_s": [
                w + r.wall_time_s for w, r in zip(previous_wall, runs, strict=True)
            ],
            "hills": [run.hills.name for run in runs],
            "walker_dirs": [run.output_dir.name for run in runs],
        },
    )
    logger.info("%d walkers: %d steps each in %.1f s", n, n_steps, wall)
    return WalkersRun(out, runs, wall)
