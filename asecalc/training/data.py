"""Labelled structures from ASE databases (or any file ase.io reads) -> graphs.

Labels come from the calculator results stored with each row (``row.energy``,
``row.forces``, ``row.stress``), never from ``atoms.info``. Databases are read
lazily by row id, so a database larger than memory still trains; graphs of
rows seen once are cached up to ``cache_size`` structures.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

from asecalc.graph import atoms_to_graph, batch_graphs

logger = logging.getLogger(__name__)


@dataclass
class Labelled:
    """One reference structure with its labels (ASE units).

    Attributes
    ----------
    atoms : ase.Atoms
    energy : float
        eV.
    forces : ndarray, shape (n_atoms, 3), or None
        eV/Å.
    stress : ndarray, shape (6,), or None
        eV/Å³, Voigt order, ASE sign.
    key : str
        Where it came from (``db.db:id=12``), for error messages.
    """

    atoms: Atoms
    energy: float
    forces: np.ndarray | None
    stress: np.ndarray | None
    key: str


def _labels_of(atoms: Atoms, key: str, energy_only: bool) -> Labelled:
    calc = atoms.calc
    results = getattr(calc, "results", {}) if calc is not None else {}
    if "energy" not in results:
        raise ValueError(f"{key}: no energy label (store results with a calculator)")
    energy = float(results["energy"])
    forces = results.get("forces")
    if forces is None and not energy_only:
        raise ValueError(
            f"{key}: no forces label; pass --energy-only to train on energies only"
        )
    stress = results.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (3, 3):
            stress = stress.reshape(9)[[0, 4, 8, 5, 2, 1]]
    if not np.isfinite(energy) or (
        forces is not None and not np.isfinite(forces).all()
    ):
        raise ValueError(f"{key}: NaN or inf in energy/forces labels")
    if stress is not None and not np.isfinite(stress).all():
        raise ValueError(f"{key}: NaN or inf in stress label")
    atoms = atoms.copy()
    atoms.calc = None
    return Labelled(
        atoms,
        energy,
        None if forces is None else np.asarray(forces, float),
        stress,
        key,
    )


class StructureSource:
    """Random access to labelled structures of a database or file.

    Parameters
    ----------
    path : str or Path
        ASE database (``.db``) or any file ase.io reads with results (extxyz).
    select : str, optional
        ase.db query (``"split=train"``); for other files an index (``"::2"``).
    energy_only : bool
        Allow rows without forces.
    """

    def __init__(
        self, path: str | Path, select: str | None = None, energy_only: bool = False
    ):
        self.path = Path(path)
        self.energy_only = energy_only
        if not self.path.exists():
            raise FileNotFoundError(f"labelled data {str(self.path)!r} not found")
        self._db: Any = None
        self._items: list[Labelled] | None = None
        if self.path.suffix == ".db":
            import ase.db

            self._db = ase.db.connect(str(self.path))
            try:
                self.ids = [
                    row.id for row in self._db.select(select or "", include_data=False)
                ]
            except Exception as err:
                raise ValueError(f"bad --select query {select!r}: {err}") from err
        else:
            import ase.io

            images = ase.io.read(str(self.path), index=select or ":")
            images = images if isinstance(images, list) else [images]
            self._items = [
                _labels_of(a, f"{self.path.name}:{i}", energy_only)
                for i, a in enumerate(images)
            ]
            self.ids = list(range(len(self._items)))
        if not self.ids:
            raise ValueError(
                f"no structures in {str(self.path)!r} match select={select!r}"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Labelled:
        if self._items is not None:
            return self._items[index]
        row_id = self.ids[index]
        row = self._db.get(id=row_id)
        return _labels_of(
            row.toatoms(), f"{self.path.name}:id={row_id}", self.energy_only
        )

    def row_value(self, index: int, key: str) -> Any:
        """Value of key-value pair ``key`` of a database row (or ``atoms.info``)."""
        if self._db is not None:
            return self._db.get(id=self.ids[index]).get(key, "?")
        return self[index].atoms.info.get(key, "?")


class ConcatSource:
    """Several :class:`StructureSource` objects behind one index."""

    def __init__(self, sources: Sequence[StructureSource]) -> None:
        self.sources = list(sources)
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])
        self.path = self.sources[0].path

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[StructureSource, int]:
        """The source holding global ``index`` and the index within it."""
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.sources[k], index - int(self.offsets[k])

    def __getitem__(self, index: int) -> Labelled:
        source, local = self.locate(index)
        return source[local]

    def row_value(self, index: int, key: str) -> Any:
        """Value of key-value pair ``key`` of a database row (or ``atoms.info``)."""
        source, local = self.locate(index)
        return source.row_value(local, key)


def open_sources(
    paths: str | Path | Sequence[str | Path], select: str | None, energy_only: bool
) -> ConcatSource:
    """Open one or several data files as one indexed source."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return ConcatSource([StructureSource(p, select, energy_only) for p in paths])


