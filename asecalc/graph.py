"""Atoms -> graph dicts: neighbour lists, input checks and batching.

Edges are directed pairs (centre i = ``edge_dst``, neighbour j = ``edge_src``)
with ``D_ij = r_j - r_i + S_ij · cell`` and |D_ij| < cutoff, self-images
included, computed with matscipy's linear-scaling neighbour list. This is the
one place where ASE/numpy data become torch tensors (``dtype``, ``device``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from matscipy.neighbours import neighbour_list

logger = logging.getLogger(__name__)

#: Atoms closer than this (Å) trigger a warning.
CLOSE_CONTACT = 0.3


def species_index(numbers: np.ndarray, elements: Sequence[str]) -> np.ndarray:
    """Map atomic numbers (n_atoms,) to indices into ``elements``.

    Unknown elements raise ValueError.
    """
    lookup = np.full(119, -1, dtype=np.int64)
    for index, symbol in enumerate(elements):
        lookup[chemical_symbols.index(symbol)] = index
    out: np.ndarray = lookup[np.asarray(numbers)]
    if (out < 0).any():
        missing = sorted({chemical_symbols[z] for z in np.asarray(numbers)[out < 0]})
        raise ValueError(
            f"element(s) {', '.join(missing)} not in this model; it knows "
            f"{', '.join(elements)}. Use a model trained on these elements, or "
            f"fine-tune with `eformer train --init MODEL` on data containing them."
        )
    return out


def check_atoms(atoms: Atoms) -> None:
    """Raise ValueError for input no model can evaluate.

    Checks: at least one atom; finite positions and cell; a non-degenerate cell
    along periodic directions. Warns when two atoms are closer than
    :data:`CLOSE_CONTACT` Å (isolated pairs only; periodic images are checked
    through the neighbour list).
    """
    if len(atoms) == 0:
        raise ValueError("cannot evaluate an Atoms object with zero atoms")
    positions = atoms.positions
    if not np.isfinite(positions).all():
        bad = np.unique(np.nonzero(~np.isfinite(positions))[0])
        raise ValueError(
            f"positions contain NaN or inf (atom indices {bad[:10].tolist()})"
        )
    cell = atoms.cell.array
    if not np.isfinite(cell).all():
        raise ValueError("cell contains NaN or inf")
    pbc = atoms.pbc
    if pbc.any():
        sub = cell[pbc]
        if np.linalg.matrix_rank(sub, tol=1e-6) < pbc.sum() or (
            pbc.all() and abs(np.linalg.det(cell)) < 1e-6
        ):
            raise ValueError(
                f"degenerate periodic cell (pbc={pbc.tolist()}, cell={cell.tolist()}): "
                "periodic directions need linearly independent, non-zero cell vectors"
            )


def _neighbour_cell(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """A full-rank cell and shifted positions matscipy accepts; same neighbours."""
    cell = atoms.cell.array.copy()
    positions = atoms.positions
    pbc = atoms.pbc
    if not pbc.any():
        lo = positions.min(axis=0)
        extent = positions.max(axis=0) - lo + cutoff + 1.0
        return np.diag(extent), positions - lo
    extent = np.ptp(positions, axis=0).max() + cutoff + 1.0
    for axis in np.nonzero(~pbc)[0]:
        if np.linalg.norm(cell[axis]) < 1e-6:
            others = cell[[a for a in range(3) if a != axis]]
            normal = np.cross(others[0], others[1])
            if np.linalg.norm(normal) < 1e-6:
                normal = np.eye(3)[axis]
            cell[axis] = normal / np.linalg.norm(normal) * extent
    if abs(np.linalg.det(cell)) < 1e-9:
        raise ValueError(f"cannot build a neighbour list for cell {cell.tolist()}")
    return cell, positions


def neighbour_edges(
    atoms: Atoms, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed edges within ``cutoff`` Å.

    Returns
    -------
    edge_src, edge_dst : ndarray, shape (n_edges,), int64
        Neighbour j and centre i.
    edge_shift : ndarray, shape (n_edges, 3), int
        Integer cell shifts S with ``D = r_j - r_i + S @ cell``.
    """
    cell, positions = _neighbour_cell(atoms, cutoff)
    probe = Atoms(numbers=atoms.numbers, positions=positions, cell=cell, pbc=atoms.pbc)
    i, j, shifts = neighbour_list("ijS", probe, float(cutoff))
    return j.astype(np.int64), i.astype(np.int64), shifts


