"""Minima and barriers of a free-energy surface (watershed with union-find).

Private helper of :mod:`analysis.fes` (re-exported there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.metad import KJMOL

if TYPE_CHECKING:
    from analysis.fes import FreeEnergySurface


def _neighbours(
    index: tuple[int, ...], shape: tuple[int, ...], wrap: list[bool]
) -> Any:
    for axis in range(len(shape)):
        for step in (-1, 1):
            j = list(index)
            j[axis] += step
            if wrap[axis]:
                j[axis] %= shape[axis]
            elif not 0 <= j[axis] < shape[axis]:
                continue
            yield tuple(j)


def find_minima(
    fes: FreeEnergySurface, min_depth_kT: float = 1.0
) -> tuple[list[tuple[int, ...]], dict[tuple[int, int], tuple[int, ...]]]:
    """Basins of ``fes`` and the lowest saddle between every pair of them.

    Grid points are flooded in order of increasing free energy (watershed with
    union-find; periodic CVs wrap). A basin shallower than ``min_depth_kT`` below
    the saddle joining it to a deeper basin is merged into that basin.

    Returns
    -------
    minima : list of tuple of int
        Grid indices of the minima, lowest free energy first.
    saddles : dict
        ``{(i, j): grid index}`` of the lowest saddle between minima i < j.
    """
    f = fes.free_energy
    shape, wrap = f.shape, [p is not None for p in fes.periodic]
    order = [np.unravel_index(k, shape) for k in np.argsort(f, axis=None)]
    parent: dict[tuple[int, ...], tuple[int, ...]] = {}
    members: dict[tuple[int, ...], list[tuple[int, ...]]] = {}  # root -> its minima
    saddles: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[int, ...]] = {}

    def root(p: tuple[int, ...]) -> tuple[int, ...]:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for p in order:
        if not np.isfinite(f[p]):
            continue
        parent[p] = p
        members[p] = [p]
        for q in _neighbours(p, shape, wrap):
            if q not in parent or root(p) == root(q):
                continue
            a, b = sorted(
                (root(p), root(q)), key=lambda r: f[r]
            )  # roots are lowest points
            if f[p] - f[b] < min_depth_kT * fes.kT:  # b too shallow to count as a basin
                members[b] = [m for m in members[b] if m != b]
            for m in members[a]:
                for n in members[b]:
                    saddles.setdefault((m, n), p)
            parent[b] = a
            members[a] = members[a] + members.pop(b)
    minima = sorted({m for ms in members.values() for m in ms}, key=lambda m: f[m])
    pairs = {}
    for i, m in enumerate(minima):
        for j, n in enumerate(minima[i + 1 :], start=i + 1):
            pairs[(i, j)] = saddles.get((m, n)) or saddles.get((n, m))
    return minima, {k: v for k, v in pairs.items() if v is not None}


def summarize(fes: FreeEnergySurface, min_depth_kT: float = 1.0) -> dict[str, Any]:
    """JSON-able minima and barriers (kJ/mol, eV and kT) of ``fes``."""
    minima, saddles = find_minima(fes, min_depth_kT)
    kt = fes.kT

    def energies(value_eV: float) -> dict[str, float]:
        return {"kJmol": value_eV / KJMOL, "eV": value_eV, "kT": value_eV / kt}

    def where(index: tuple[int, ...]) -> dict[str, float]:
        return {
            n: float(ax[i])
            for n, ax, i in zip(fes.cv_names, fes.axes, index, strict=True)
        }

    f = fes.free_energy
    return {
        "method": fes.method,
        "temperature_K": fes.temperature_K,
        "cv_names": list(fes.cv_names),
        "kT": energies(kt),
        "minima": [
            {
                "index": k,
                "cv": where(m),
                "free_energy": energies(float(f[m])),
                "error": None if fes.error is None else energies(float(fes.error[m])),
            }
            for k, m in enumerate(minima)
        ],
        "barriers": [
            {
                "from": i,
                "to": j,
                "saddle_cv": where(s),
                "forward": energies(float(f[s] - f[minima[i]])),
                "backward": energies(float(f[s] - f[minima[j]])),
            }
            for (i, j), s in saddles.items()
        ],
    }
