"""One λ window of thermodynamic integration: Langevin NVT with resumable samples.

Private helper of :mod:`analysis.ti`. A window file ``window_XX.npz`` holds the
run settings, the samples ``u_a``/``u_b`` (eV, one per ``sample_interval``
steps), the last positions (Å) and momenta (amu·Å/ASE time) and the random
generator state, rewritten atomically every ``checkpoint_interval`` steps. A
finished file is loaded, a partial one continued exactly, an unreadable one
(truncated by a crash) redone from scratch.
"""

from __future__ import annotations

import copy
import json
import logging
import multiprocessing as mp
import os
import sys
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import all_changes
from ase.calculators.mixing import MixedCalculator
from ase.constraints import FixCom
from ase.md.langevin import Langevin

from analysis._resume import calculator_identity
from asecalc.fileio import atomic_write

logger = logging.getLogger(__name__)

#: Settings that must match for a window file to be reused.
_CHECKED = (
    "lambda_",
    "temperature_K",
    "timestep",
    "friction",
    "sample_interval",
    "fix_com",
    "seed",
)


class LambdaCalculator(MixedCalculator):
    """``U(λ) = (1 − λ)·U_A + λ·U_B`` with energies, forces and stress.

    ASE's :class:`~ase.calculators.mixing.MixedCalculator` with a leaner
    update: each end-state calculator is evaluated once per geometry for
    energy and forces (and stress when asked), and geometry changes are
    detected by exact array comparison instead of ASE's per-property
    ``allclose`` checks, which cost more than an EMT step. Results also hold
    ``energy_contributions`` (U_A, U_B in eV) and ``forces_contributions``.

    Parameters
    ----------
    calc_a, calc_b : ASE calculators
        End states.
    lambda_ : float
        Coupling parameter in [0, 1].
    """

    def __init__(self, calc_a: Any, calc_b: Any, lambda_: float) -> None:
        if not 0.0 <= lambda_ <= 1.0:
            raise ValueError(f"lambda_ must be in [0, 1], got {lambda_}")
        super().__init__(calc_a, calc_b, 1.0 - lambda_, lambda_)  # type: ignore[no-untyped-call]
        self.lambda_ = float(lambda_)

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """Changed properties of ``atoms`` since the last calculation (exact)."""
        old = self.atoms
        if old is None:
            return list(all_changes)
        changes = []
        if not np.array_equal(old.positions, atoms.positions):
            changes.append("positions")
        if not np.array_equal(old.numbers, atoms.numbers):
            changes.append("numbers")
        if not np.array_equal(old.cell.array, atoms.cell.array):
            changes.append("cell")
        if not np.array_equal(old.pbc, atoms.pbc):
            changes.append("pbc")
        for name in ("initial_magmoms", "initial_charges"):
            if not np.array_equal(old.arrays.get(name, 0), atoms.arrays.get(name, 0)):
                changes.append(name)
        return changes

    def calculate(self, atoms: Atoms, properties: Any, system_changes: Any) -> None:
        """Evaluate both end states once and mix energy, forces (and stress)."""
        wanted = ["energy", "forces"]
        if "stress" in properties:
            wanted.append("stress")
        contributions: dict[str, list[Any]] = {key: [] for key in wanted}
        for calc in self.mixer.calcs:
            if system_changes or calc.atoms is None:
                # what BaseCalculator.get_property does, once for all properties
                calc.atoms = atoms.copy() if calc.use_cache else None
                calc.results = {}
                calc.calculate(atoms, wanted, system_changes or list(all_changes))
            for key in wanted:
                value = calc.results.get(key)
                if value is None:
                    value = calc.get_property(key, atoms)
                contributions[key].append(np.asarray(value, dtype=float))
        w_a, w_b = self.mixer.weights
        self.atoms = atoms.copy()
        self.results = {}
        for key, (a, b) in contributions.items():
            self.results[key] = w_a * a + w_b * b
            self.results[f"{key}_contributions"] = [a, b]
        self.results["energy"] = float(self.results["energy"])
        self.results["free_energy"] = self.results["energy"]

    def get_energy_contributions(self, atoms: Atoms | None = None) -> list[float]:
        """``[U_A, U_B]`` in eV at ``atoms`` (cached)."""
        self.get_property("energy", atoms)  # type: ignore[no-untyped-call]
        return [float(e) for e in self.results["energy_contributions"]]


@dataclass
class WindowTask:
    """Everything one window needs; pickled to worker processes."""

    atoms: Atoms
    calc_a: Any
    calc_b: Any
    lambda_: float
    temperature_K: float
    n_steps: int
    timestep: float
    friction: float
    sample_interval: int
    checkpoint_interval: int
    fix_com: bool
    seed: int
    path: str | None
    start_displacement: Any = None  # ndarray (n_atoms, 3) in Å, or None


