"""Checks shipped for users and for our own tests.

In the spirit of e3nn's ``assert_equivariant``: each ``assert_*`` raises
``AssertionError`` with the measured error when a physical property of a
calculator fails. They work with any ASE calculator.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress


def random_rotation(rng: np.random.Generator, reflect: bool = False) -> np.ndarray:
    """A random 3x3 orthogonal matrix (det +1, or -1 with ``reflect``)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    if reflect:
        q = q @ np.diag([1.0, 1.0, -1.0])
    return q


def _evaluate(
    atoms: Atoms, calc: object, stress: bool
) -> tuple[float, np.ndarray, np.ndarray | None]:
    atoms = atoms.copy()
    atoms.calc = calc
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    s = atoms.get_stress(voigt=False) if stress else None
    return e, f, s


def assert_equivariant_calculator(
    atoms: Atoms, calc: object, rng: np.random.Generator, rtol: float = 1e-9
) -> None:
    """Energy invariant, forces covariant, stress ``R σ Rᵀ`` under O(3), translation
    and permutation of the atoms (positions and cell transformed together)."""
    stress = bool(atoms.pbc.all())
    e0, f0, s0 = _evaluate(atoms, calc, stress)
    scale_e = max(abs(e0), 1.0)
    scale_f = max(np.abs(f0).max(), 1e-3)
    for reflect in (False, True):
        rot = random_rotation(rng, reflect)
        moved = atoms.copy()
        moved.positions = atoms.positions @ rot.T + rng.normal(size=3)
        moved.cell = atoms.cell.array @ rot.T
        e1, f1, s1 = _evaluate(moved, calc, stress)
        assert abs(e1 - e0) <= rtol * scale_e, f"energy changed by {e1 - e0:.3e} eV"
        err = np.abs(f1 - f0 @ rot.T).max()
        assert err <= rtol * scale_f * 10, (
            f"forces not equivariant: max error {err:.3e}"
        )
        if s0 is not None and s1 is not None:  # stress requested
            err = np.abs(s1 - rot @ s0 @ rot.T).max()
            assert err <= rtol * max(np.abs(s0).max(), 1e-6) * 10, (
                f"stress error {err:.3e}"
            )
    perm = rng.permutation(len(atoms))
    e2, f2, _ = _evaluate(atoms[perm], calc, False)
    assert abs(e2 - e0) <= rtol * scale_e, (
        f"permutation changed energy by {e2 - e0:.3e}"
    )
    assert np.abs(f2 - f0[perm]).max() <= rtol * scale_f * 10, "forces not permuted"


def assert_fd_forces(
    atoms: Atoms, calc: object, eps: float = 2e-5, rtol: float = 1e-6
) -> None:
    """Forces equal central finite differences of the energy.

    The central-difference error grows as eps² times the third derivative; with
    many-body products it reaches 2e-6 eV/Å at eps = 1e-4 Å, hence 2e-5 Å
    (float64 rounding of the energy differences stays near 1e-9 eV/Å).
    """
    atoms = atoms.copy()
    atoms.calc = calc
    analytic = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps)
    err = np.abs(analytic - numeric).max()
    tol = rtol * max(np.abs(numeric).max(), 1.0)
    assert err <= tol, (
        f"forces differ from finite differences by {err:.3e} eV/Å (tol {tol:.1e})"
    )


def assert_fd_stress(
    atoms: Atoms, calc: object, eps: float = 1e-5, rtol: float = 1e-6
) -> None:
    """Stress equals central finite differences of the energy under strain."""
    atoms = atoms.copy()
    atoms.calc = calc
    analytic = atoms.get_stress()
    numeric = calculate_numerical_stress(atoms, eps)
    err = np.abs(analytic - numeric).max()
    tol = rtol * max(np.abs(numeric).max(), 1e-3)
    assert err <= tol, f"stress differs from finite differences by {err:.3e} eV/Å³"


def assert_image_invariant(
    atoms: Atoms, calc: object, rng: np.random.Generator
) -> None:
    """Shifting atoms by random lattice vectors changes nothing."""
    e0, f0, _ = _evaluate(atoms, calc, False)
    moved = atoms.copy()
    shifts = rng.integers(-2, 3, size=(len(atoms), 3)) * moved.pbc
    moved.positions = moved.positions + shifts @ moved.cell.array
    e1, f1, _ = _evaluate(moved, calc, False)
    assert abs(e1 - e0) <= 1e-9 * max(abs(e0), 1.0), f"energy changed by {e1 - e0:.3e}"
    assert np.abs(f1 - f0).max() <= 1e-8, "forces changed under lattice shifts"