def labelled_to_graph(
    item: Labelled, elements: Sequence[str], cutoff: float, dtype: torch.dtype
) -> dict[str, Any]:
    """Graph dict with label tensors ``energy_ref``, ``forces_ref``, ``stress_ref``."""
    graph = atoms_to_graph(item.atoms, elements, cutoff, dtype=dtype)
    n = len(item.atoms)
    graph["energy_ref"] = torch.tensor([item.energy], dtype=dtype)
    graph["n_atoms"] = torch.tensor([n], dtype=dtype)
    graph["forces_ref"] = torch.as_tensor(
        item.forces if item.forces is not None else np.zeros((n, 3)), dtype=dtype
    )
    graph["has_forces"] = torch.full((n,), item.forces is not None)
    stress = np.zeros((3, 3))
    if item.stress is not None:
        from ase.stress import voigt_6_to_full_3x3_stress

        stress = voigt_6_to_full_3x3_stress(item.stress)
    graph["stress_ref"] = torch.as_tensor(stress[None], dtype=dtype)
    graph["has_stress"] = torch.tensor([item.stress is not None])
    return graph


class GraphDataset:
    """Graphs of a :class:`StructureSource` subset, built on demand (LRU cache)."""

    def __init__(
        self,
        source: StructureSource | ConcatSource,
        indices: Sequence[int] | np.ndarray,
        elements: Sequence[str],
        cutoff: float,
        dtype: torch.dtype = torch.float64,
        cache_size: int = 200_000,
    ) -> None:
        self.source = source
        self.indices = list(indices)
        self.elements = tuple(elements)
        self.cutoff = cutoff
        self.dtype = dtype
        self.cache_size = cache_size
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.indices)

    def graph(self, i: int) -> dict[str, Any]:
        """Graph of the ``i``-th structure of this subset."""
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        g = labelled_to_graph(
            self.source[self.indices[i]], self.elements, self.cutoff, self.dtype
        )
        self._cache[i] = g
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return g

    def batch(self, positions: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """One batched graph of the given subset positions."""
        return batch_graphs([self.graph(int(i)) for i in positions])


def split_indices(
    n: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split of ``range(n)``.

    At least one structure goes to each side when n > 1.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = round(val_fraction * n)
    if val_fraction > 0 and n > 1:
        n_val = min(max(n_val, 1), n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def fit_reference_energies(
    source: StructureSource | ConcatSource,
    indices: Sequence[int] | np.ndarray,
    elements: Sequence[str],
) -> tuple[np.ndarray, float]:
    """Per-element reference energies (eV) by least squares, and the force RMS (eV/Å).

    E_total ≈ Σ_species count_s · E0_s; elements absent from the data get 0.
    The force RMS (over all components) sets the scale of the atomic-energy MLP.
    """
    index = {s: k for k, s in enumerate(elements)}
    counts = np.zeros((len(indices), len(elements)))
    energies = np.zeros(len(indices))
    sq, n_comp = 0.0, 0
    for row, i in enumerate(indices):
        item = source[int(i)]
        for symbol in item.atoms.get_chemical_symbols():
            counts[row, index[symbol]] += 1
        energies[row] = item.energy
        if item.forces is not None:
            sq += float((item.forces**2).sum())
            n_comp += item.forces.size
    present = counts.sum(axis=0) > 0
    e0 = np.zeros(len(elements))
    sol, *_ = np.linalg.lstsq(counts[:, present], energies, rcond=None)
    e0[present] = sol
    force_rms = float(np.sqrt(sq / n_comp)) if n_comp else 1.0
    return e0, max(force_rms, 1e-3)


def elements_of(
    source: StructureSource | ConcatSource,
    indices: Sequence[int] | np.ndarray | None = None,
) -> list[str]:
    """Sorted (by Z) chemical symbols present in the source."""
    from ase.data import atomic_numbers

    found: set[str] = set()
    for i in indices if indices is not None else range(len(source)):
        found.update(source[int(i)].atoms.get_chemical_symbols())
    return sorted(found, key=lambda s: atomic_numbers[s])
