"""Well-tempered metadynamics with the PLUMED 2 kernel around any ASE calculator.

:class:`ase.calculators.plumed.Plumed` wraps the unbiased calculator (EMT, LJ,
GFN2-xTB, eformer, ...); the dynamics is ASE Langevin. This module is the one
boundary between ASE and PLUMED units and conventions:

* Atom indices are 0-based in this API and the CLI, converted to PLUMED's 1-based
  numbering only in :func:`plumed_atoms`.
* The engine talks to PLUMED in ASE units (eV, Å, ASE time, amu, e), declared with
  ASE's ``setMD*Units`` values (:func:`plumed_md_units`). PLUMED inputs and the
  COLVAR/HILLS files are in PLUMED units: kJ/mol, nm, ps, rad; hence
  ``height_kJmol`` and ``sigma`` in CV units. Factors: ``KJMOL``, ``NM``, ``PS``.

Kernel: ``import plumed`` (hillclimber wheel) does
``os.environ.setdefault("PLUMED_KERNEL", <bundled>)``. :func:`find_plumed_kernel`
undoes that; a user's ``PLUMED_KERNEL`` wins, else the bundled kernel is used,
and the variable is set only while a PLUMED object is created, so child
processes keep the user's environment. PLUMED prints ``+++ Loading the PLUMED
kernel runtime +++`` on stderr when it loads: harmless.

CV shorthands, PLUMED input lines and the unit factors live in the private
:mod:`analysis._plumed_input`, multiple walkers sharing one bias
(:func:`run_walkers`) in :mod:`analysis._walkers`; both are re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import all_changes
from ase.calculators.plumed import Plumed

from analysis._plumed_input import (
    KJMOL,
    NM,
    PS,
    CollectiveVariable,
    MetadynamicsSettings,
    Walker,
    build_plumed_input,
    include_plumed_file,
    kT_kJmol,
    parse_cv,
    plumed_atoms,
    plumed_md_units,
)
from analysis._resume import calculator_identity, check_calculator
from analysis._walkers import WalkersRun, run_walkers
from asecalc.fileio import atomic_write, write_json_atomic

logger = logging.getLogger(__name__)

__all__ = [
    "KJMOL",
    "NM",
    "NO_KERNEL_FIX",
    "PS",
    "BiasedCalculator",
    "CollectiveVariable",
    "MetadynamicsRun",
    "MetadynamicsSettings",
    "PlumedInputError",
    "Walker",
    "WalkersRun",
    "build_plumed_input",
    "energy_units_ignored",
    "find_plumed_kernel",
    "include_plumed_file",
    "kT_kJmol",
    "make_plumed_calculator",
    "parse_cv",
    "plumed_atoms",
    "plumed_md_units",
    "run_metadynamics",
    "run_walkers",
]

NO_KERNEL_FIX = (
    "install the bundled kernel with `pip install --no-deps hillclimber` (or "
    "`pip install eformer[plumed]`), or set PLUMED_KERNEL to the path of "
    "libplumedKernel.so of a PLUMED 2 installation"
)


class PlumedInputError(ValueError):
    """PLUMED rejected its input; the message is PLUMED's own."""


def find_plumed_kernel() -> str:
    """The kernel to load: ``$PLUMED_KERNEL`` if set, else the bundled one.

    Imports ``plumed`` without leaving its PLUMED_KERNEL default in ``os.environ``;
    raises ImportError naming the fix when no kernel is found.
    """
    user_value = os.environ.get("PLUMED_KERNEL")
    try:
        import plumed
    except ImportError as err:
        raise ImportError(f"PLUMED Python bindings not found: {NO_KERNEL_FIX}") from err
    finally:
        _set_env("PLUMED_KERNEL", user_value)
    kernel = user_value or str(getattr(plumed, "BUNDLED_KERNEL_PATH", None) or "")
    if not Path(kernel).is_file():
        where = f"PLUMED_KERNEL={user_value!r} is not a file" if user_value else "none"
        raise ImportError(f"no PLUMED kernel ({where}): {NO_KERNEL_FIX}")
    return kernel


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@contextlib.contextmanager
def _kernel_environment(kernel: str) -> Iterator[None]:
    """Set PLUMED_KERNEL only while a PLUMED object is created."""
    old = os.environ.get("PLUMED_KERNEL")
    _set_env("PLUMED_KERNEL", kernel)
    try:
        yield
    finally:
        _set_env("PLUMED_KERNEL", old)


