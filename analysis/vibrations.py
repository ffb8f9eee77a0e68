"""Harmonic vibrations shared by crystals and molecules.

* :func:`relax_structure`: positions (and cell, ``ase.filters.FrechetCellFilter``).
* :func:`compute_forces`: the one hook that evaluates many structures, batched
  when the calculator offers ``calculate_batch``.
* :func:`harmonic_frequencies`: normal modes of a molecule by finite
  differences (``ase.vibrations``), and :func:`compare_frequencies` against a
  reference method (e.g. GFN2-xTB) after removing the rigid-body modes.

Units: eV, Å, amu in; frequencies out in cm^-1 and meV (converted with the
constants of :mod:`analysis.phonons`, the package's single unit boundary).
Imaginary frequencies are returned as negative real numbers.

Examples
--------
>>> from ase.build import molecule
>>> from ase.calculators.emt import EMT
>>> result = harmonic_frequencies(molecule("N2"), EMT())
>>> result.n_rigid_body_modes
5
>>> bool(result.vibrational_cm[0] > 100.0)
True
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

logger = logging.getLogger(__name__)


def relax_structure(
    atoms: Atoms,
    calc: Any,
    fmax: float = 1e-3,
    relax_cell: bool = False,
    steps: int = 1000,
    keep_symmetry: bool = True,
) -> Atoms:
    """Return a relaxed copy of ``atoms`` (positions, and the cell if asked).

    Parameters
    ----------
    fmax : float
        Force convergence in eV/Å (applies to the cell filter's generalised
        forces too).
    relax_cell : bool
        Also relax the cell with ``ase.filters.FrechetCellFilter`` (needs stress).
    keep_symmetry : bool
        Constrain with ``ase.constraints.FixSymmetry`` (needs spglib) so the
        space group phonopy sees is the one you started with.
    """
    from ase.optimize import BFGS

    relaxed: Atoms = atoms.copy()
    relaxed.calc = calc
    if keep_symmetry and relaxed.pbc.any():
        from ase.constraints import FixSymmetry

        relaxed.set_constraint(FixSymmetry(relaxed))
    target: Any = relaxed
    if relax_cell:
        from ase.filters import FrechetCellFilter

        target = FrechetCellFilter(relaxed)
    converged = BFGS(target, logfile=None).run(fmax=fmax, steps=steps)
    if not converged:
        warnings.warn(
            f"relaxation did not reach fmax={fmax} eV/Å in {steps} steps; "
            "phonons of an unrelaxed structure may show imaginary modes",
            RuntimeWarning,
            stacklevel=2,
        )
    relaxed.set_constraint()
    relaxed.calc = None
    return relaxed


# --- forces (the batching hook) -----------------------------------------------
def compute_forces(
    structures: Iterable[Atoms], calc: Any, batch_size: int = 1
) -> Iterator[NDArray[np.float64]]:
    """Yield forces of each structure, one at a time or in small batches.

    If ``calc`` has a method ``calculate_batch(list_of_atoms, properties)``
    returning one dict per structure (``{"forces": (n_atoms, 3) array}``), and
    ``batch_size > 1``, structures are sent ``batch_size`` at a time; otherwise
    each is evaluated with ``atoms.calc = calc``. ``structures`` is consumed
    lazily, so at most ``batch_size`` supercells are in memory at once.

    Yields
    ------
    forces : ndarray, shape (n_atoms, 3)
        Forces in eV/Å.
    """
    batch_fn = getattr(calc, "calculate_batch", None)
    if batch_fn is None or batch_size <= 1:
        for atoms in structures:
            atoms.calc = calc
            yield np.array(atoms.get_forces(), dtype=np.float64)
            atoms.calc = None
        return
    chunk: list[Atoms] = []
    for atoms in structures:
        chunk.append(atoms)
        if len(chunk) == batch_size:
            yield from (
                np.array(r["forces"], dtype=np.float64)
                for r in batch_fn(chunk, ["forces"])
            )
            chunk = []
    if chunk:
        yield from (
            np.array(r["forces"], dtype=np.float64) for r in batch_fn(chunk, ["forces"])
        )


def check_imaginary_modes(
    frequencies: Any, tolerance: float, unit: str, where: str = ""
) -> float:
    """Return the minimum frequency; warn (with its value) if below ``-tolerance``.

    ``frequencies`` (any shape) and ``tolerance`` are in ``unit`` ("THz",
    "cm^-1"); imaginary modes are negative numbers.
    """
    min_freq = float(np.min(frequencies))
    if min_freq < -tolerance:
        warnings.warn(
            f"imaginary {where + ' ' if where else ''}mode: min frequency "
            f"{min_freq:.4f} {unit} (< -{tolerance} {unit}); the structure is not a "
            "minimum of this potential (relax it, or it is dynamically unstable)",
            RuntimeWarning,
            stacklevel=3,
        )
    else:
        logger.info("min frequency %.4f %s: no imaginary modes", min_freq, unit)
    return min_freq


# --- molecules ----------------------------------------------------------------------
def n_rigid_body_modes(atoms: Atoms, tolerance: float = 1e-3) -> int:
    """Rigid-body (translation + rotation) modes: 3 (atom), 5 (linear) or 6."""
    if len(atoms) == 1:
        return 3
    centred = atoms.get_positions() - atoms.get_positions().mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return 5 if singular[1] < tolerance else 6


@dataclass
class VibrationResult:
    """Harmonic normal modes of a molecule.

    Attributes
    ----------
    atoms : Atoms
        Geometry at which the Hessian was taken (relaxed if asked).
    frequencies_cm : ndarray, shape (3 * n_atoms,)
        All mode wavenumbers in cm^-1 (imaginary as negative), in ASE's order.
    n_rigid_body_modes : int
        6, or 5 for a linear molecule.
    """

    atoms: Atoms
    frequencies_cm: NDArray[np.float64]
    n_rigid_body_modes: int

    @property
    def vibrational_cm(self) -> NDArray[np.float64]:
        """Vibrational wavenumbers in cm^-1, shape (3 n_atoms - n_rigid,), sorted.

        The ``n_rigid_body_modes`` modes of smallest magnitude are dropped.
        """
        by_magnitude = np.argsort(np.abs(self.frequencies_cm), kind="stable")
        return np.sort(self.frequencies_cm[by_magnitude[self.n_rigid_body_modes :]])

    @property
    def vibrational_meV(self) -> NDArray[np.float64]:
        """Vibrational energies in meV, shape (3 n_atoms - n_rigid,), sorted."""
        from analysis.phonons import CM_TO_EV

        return self.vibrational_cm * CM_TO_EV * 1000.0


def harmonic_frequencies(
    atoms: Atoms,
    calc: Any,
    relax: bool = True,
    fmax: float = 1e-3,
    delta: float = 0.01,
    nfree: int = 2,
    workdir: str | Path | None = None,
    imaginary_tolerance_cm: float = 20.0,
) -> VibrationResult:
    """Harmonic frequencies of a molecule with ``ase.vibrations.Vibrations``.

    Parameters
    ----------
    atoms : Atoms
        Molecule (no periodic cell needed).
    calc : ase calculator
        Any ASE calculator with forces.
    relax : bool
        Relax positions to ``fmax`` (eV/Å) with this calculator first: normal
        modes are only meaningful at a stationary point.
    delta : float
        Finite-difference displacement in Å; ``nfree`` 2 (central) or 4.
    workdir : path, optional
        Where ASE keeps its per-displacement cache (a fresh temporary
        directory if None; an existing cache there is cleared first).
    imaginary_tolerance_cm : float
        Warn if a vibrational (non-rigid) mode is below ``-tolerance`` cm^-1.
    """
    from ase.vibrations import Vibrations

    molecule = relax_structure(atoms, calc, fmax=fmax) if relax else atoms.copy()
    molecule.calc = calc
    max_force = float(np.linalg.norm(molecule.get_forces(), axis=1).max())
    if max_force > 10 * fmax:
        warnings.warn(
            f"max force {max_force:.3g} eV/Å: not a stationary point, expect "
            "spurious (imaginary) modes; use relax=True",
            RuntimeWarning,
            stacklevel=2,
        )
    with tempfile.TemporaryDirectory() as tmp:
        name = Path(workdir) if workdir is not None else Path(tmp)
        vib = Vibrations(molecule, name=str(name / "vib"), delta=delta, nfree=nfree)
        vib.clean()
        vib.run()
        energies = vib.get_vibrations().get_energies()  # complex, eV
        vib.clean()
    from analysis.phonons import CM_TO_EV

    signed = np.where(np.abs(energies.imag) > 0, -np.abs(energies.imag), energies.real)
    molecule.calc = None
    result = VibrationResult(molecule, signed / CM_TO_EV, n_rigid_body_modes(molecule))
    if result.vibrational_cm.size:
        check_imaginary_modes(result.vibrational_cm, imaginary_tolerance_cm, "cm^-1")
    return result


def compare_frequencies(
    result: VibrationResult, reference: VibrationResult
) -> dict[str, float]:
    """Mean and max absolute deviation of sorted vibrational frequencies.

    Both sets drop their rigid-body modes (6, 5 if linear), are sorted and
    compared pairwise. Returns ``mae_cm``, ``mae_meV``, ``max_abs_cm``.
    """
    ours, ref = result.vibrational_cm, reference.vibrational_cm
    if ours.shape != ref.shape:
        raise ValueError(
            f"cannot compare {ours.size} with {ref.size} vibrational modes: the "
            "molecules differ (or one became linear); compare the same molecule"
        )
    from analysis.phonons import CM_TO_EV

    diff = np.abs(ours - ref)
    mae_cm = float(diff.mean()) if diff.size else 0.0
    return {
        "mae_cm": mae_cm,
        "mae_meV": mae_cm * CM_TO_EV * 1000.0,
        "max_abs_cm": float(diff.max()) if diff.size else 0.0,
    }
