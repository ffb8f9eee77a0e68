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
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import all_changes
from ase.calculators.plumed import Plumed

logger = logging.getLogger(__name__)

KJMOL: float = units.kJ / units.mol  #: eV per kJ/mol
NM: float = units.nm  #: Å per nm
PS: float = 1000.0 * units.fs  #: ASE time units per ps
NO_KERNEL_FIX = (
    "install the bundled kernel with `pip install --no-deps hillclimber` (or "
    "`pip install eformer[plumed]`), or set PLUMED_KERNEL to the path of "
    "libplumedKernel.so of a PLUMED 2 installation"
)


class PlumedInputError(ValueError):
    """PLUMED rejected its input; the message is PLUMED's own."""


def plumed_md_units() -> dict[str, float]:
    """``setMD*Units`` values (one ASE unit in PLUMED units), as ASE's Plumed sends."""
    return {
        "setMDEnergyUnits": 1.0 / KJMOL,  # eV -> kJ/mol
        "setMDLengthUnits": 1.0 / NM,  # Å -> nm
        "setMDTimeUnits": 1.0 / PS,  # ASE time -> ps
        "setMDChargeUnits": 1.0,  # e
        "setMDMassUnits": 1.0,  # amu
    }


def kT_kJmol(temperature_K: float) -> float:
    """Thermal energy k_B T in kJ/mol at ``temperature_K``."""
    return float(units.kB * temperature_K / KJMOL)


def plumed_atoms(indices: Sequence[int]) -> str:
    """Format 0-based atom indices as a PLUMED (1-based) comma-separated list."""
    return ",".join(str(int(i) + 1) for i in indices)


@dataclass(frozen=True)
class CollectiveVariable:
    """A CV from a shorthand (:func:`parse_cv`).

    ``kind``: distance, angle, torsion, coordination or rmsd. ``atoms`` are 0-based
    (coordination: group A, the first ``group_a_size``, then group B); ``r0_nm``
    in nm; ``reference`` a structure file.
    """

    label: str
    kind: str
    atoms: tuple[int, ...] = ()
    group_a_size: int = 0
    r0_nm: float = 0.0
    reference: str = ""

    @property
    def periodic(self) -> bool:
        """True for torsions (domain [-π, π))."""
        return self.kind == "torsion"

    def to_plumed(self, work_dir: Path) -> list[str]:
        """PLUMED input line(s) defining this CV (1-based atoms, nm, rad)."""
        head = f"{self.label}: {self.kind.upper()}"
        if self.kind == "coordination":
            a, b = self.atoms[: self.group_a_size], self.atoms[self.group_a_size :]
            return [
                f"{head} GROUPA={plumed_atoms(a)} GROUPB={plumed_atoms(b)} "
                f"R_0={self.r0_nm:g} NN=6 MM=12"
            ]
        if self.kind == "rmsd":
            ref = _rmsd_reference(self.reference, work_dir / f"{self.label}_ref.pdb")
            return [f"{head} REFERENCE={ref} TYPE=OPTIMAL"]
        return [f"{head} ATOMS={plumed_atoms(self.atoms)}"]


_NATOMS = {"distance": 2, "angle": 3, "torsion": 4}
_SPEC_HELP = (
    "expected 'distance:i,j', 'angle:i,j,k', 'torsion:i,j,k,l', "
    "'coordination:A;B(r0)' (groups '0,1' or '0-5', r0 in nm or suffixed 'A') or "
    "'rmsd:reference.pdb', optionally prefixed 'label='; atom indices are 0-based"
)