@functools.lru_cache(maxsize=4)
def energy_units_ignored(kernel: str) -> bool:
    """Whether ``kernel`` ignores setMDEnergyUnits for the energy of ``setEnergy``.

    PLUMED 2.10/2.11 do (the ENERGY CV then read eV as kJ/mol). Probe: with MD
    energy unit 2 kJ/mol, ``BIASVALUE`` of ENERGY at energy 1 must give a bias of
    1 (MD units); a kernel with the bug gives 0.5.
    """
    from plumed import Plumed as Kernel

    with _kernel_environment(kernel):
        p = Kernel()
    zeros, bias = np.zeros((1, 3)), np.zeros(1)
    setup = {"setMDEnergyUnits": 2.0, "setMDEngine": "python", "setNatoms": 1}
    for cmd, value in {**setup, "setTimestep": 1.0, "setLogFile": os.devnull}.items():
        p.cmd(cmd, value)
    p.cmd("init")
    p.cmd("readInputLine", "e: ENERGY")
    p.cmd("readInputLine", "BIASVALUE ARG=e")
    step = {"setStep": 0, "setMasses": np.ones(1), "setPositions": zeros}
    for cmd, value in {**step, "setForces": zeros.copy(), "setEnergy": 1.0}.items():
        p.cmd(cmd, value)
    p.cmd("setVirial", np.zeros((3, 3)))
    p.cmd("calc")
    p.cmd("getBias", bias)
    p.finalize()
    return bool(np.isclose(bias[0], 0.5))


