"""PLUMED HILLS/COLVAR files and the sum of deposited hills (PLUMED's kernel).

Private helper of :mod:`analysis.fes` (re-exported there). Everything here is in
PLUMED units: CVs in nm or rad, time in ps, energies in kJ/mol.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

Range = tuple[float, float]


@dataclass
class PlumedTable:
    """Columns of a PLUMED output file.

    ``fields``: names from ``#! FIELDS``; ``data``: shape (n_rows, n_fields) in
    PLUMED units (ps, nm, rad, kJ/mol); ``periodic``: ``{name: (min, max)}`` from
    ``#! SET min_x/max_x``; ``constants``: every ``#! SET`` as text.
    """

    fields: list[str]
    data: NDArray[np.float64]
    periodic: dict[str, Range]
    constants: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> NDArray[np.float64]:
        if name not in self.fields:
            raise KeyError(f"no column {name!r}; the file has {self.fields}")
        return self.data[:, self.fields.index(name)]


def read_plumed_file(path: str | os.PathLike[str]) -> PlumedTable:
    """Read a COLVAR or HILLS file (restarted files with repeated headers too)."""
    fields: list[str] = []
    consts: dict[str, float] = {}
    text: dict[str, str] = {}
    rows: list[list[float]] = []
    for line in Path(path).read_text().splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "#!" and len(words) > 2 and words[1] == "FIELDS":
            fields = words[2:]
        elif words[0] == "#!" and len(words) > 3 and words[1] == "SET":
            text[words[2]] = words[3]
            value = _plumed_number(words[3])
            if value is not None:
                consts[words[2]] = value
        elif not words[0].startswith("#") and len(words) == len(fields):
            rows.append([float(w) for w in words])
    if not fields or not rows:
        raise ValueError(f"{path} is not a PLUMED COLVAR/HILLS file with data rows")
    periodic = {
        f: (consts[f"min_{f}"], consts[f"max_{f}"])
        for f in fields
        if f"min_{f}" in consts
    }
    return PlumedTable(fields, np.array(rows), periodic, text)


def hills_files(path: str | os.PathLike[str]) -> list[Path]:
    """HILLS files of a run: ``path`` itself if a file; in a directory every
    walker's ``HILLS.<i>`` (in walker order), else its ``HILLS``; else []."""
    return _run_files(Path(path), "HILLS.", "HILLS")


def colvar_files(path: str | os.PathLike[str]) -> list[Path]:
    """COLVAR files of a run: ``path`` itself if a file; in a directory every
    ``walker_<i>/COLVAR`` (in walker order), else its ``COLVAR``; else []."""
    return _run_files(Path(path), "walker_", "COLVAR", "COLVAR")


def _run_files(path: Path, prefix: str, single: str, inner: str = "") -> list[Path]:
    if path.is_file():
        return [path]
    numbered = {
        int(p.name[len(prefix) :]): p / inner
        for p in path.glob(f"{prefix}*")
        if p.name[len(prefix) :].isdigit() and (p / inner).is_file()
    }
    if numbered:
        return [numbered[k] for k in sorted(numbered)]
    return [path / single] if (path / single).is_file() else []


def read_hills(path: str | os.PathLike[str]) -> PlumedTable:
    """All hills of a run, sorted by time: a HILLS file, or a directory holding
    HILLS or the ``HILLS.<i>`` of multiple walkers (concatenated).

    Rows of equal time keep walker order (stable sort), so the first ``n`` rows
    are the hills deposited up to a simulation time by all walkers together.
    """
    return _concatenate(hills_files(path), path, "HILLS")


def read_colvars(path: str | os.PathLike[str]) -> PlumedTable:
    """All COLVAR samples of a run, sorted by time: a COLVAR file, or a directory
    holding COLVAR or the ``walker_<i>/COLVAR`` of multiple walkers.

    Sorting interleaves the walkers, so a leading fraction of the rows is the
    same early part of every walker's trajectory and contiguous blocks of rows
    are blocks of simulation time (for :func:`analysis.fes.fes_from_colvar`).
    """
    return _concatenate(colvar_files(path), path, "COLVAR")