def parse_cv(spec: str, default_label: str = "cv1") -> CollectiveVariable:
    """Parse a CV shorthand such as ``"phi=torsion:4,6,8,14"`` (0-based atoms).

    Examples
    --------
    >>> parse_cv("distance:0,1").to_plumed(Path("."))
    ['cv1: DISTANCE ATOMS=1,2']
    >>> parse_cv("coordination:0;1-3(2.5A)").r0_nm
    0.25
    """
    label, sep, rest = spec.partition("=")
    if not sep or ":" in label:
        label, rest = default_label, spec
    kind, sep, body = (part.strip() for part in rest.partition(":"))
    kind = kind.lower()
    if not sep or not re.fullmatch(r"[A-Za-z_]\w*", label):
        raise ValueError(f"bad CV spec {spec!r}: {_SPEC_HELP}")
    try:
        if kind in _NATOMS:
            atoms = _parse_group(body)
            if len(atoms) != _NATOMS[kind]:
                raise ValueError(
                    f"{kind} needs {_NATOMS[kind]} atoms, got {len(atoms)}"
                )
            return CollectiveVariable(label, kind, atoms)
        if kind == "coordination":
            m = re.fullmatch(r"(.+);(.+)\(\s*([\d.eE+-]+)\s*(nm|A|Å)?\s*\)", body)
            if not m:
                raise ValueError("coordination needs 'A;B(r0)'")
            a, b = _parse_group(m.group(1)), _parse_group(m.group(2))
            r0 = float(m.group(3)) / (NM if m.group(4) in ("A", "Å") else 1.0)
            return CollectiveVariable(label, kind, a + b, len(a), r0_nm=r0)
        if kind == "rmsd" and body:
            return CollectiveVariable(label, kind, reference=str(Path(body).resolve()))
    except ValueError as err:
        raise ValueError(f"bad CV spec {spec!r}: {err}; {_SPEC_HELP}") from err
    raise ValueError(f"bad CV spec {spec!r}: {_SPEC_HELP}")


def _parse_group(text: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        out.extend(range(int(lo), int(hi) + 1) if dash else [int(lo)])
    return tuple(out)


def _rmsd_reference(reference: str, path: Path) -> Path:
    """PLUMED-ready PDB (occupancy = beta = 1: align and measure on every atom)."""
    from ase.io import read, write

    ref = read(reference)
    ref.set_array("occupancy", np.ones(len(ref)))
    ref.set_array("bfactor", np.ones(len(ref)))
    write(path, ref, format="proteindatabank")
    return path.resolve()


@dataclass(frozen=True)
class MetadynamicsSettings:
    """Well-tempered METAD parameters.

    ``height_kJmol`` initial hill height (kJ/mol); ``sigma`` widths in CV units
    (rad or nm), one per CV or one for all; ``biasfactor`` γ > 1; ``pace`` and
    ``colvar_stride`` in steps; ``grid`` (min, max) per CV in CV units (torsions
    default to ±π); with a grid, ``metad.rbias`` = V - c(t) is printed.
    """

    height_kJmol: float = 1.2
    sigma: tuple[float, ...] = (0.35,)
    biasfactor: float = 6.0
    pace: int = 500
    temperature_K: float = 300.0
    colvar_stride: int = 10
    grid: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        ok = self.biasfactor > 1 and self.height_kJmol > 0 and self.pace >= 1
        if not (ok and self.temperature_K > 0 and min(self.sigma, default=0) > 0):
            raise ValueError(
                "expected biasfactor > 1, height_kJmol > 0, pace >= 1, temperature_K "
                f"> 0 and sigma > 0, got {self}"
            )


def build_plumed_input(
    cvs: Sequence[CollectiveVariable],
    settings: MetadynamicsSettings,
    work_dir: str | os.PathLike[str] = ".",
) -> list[str]:
    """PLUMED input lines: CVs, METAD (file HILLS) and PRINT (file COLVAR)."""
    n = len(cvs)
    sigma = settings.sigma * n if len(settings.sigma) == 1 else settings.sigma
    grid = settings.grid
    if grid is None and n and all(cv.periodic for cv in cvs):
        grid = ((-np.pi, np.pi),) * n
    if not n or len(sigma) != n or (grid is not None and len(grid) != n):
        raise ValueError(
            f"expected >= 1 CV with one sigma (or one for all) and grid range each, "
            f"got {n} CVs, sigma {sigma}, grid {grid}"
        )
    lines = [line for cv in cvs for line in cv.to_plumed(Path(work_dir))]
    args = ",".join(cv.label for cv in cvs)
    metad = (
        f"metad: METAD ARG={args} HEIGHT={settings.height_kJmol:g} "
        f"SIGMA={','.join(f'{s:g}' for s in sigma)} BIASFACTOR={settings.biasfactor:g} "
        f"PACE={settings.pace} TEMP={settings.temperature_K:g} FILE=HILLS"
    )
    printed = f"{args},metad.bias"
    if grid is not None:
        lo = ",".join("-pi" if np.isclose(g[0], -np.pi) else f"{g[0]:g}" for g in grid)
        hi = ",".join("pi" if np.isclose(g[1], np.pi) else f"{g[1]:g}" for g in grid)
        metad += f" GRID_MIN={lo} GRID_MAX={hi} CALC_RCT"
        printed += ",metad.rbias"
    return [
        *lines,
        metad,
        f"PRINT ARG={printed} STRIDE={settings.colvar_stride} FILE=COLVAR",
    ]


def include_plumed_file(
    path: str | os.PathLike[str], output_dir: str | os.PathLike[str]
) -> list[str]:
    """Copy a raw PLUMED input to ``output_dir/plumed.dat``; return a line including it.

    PLUMED parses the file itself (comments, ``...`` continuation lines).
    """
    src, dst = Path(path), Path(output_dir) / "plumed.dat"
    if not src.is_file():
        raise FileNotFoundError(f"PLUMED input {src} not found")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)
    return ["INCLUDE FILE=plumed.dat"]


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


