"""PLUMED input text for :mod:`analysis.metad`: units, CV shorthands, METAD lines.

Private helper of :mod:`analysis.metad` (everything here is re-exported there),
part of its one boundary between ASE and PLUMED units: the factors ``KJMOL``,
``NM`` and ``PS``, ASE's ``setMD*Units`` values, 0-based → 1-based atom indices,
and the CV and METAD input lines (kJ/mol, nm, ps, rad), with the ``WALKERS_*``
keywords of multiple-walkers runs (:class:`Walker`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from ase import Atoms, units

KJMOL: float = units.kJ / units.mol  #: eV per kJ/mol
NM: float = units.nm  #: Å per nm
PS: float = 1000.0 * units.fs  #: ASE time units per ps


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

    ref = cast(Atoms, read(reference))  # the last image
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


@dataclass(frozen=True)
class Walker:
    """One of ``n_walkers`` metadynamics walkers sharing their hills on disk.

    PLUMED's multiple walkers without MPI (Raiteri, Laio, Gervasio, Micheletti,
    Parrinello, JPCB 110, 3533 (2006)): walker ``index`` writes its hills to
    ``directory/HILLS.<index>`` and every ``read_stride`` steps reads the hills
    the other walkers appended to their files, so all walkers feel one bias.

    Parameters
    ----------
    n_walkers : int
        Number of walkers, >= 1.
    index : int
        This walker, 0-based as PLUMED's ``WALKERS_ID`` (0 <= index < n_walkers).
    directory : str or PathLike
        Shared directory of the ``HILLS.<i>`` files; stored as an absolute path
        (relative paths are resolved against the working directory).
    read_stride : int, optional
        Steps between reads of the other walkers' hills (``WALKERS_RSTRIDE``);
        default: the deposition ``pace``.

    Examples
    --------
    >>> Walker(2, 1, "/runs/mw").to_plumed(pace=500)
    'FILE=HILLS WALKERS_N=2 WALKERS_ID=1 WALKERS_DIR=/runs/mw WALKERS_RSTRIDE=500'
    >>> Walker(1, 0, "/runs/mw").to_plumed(pace=500)
    'FILE=/runs/mw/HILLS.0'
    """

    n_walkers: int
    index: int
    directory: str | os.PathLike[str]
    read_stride: int | None = None

    def __post_init__(self) -> None:
        # absolute now: PLUMED runs in each walker's own working directory
        object.__setattr__(self, "directory", str(Path(self.directory).resolve()))
        stride_ok = self.read_stride is None or self.read_stride >= 1
        if not (self.n_walkers >= 1 and 0 <= self.index < self.n_walkers):
            raise ValueError(
                f"expected n_walkers >= 1 and 0 <= index < n_walkers (0-based), got "
                f"n_walkers={self.n_walkers}, index={self.index}"
            )
        if not stride_ok or any(c.isspace() for c in str(self.directory)):
            raise ValueError(
                f"expected read_stride >= 1 (or None for the pace) and a directory "
                f"without spaces (PLUMED splits its input on them), got read_stride="
                f"{self.read_stride}, directory {self.directory!r}"
            )

    @property
    def hills_file(self) -> Path:
        """Absolute path of this walker's hills, ``directory/HILLS.<index>``."""
        return Path(self.directory) / f"HILLS.{self.index}"

    def to_plumed(self, pace: int) -> str:
        """``FILE`` and ``WALKERS_*`` keywords of the METAD line.

        PLUMED ignores ``WALKERS_DIR`` for a single walker (it would write HILLS
        in its working directory), so one walker gets ``FILE=<dir>/HILLS.0``.
        """
        if self.n_walkers == 1:
            return f"FILE={self.hills_file}"
        return (
            f"FILE=HILLS WALKERS_N={self.n_walkers} WALKERS_ID={self.index} "
            f"WALKERS_DIR={self.hills_file.parent} "
            f"WALKERS_RSTRIDE={self.read_stride or pace}"
        )


def build_plumed_input(
    cvs: Sequence[CollectiveVariable],
    settings: MetadynamicsSettings,
    work_dir: str | os.PathLike[str] = ".",
    walker: Walker | None = None,
) -> list[str]:
    """PLUMED input lines: CVs, METAD (file HILLS) and PRINT (file COLVAR).

    With ``walker`` (:class:`Walker`) PLUMED writes the hills to
    ``walker.hills_file`` (``<shared dir>/HILLS.<index>``) and, for two or more
    walkers, reads the other walkers' files (``WALKERS_*`` keywords).
    """
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
        f"PACE={settings.pace} TEMP={settings.temperature_K:g} "
        + (walker.to_plumed(settings.pace) if walker else "FILE=HILLS")
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