def draw_momenta(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell–Boltzmann momenta (amu·Å/ASE time); constraints such as FixCom apply."""
    sigma = np.sqrt(atoms.get_masses() * units.kB * temperature_K)  # (n_atoms,)
    atoms.set_momenta(rng.standard_normal((len(atoms), 3)) * sigma[:, None])


def _save(path: str, data: dict[str, Any]) -> None:
    def savez(tmp: str) -> None:
        with open(tmp, "wb") as handle:  # a handle: np.savez(str) would add ".npz"
            np.savez(handle, **data)

    atomic_write(path, savez)


def _load(task: WindowTask) -> dict[str, Any] | None:
    """Stored window data, or None if absent or unreadable."""
    if task.path is None or not Path(task.path).exists():
        return None
    try:
        with np.load(task.path) as npz:
            data = {key: npz[key] for key in npz.files}
        settings = json.loads(str(data["settings"]))
    except Exception as err:
        logger.warning("window file %s unreadable (%s); redoing it", task.path, err)
        return None
    for key in _CHECKED:
        if not np.isclose(float(settings[key]), float(getattr(task, key))):
            raise ValueError(
                f"{task.path} was written with {key}={settings[key]}, this run asks "
                f"for {getattr(task, key)}; use a new output directory or delete it"
            )
    stored_calcs = settings.get("calculators")  # absent in files of older versions
    if stored_calcs is not None and stored_calcs != _calculators(task):
        raise ValueError(
            f"{task.path} was written with the calculators {stored_calcs} (states A, "
            f"B), this run has {_calculators(task)}; a window mixing two models "
            "would give a wrong free energy: use a new output directory"
        )
    if len(data["positions"]) != len(task.atoms):
        raise ValueError(
            f"{task.path} holds {len(data['positions'])} atoms, the structure has "
            f"{len(task.atoms)}; use a new output directory"
        )
    return data


def _calculators(task: WindowTask) -> list[str]:
    return [calculator_identity(task.calc_a), calculator_identity(task.calc_b)]


def _settings(task: WindowTask) -> str:
    settings: dict[str, Any] = {key: getattr(task, key) for key in _CHECKED}
    return json.dumps({**settings, "calculators": _calculators(task)})


#: Tasks inherited by forked worker processes (see :func:`set_inherited_tasks`).
_INHERITED: list[WindowTask] = []


def set_inherited_tasks(tasks: list[WindowTask]) -> None:
    """Process-pool initializer: with the fork start method the tasks (and their
    calculators, which need not be picklable) are inherited, not pickled.

    A forked child must not enter an OpenMP parallel region that its parent
    started: libgomp's worker threads do not survive ``fork`` and the child
    hangs in the first multi-threaded torch operation. Each worker therefore
    runs torch on one thread (the pool already spreads windows over the cores).
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    _INHERITED[:] = tasks


def run_inherited(index: int) -> dict[str, Any]:
    """Run window ``index`` of the tasks set by :func:`set_inherited_tasks`."""
    return run_window(_INHERITED[index])


def _private_copy(calc: Any) -> Any:
    """A copy of ``calc`` so windows run in threads never share one."""
    try:
        return copy.deepcopy(calc)
    except Exception as err:
        logger.debug("cannot copy %s (%s); windows share it", type(calc).__name__, err)
        return calc


def run_window(task: WindowTask) -> dict[str, Any]:
    """Run (or load, or continue) one window.

    Returns
    -------
    dict
        ``u_a``, ``u_b``: ndarray, shape (n_samples,), energies of the two end
        states in eV at each sample; ``status``: ``loaded`` (finished on disk),
        ``resumed`` (continued from a partial file) or ``computed``.
    """
    stored = _load(task)
    n_target = task.n_steps // task.sample_interval
    if stored is not None and len(stored["u_a"]) >= n_target:
        return {
            "u_a": stored["u_a"][:n_target],
            "u_b": stored["u_b"][:n_target],
            "status": "loaded",
        }
    atoms = task.atoms.copy()
    if task.fix_com and not any(isinstance(c, FixCom) for c in atoms.constraints):
        atoms.set_constraint([*atoms.constraints, FixCom()])
    rng = np.random.default_rng(task.seed)
    calc = LambdaCalculator(
        _private_copy(task.calc_a), _private_copy(task.calc_b), task.lambda_
    )
    atoms.calc = calc
    if stored is None:
        u_a: list[float] = []
        u_b: list[float] = []
        if task.start_displacement is not None:
            atoms.set_positions(atoms.positions + task.start_displacement)
        draw_momenta(atoms, task.temperature_K, rng)
        status = "computed"
    else:
        u_a, u_b = list(stored["u_a"]), list(stored["u_b"])
        atoms.set_positions(stored["positions"], apply_constraint=False)
        atoms.set_momenta(stored["momenta"], apply_constraint=False)
        rng.bit_generator.state = json.loads(str(stored["rng_state"]))
        status = "resumed"
        logger.info(
            "λ=%.4f: resuming at step %d", task.lambda_, len(u_a) * task.sample_interval
        )
    dyn = Langevin(
        atoms,
        task.timestep,
        temperature_K=task.temperature_K,
        friction=task.friction,
        fixcm=False,
        rng=rng,
    )
    while len(u_a) < n_target:
        for _ in range(task.checkpoint_interval // task.sample_interval):
            dyn.run(task.sample_interval)
            e_a, e_b = calc.get_energy_contributions(atoms)
            u_a.append(float(e_a))
            u_b.append(float(e_b))
            if len(u_a) >= n_target:
                break
        if task.path is not None:
            _save(
                task.path,
                {
                    "settings": np.array(_settings(task)),
                    "u_a": np.array(u_a),
                    "u_b": np.array(u_b),
                    "positions": atoms.get_positions(),
                    "momenta": atoms.get_momenta(),
                    "rng_state": np.array(json.dumps(rng.bit_generator.state)),
                },
            )
    return {"u_a": np.array(u_a), "u_b": np.array(u_b), "status": status}


def run_windows(
    tasks: list[WindowTask], executor: Executor | None, n_workers: int | None
) -> list[dict[str, Any]]:
    """Run every window through ``executor`` or a default process pool."""
    if executor is not None:
        return list(executor.map(run_window, tasks))
    workers = n_workers or min(len(tasks), os.cpu_count() or 1)
    if workers <= 1:
        return [run_window(task) for task in tasks]
    if "fork" not in mp.get_all_start_methods():
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run_window, tasks))
    # Forked workers inherit the calculators, which therefore need not pickle.
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("fork"),
        initializer=set_inherited_tasks,
        initargs=(tasks,),
    ) as pool:
        return list(pool.map(run_inherited, range(len(tasks))))