class BiasedCalculator(Plumed):  # type: ignore[misc]
    """ASE's Plumed calculator with ``free_energy``, a cheap state check, energy units.

    Each ``calculate`` advances PLUMED one step, so results are reused while the
    atoms do not move; ASE's generic check (``allclose`` on every array) costs more
    than a toy potential, so positions, cell, pbc and numbers are compared.
    """

    implemented_properties = ("energy", "free_energy", "forces", "stress")
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
        return super().compute_bias(pos, istep, unbiased_energy * scale)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Any = None,
        system_changes: Any = all_changes,
    ) -> None:
        """Biased energy (eV), forces (eV/Å) and, for 3D cells, stress (eV/Å³)."""
        super().calculate(atoms, properties or ["energy", "forces"], system_changes)
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
            biased = BiasedCalculator(
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
    """A finished run: COLVAR and HILLS paths (PLUMED units), step counts, wall time."""

    output_dir: Path
    n_steps: int
    total_steps: int
    wall_time_s: float

    @property
    def colvar(self) -> Path:
        """COLVAR: time (ps), CVs (nm, rad), metad.bias (kJ/mol)."""
        return self.output_dir / "COLVAR"

    @property
    def hills(self) -> Path:
        """HILLS: deposited Gaussians, heights in kJ/mol."""
        return self.output_dir / "HILLS"


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
) -> MetadynamicsRun:
    """Langevin MD biased by PLUMED; COLVAR, HILLS, trajectory.traj in ``output_dir``.

    ``timestep`` in ASE time (``0.5 * units.fs``), ``friction`` in 1/ASE time.
    PLUMED runs in ``output_dir`` (files it reads need absolute paths).
    ``restart=True`` extends the run in ``output_dir`` from the positions and
    momenta of ``restart.traj`` and its step count, with PLUMED RESTART reading
    HILLS back so no bias is lost (``atoms`` gives masses, constraints).
    """
    from ase.io import Trajectory, read
    from ase.md.langevin import Langevin

    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    atoms = atoms.copy()
    state = {"total_steps": 0, "plumed_step": 0}
    if restart:
        if not (out / "metad.json").is_file() or not (out / "HILLS").is_file():
            raise ValueError(f"cannot extend: no metad.json/HILLS in {out}; run first")
        state = json.loads((out / "metad.json").read_text())
        last = read(out / "restart.traj", index=-1)
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
    _save_restart(out, atoms, {"total_steps": total, "plumed_step": biased.istep})
    logger.info("metadynamics: %d steps in %.1f s (%d in total)", n_steps, wall, total)
    return MetadynamicsRun(out, n_steps, total, wall)


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
    write(out / ".restart.traj.tmp", frame, format="traj")
    os.replace(out / ".restart.traj.tmp", out / "restart.traj")
    (out / ".metad.json.tmp").write_text(json.dumps(state, indent=2) + "\n")
    os.replace(out / ".metad.json.tmp", out / "metad.json")


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