class BiasedCalculator(Plumed):
    """ASE's Plumed calculator with ``free_energy``, a cheap state check, energy units.

    Each ``calculate`` advances PLUMED one step, so results are reused while the
    atoms do not move; ASE's generic check (``allclose`` on every array) costs more
    than a toy potential, so positions, cell, pbc and numbers are compared.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]  # noqa: RUF012
    #: Pass the energy in kJ/mol (kernels that ignore MD energy units).
    energy_in_plumed_units = False

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """Names of the properties of ``atoms`` changed since the last calculation."""
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return ["positions", "numbers", "cell", "pbc"]
        names = ("positions", "cell", "pbc", "numbers")
        return [
            k for k in names if not np.array_equal(getattr(old, k), getattr(atoms, k))
        ]

    def compute_bias(self, pos: Any, istep: int, unbiased_energy: float) -> Any:
        """PLUMED bias for one step (energy handed over in the units PLUMED reads)."""
        scale = 1.0 / KJMOL if self.energy_in_plumed_units else 1.0
        return super().compute_bias(pos, istep, unbiased_energy * scale)  # type: ignore[no-untyped-call]

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Any = None,
        system_changes: Any = all_changes,
    ) -> None:
        """Biased energy (eV), forces (eV/Å) and, for 3D cells, stress (eV/Å³)."""
        super().calculate(atoms, properties or ["energy", "forces"], system_changes)  # type: ignore[no-untyped-call]
        self.results["free_energy"] = self.results["energy"]


def make_plumed_calculator(
    atoms: Atoms,
    calc: Any,
    plumed_input: Sequence[str],
    timestep: float,
    temperature_K: float,
    log: str = "plumed.log",
    restart: bool = False,
) -> BiasedCalculator:
    """Wrap any ASE ``calc`` in a PLUMED bias (:class:`BiasedCalculator`).

    ``timestep`` in ASE time; ``plumed_input`` lines in PLUMED units, 1-based atoms;
    ``restart`` is PLUMED RESTART (append to files, read HILLS back). PLUMED gets
    positions (Å), masses (amu), cell and k_B T (eV). Raises PlumedInputError
    with PLUMED's own message if the input is rejected.
    """
    kernel = find_plumed_kernel()
    from plumed import PlumedError

    try:
        with _kernel_environment(kernel):
            biased = BiasedCalculator(  # type: ignore[no-untyped-call]
                calc,
                list(plumed_input),
                timestep,
                atoms=atoms,
                kT=units.kB * temperature_K,
                log=log,
                restart=restart,
            )
    except PlumedError as err:
        raise PlumedInputError(
            f"PLUMED rejected the input: {str(err).strip()}"
        ) from err
    except RuntimeError as err:
        raise ImportError(
            f"cannot load PLUMED kernel {kernel}: {err}; {NO_KERNEL_FIX}"
        ) from err
    biased.energy_in_plumed_units = energy_units_ignored(kernel)
    return biased


@dataclass
class MetadynamicsRun:
    """A finished run: COLVAR and HILLS paths (PLUMED units), step counts, wall time.

    ``hills_file``: where this run's hills are, if not ``output_dir/HILLS`` (a
    walker's ``HILLS.<i>`` in the shared directory).
    """

    output_dir: Path
    n_steps: int
    total_steps: int
    wall_time_s: float
    hills_file: Path | None = None

    @property
    def colvar(self) -> Path:
        """COLVAR: time (ps), CVs (nm, rad), metad.bias (kJ/mol)."""
        return self.output_dir / "COLVAR"

    @property
    def hills(self) -> Path:
        """HILLS: deposited Gaussians, heights in kJ/mol."""
        return self.hills_file or self.output_dir / "HILLS"


def run_metadynamics(
    atoms: Atoms,
    calc: Any,
    plumed_input: Sequence[str],
    n_steps: int,
    output_dir: str | os.PathLike[str],
    temperature_K: float = 300.0,
    timestep: float = 0.5 * units.fs,
    friction: float = 0.01 / units.fs,
    seed: int = 0,
    restart: bool = False,
    trajectory_interval: int = 100,
    hills_file: str | os.PathLike[str] | None = None,
) -> MetadynamicsRun:
    """Langevin MD biased by PLUMED; COLVAR, HILLS, trajectory.traj in ``output_dir``.

    ``timestep`` in ASE time (``0.5 * units.fs``), ``friction`` in 1/ASE time.
    PLUMED runs in ``output_dir`` (files it reads need absolute paths).
    ``restart=True`` extends the run in ``output_dir`` from the positions and
    momenta of ``restart.traj`` and its step count, with PLUMED RESTART reading
    HILLS back so no bias is lost (``atoms`` gives masses, constraints); it is
    refused if ``calc`` is not the calculator the run was made with (model
    fingerprint, or class and parameters), since the hills would then mix two
    energy surfaces.
    ``hills_file`` is where the METAD line writes the hills when that is not
    ``output_dir/HILLS`` (walkers: ``HILLS.<i>`` of the shared directory, see
    :func:`run_walkers`); a restart needs it to exist.
    """
    from ase.io import Trajectory, read
    from ase.md.langevin import Langevin

    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    hills = Path(hills_file).resolve() if hills_file is not None else None
    atoms = atoms.copy()
    state: dict[str, Any] = {"total_steps": 0, "plumed_step": 0}
    identity = calculator_identity(calc)
    if restart:
        if not (out / "metad.json").is_file() or not (hills or out / "HILLS").is_file():
            raise ValueError(
                f"cannot extend: no metad.json in {out} or no {hills or 'HILLS'}; "
                "run first"
            )
        state = json.loads((out / "metad.json").read_text())
        check_calculator(out / "metad.json", state, {"calculator": identity})
        last = cast(Atoms, read(out / "restart.traj", index=-1))
        atoms.positions, atoms.cell, atoms.pbc = last.positions, last.cell, last.pbc
        atoms.set_momenta(last.get_momenta())
    else:
        sqrt_mkt = np.sqrt(atoms.get_masses()[:, None] * units.kB * temperature_K)
        noise = np.random.default_rng(seed).standard_normal((len(atoms), 3))
        atoms.set_momenta(noise * sqrt_mkt)
    start = time.perf_counter()
    with _working_directory(out):
        biased = make_plumed_calculator(
            atoms, calc, plumed_input, timestep, temperature_K, restart=restart
        )
        biased.istep = int(state["plumed_step"])  # one PLUMED step per force call
        atoms.calc = biased
        rng = np.random.default_rng(seed + int(state["total_steps"]))
        dyn = Langevin(
            atoms,
            timestep,
            temperature_K=temperature_K,
            friction=friction,
            fixcm=False,
            rng=rng,
        )
        with Trajectory("trajectory.traj", "a" if restart else "w", atoms) as traj:
            dyn.attach(traj.write, interval=trajectory_interval)
            try:
                dyn.run(n_steps)
            finally:
                biased.plumed.finalize()
    wall = time.perf_counter() - start
    total = int(state["total_steps"]) + n_steps
    _save_restart(
        out,
        atoms,
        {"total_steps": total, "plumed_step": biased.istep, "calculator": identity},
    )
    logger.info("metadynamics: %d steps in %.1f s (%d in total)", n_steps, wall, total)
    return MetadynamicsRun(out, n_steps, total, wall, hills)


def _save_restart(out: Path, atoms: Atoms, state: dict[str, Any]) -> None:
    """Atomically save the last frame (with momenta) and the step counters."""
    from ase.io import write

    frame = Atoms(
        atoms.numbers,
        atoms.positions,
        cell=atoms.cell,
        pbc=atoms.pbc,
        momenta=atoms.get_momenta(),
        masses=atoms.get_masses(),
    )
    atomic_write(out / "restart.traj", lambda tmp: write(tmp, frame, format="traj"))
    write_json_atomic(out / "metad.json", state)


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