def edge_lengths(
    atoms: Atoms, src: np.ndarray, dst: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """|D_ij| in Å, shape (n_edges,)."""
    vec = atoms.positions[src] - atoms.positions[dst] + shift @ atoms.cell.array
    lengths: np.ndarray = np.linalg.norm(vec, axis=1)
    return lengths


def warn_close_contacts(distances: np.ndarray) -> None:
    """Warn (with the value) when any edge is shorter than :data:`CLOSE_CONTACT`."""
    if len(distances) and distances.min() < CLOSE_CONTACT:
        if distances.min() < 1e-8:
            raise ValueError("two atoms (or an atom and its image) overlap exactly")
        warnings.warn(
            f"atoms closer than {CLOSE_CONTACT} Å (min distance "
            f"{distances.min():.3f} Å): energies there are extrapolated",
            RuntimeWarning,
            stacklevel=3,
        )


def atoms_to_graph(
    atoms: Atoms,
    elements: Sequence[str],
    cutoff: float,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    edges: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Build the graph dict (see :mod:`asecalc.keys`) of one structure.

    Parameters
    ----------
    atoms : ase.Atoms
    elements : sequence of str
        The model's elements (species order).
    cutoff : float
        Cutoff radius in Å.
    dtype, device
        Floating dtype and device of the tensors.
    edges : tuple, optional
        Precomputed ``(edge_src, edge_dst, edge_shift)`` (e.g. from a skin list).
    """
    check_atoms(atoms)
    species = species_index(atoms.numbers, elements)
    src, dst, shift = edges if edges is not None else neighbour_edges(atoms, cutoff)
    warn_close_contacts(edge_lengths(atoms, src, dst, shift))
    return {
        "positions": torch.as_tensor(atoms.positions, dtype=dtype, device=device),
        "species": torch.as_tensor(species, device=device),
        "cell": torch.as_tensor(atoms.cell.array[None], dtype=dtype, device=device),
        "pbc": torch.as_tensor(atoms.pbc[None], device=device),
        "edge_src": torch.as_tensor(src, device=device),
        "edge_dst": torch.as_tensor(dst, device=device),
        "edge_shift": torch.as_tensor(shift, dtype=dtype, device=device),
        "graph_index": torch.zeros(len(atoms), dtype=torch.long, device=device),
        "n_graphs": 1,
    }


def batch_graphs(graphs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate graph dicts into one batch (edge indices offset per graph)."""
    if len(graphs) == 1:
        return graphs[0]
    offsets = np.cumsum([0] + [len(g["species"]) for g in graphs[:-1]])
    goffsets = np.cumsum([0] + [int(g["n_graphs"]) for g in graphs[:-1]])
    out: dict[str, Any] = {}
    for key in ("positions", "species", "cell", "pbc", "edge_shift"):
        out[key] = torch.cat([g[key] for g in graphs])
    for key in ("edge_src", "edge_dst"):
        out[key] = torch.cat(
            [g[key] + int(o) for g, o in zip(graphs, offsets, strict=True)]
        )
    out["graph_index"] = torch.cat(
        [g["graph_index"] + int(o) for g, o in zip(graphs, goffsets, strict=True)]
    )
    out["n_graphs"] = int(sum(int(g["n_graphs"]) for g in graphs))
    for key in graphs[0]:
        if key not in out:  # labels and extras: concatenate tensors
            out[key] = torch.cat([g[key] for g in graphs])
    return out


class SkinNeighbourList:
    """Neighbour list reused between MD steps (Verlet skin).

    The list is built with ``cutoff + skin`` and rebuilt only when an atom has
    moved more than ``skin / 2`` since the last build (measured on the raw,
    unwrapped positions, so wrapping an atom back into the cell also triggers a
    rebuild), or when the numbers, cell or pbc changed. Edges are then filtered
    to the true cutoff on every call, so results equal a fresh list exactly.
    """

    def __init__(self, cutoff: float, skin: float = 1.0) -> None:
        if skin < 0:
            raise ValueError(f"skin must be >= 0 Å, got {skin}")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.n_builds = 0
        self._ref: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._edges: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _needs_rebuild(self, atoms: Atoms) -> bool:
        if self._ref is None or self.skin == 0:
            return True
        positions, numbers, cell, pbc = self._ref
        if (
            len(numbers) != len(atoms)
            or (numbers != atoms.numbers).any()
            or (pbc != atoms.pbc).any()
            or not np.array_equal(cell, atoms.cell.array)
        ):
            return True
        moved = np.linalg.norm(atoms.positions - positions, axis=1).max()
        return bool(moved > 0.5 * self.skin)

    def edges(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Edges (src, dst, shift) of ``atoms`` within the cutoff."""
        if self._needs_rebuild(atoms):
            self._edges = neighbour_edges(atoms, self.cutoff + self.skin)
            self._ref = (
                atoms.positions.copy(),
                atoms.numbers.copy(),
                atoms.cell.array.copy(),
                atoms.pbc.copy(),
            )
            self.n_builds += 1
        assert self._edges is not None
        src, dst, shift = self._edges
        if self.skin == 0:
            return src, dst, shift
        keep = edge_lengths(atoms, src, dst, shift) < self.cutoff
        return src[keep], dst[keep], shift[keep]