def _concatenate(
    files: list[Path], path: str | os.PathLike[str], kind: str
) -> PlumedTable:
    if not files:
        raise FileNotFoundError(
            f"no {kind} file at {path}: expected a {kind} file or a run directory"
        )
    tables = [read_plumed_file(f) for f in files]
    first = tables[0]
    for f, t in zip(files[1:], tables[1:], strict=True):
        if t.fields != first.fields or t.periodic != first.periodic:
            raise ValueError(
                f"{f} has columns {t.fields} (periodic {t.periodic}), {files[0]} "
                f"has {first.fields} (periodic {first.periodic}): not one run"
            )
    data = np.concatenate([t.data for t in tables])
    order = np.argsort(data[:, first.fields.index("time")], kind="stable")
    return PlumedTable(first.fields, data[order], first.periodic, first.constants)


def _plumed_number(text: str) -> float | None:
    """Value of a ``#! SET`` constant (a number, ``pi`` or ``-pi``), else None."""
    try:
        return {"pi": np.pi, "-pi": -np.pi}.get(text) or float(text)
    except ValueError:
        return None


def make_grid(
    values: list[NDArray[np.float64]],
    pad: list[float],
    periodic: list[Range | None],
    bins: int,
    ranges: list[Range] | None,
) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
    """Bin edges and centres per CV: periodic domain, given range or data ± pad."""
    edges, centres = [], []
    for k, v in enumerate(values):
        lo, hi = (
            ranges[k]
            if ranges
            else (periodic[k] or (v.min() - pad[k], v.max() + pad[k]))
        )
        e = np.linspace(lo, hi, bins + 1)
        edges.append(e)
        centres.append(0.5 * (e[1:] + e[:-1]))
    return edges, centres


def _delta(x: NDArray[np.float64], c: NDArray[np.float64], period: Range | None) -> Any:
    """x[None, :] - c[:, None] with minimum-image wrapping for periodic CVs."""
    d = x[None, :] - c[:, None]
    if period is not None:
        length = period[1] - period[0]
        d -= length * np.round(d / length)
    return d


def hills_bias(
    hills: PlumedTable, cv_names: list[str], points: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Σ of the HILLS kernels at ``points`` of shape (n_points, n_cvs); kJ/mol.

    Uses PLUMED's kernel: for ``kerneltype stretched-gaussian`` (PLUMED ≥ 2.8) the
    Gaussian is cut at d²/2 = 6.25 and shifted/stretched to reach zero there.
    """
    stretched = hills.constants.get("kerneltype") == "stretched-gaussian"
    shift = np.exp(-6.25)
    total = np.zeros(len(points))
    for start in range(0, len(points), 1000):
        chunk = points[start : start + 1000]
        d2 = np.zeros((len(hills.data), len(chunk)))
        for k, name in enumerate(cv_names):
            d = _delta(chunk[:, k], hills[name], hills.periodic.get(name))
            d2 += (d / hills[f"sigma_{name}"][:, None]) ** 2
        g = np.exp(-0.5 * d2)
        if stretched:
            g = np.where(d2 < 12.5, (g - shift) / (1.0 - shift), 0.0)
        total[start : start + 1000] = hills["height"] @ g
    return total


def final_bias(
    hills: PlumedTable, cv_names: list[str], samples: NDArray[np.float64]
) -> Any:
    """Bias V(s) in kJ/mol of all ``hills`` at ``samples`` (n_samples, n_cvs)."""
    gamma = hills["biasf"][0] if "biasf" in hills.fields else np.inf
    scale = 1.0 if np.isinf(gamma) else (gamma - 1.0) / gamma  # undo γ/(γ-1) of HILLS
    return scale * hills_bias(hills, cv_names, samples)
