"""Is a force field conservative? The Jacobian asymmetry of its forces.

A force field is conservative (``F = -∇E``) exactly when its Jacobian
``J_ab = -∂F_a/∂x_b`` (the Hessian, for a conservative field) is symmetric. Bigi
et al. measure the departure by

    λ = ‖J_anti‖_F / ‖J‖_F,   J_anti = (J - Jᵀ) / 2,

which is 0 for a conservative calculator up to finite-difference error and
clearly above that floor for a non-conservative (direct-force) model [1]_.

The floor has two parts: truncation, ~ (displacement)² × anharmonicity (about
1e-6 for EMT copper at ``displacement=1e-3`` Å, 1e-4 at 1e-2 Å), and force noise /
displacement. Float64 analytic calculators reach ~1e-6; SCF codes need tight
convergence (GFN2-xTB via tblite gives λ ≈ 3e-3 at the default ``accuracy=1`` but
3e-5 with ``accuracy=0.01``), and float32 models sit higher than float64 ones.
Compare λ against a conservative reference computed the same way.

References
----------
.. [1] F. Bigi, M. Langer and M. Ceriotti, "The dark side of the forces: assessing
   non-conservative force models for atomistic machine learning", ICML 2025,
   arXiv:2412.11569.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Above this many atoms, :func:`jacobian_asymmetry` uses a local cluster of atoms.
MAX_JACOBIAN_ATOMS = 32


def force_jacobian(
    atoms: Atoms,
    indices: Sequence[int] | NDArray[np.intp] | None = None,
    displacement: float = 1e-3,
) -> NDArray[np.float64]:
    """Return ``J_ab = -∂F_a/∂x_b`` by central finite differences of forces.

    Parameters
    ----------
    atoms : Atoms
        Structure with a calculator attached. Its positions are restored.
    indices : sequence of int or ndarray of int, optional
        Atoms to displace and whose forces to keep (all atoms by default). The
        result is the square block of the full Jacobian on these atoms.
    displacement : float
        Finite-difference step in Å.

    Returns
    -------
    jacobian : ndarray, shape (3 * n_indices, 3 * n_indices)
        Force Jacobian in eV/Å², rows and columns ordered (atom, xyz).
    """
    if displacement <= 0:
        raise ValueError(
            f"displacement must be a positive length in Å, got {displacement}; "
            "use about 1e-3"
        )
    if atoms.calc is None:
        raise ValueError("atoms has no calculator: set atoms.calc before the call")
    idx = np.arange(len(atoms)) if indices is None else np.asarray(indices, dtype=int)
    original = atoms.get_positions()
    columns = []
    try:
        for atom in idx:
            for axis in range(3):
                forces = []
                for sign in (1.0, -1.0):
                    positions = original.copy()
                    positions[atom, axis] += sign * displacement
                    atoms.set_positions(positions)
                    forces.append(atoms.get_forces()[idx].reshape(-1))
                columns.append(-(forces[0] - forces[1]) / (2.0 * displacement))
    finally:
        atoms.set_positions(original)
    return np.stack(columns, axis=1)


def local_cluster(
    atoms: Atoms, n_atoms: int, center: int | None = None
) -> NDArray[np.intp]:
    """Return the indices of the ``n_atoms`` atoms nearest to ``center``.

    Parameters
    ----------
    atoms : Atoms
        Structure; periodic images count through the minimum-image convention.
    n_atoms : int
        Size of the cluster.
    center : int, optional
        Central atom; by default the atom nearest to the centre of the positions.

    Returns
    -------
    indices : ndarray, shape (n_atoms,), int
        Atom indices, the centre first.
    """
    if center is None:
        mean = atoms.get_positions().mean(axis=0)
        center = int(np.argmin(np.linalg.norm(atoms.get_positions() - mean, axis=1)))
    distances = atoms.get_distances(center, range(len(atoms)), mic=any(atoms.pbc))
    return np.argsort(distances, kind="stable")[:n_atoms]


def jacobian_asymmetry(
    atoms: Atoms,
    displacement: float = 1e-3,
    max_atoms: int = MAX_JACOBIAN_ATOMS,
) -> float:
    """Return λ = ‖J_anti‖_F / ‖J‖_F of the calculator attached to ``atoms``.

    Costs ``6 * min(n_atoms, max_atoms)`` force calls. Larger structures use the
    Jacobian block of a local cluster of ``max_atoms`` atoms, which keeps the
    pairs of atoms that interact most.

    Parameters
    ----------
    atoms : Atoms
        Structure with a calculator attached.
    displacement : float
        Finite-difference step in Å.
    max_atoms : int
        Largest number of atoms displaced.

    Returns
    -------
    asymmetry : float
        λ, dimensionless: ~0 (finite-difference noise) for a conservative force
        field, of order 1e-2 to 1 for a non-conservative one [1]_.
    """
    indices = None if len(atoms) <= max_atoms else local_cluster(atoms, max_atoms)
    jacobian = force_jacobian(atoms, indices=indices, displacement=displacement)
    norm = np.linalg.norm(jacobian)
    if norm == 0.0:
        raise ValueError(
            "the force Jacobian is zero (no interactions between the displaced "
            "atoms): λ is undefined; check the structure and the calculator cutoff"
        )
    antisymmetric = 0.5 * (jacobian - jacobian.T)
    return float(np.linalg.norm(antisymmetric) / norm)


class CurlForceCalculator(Calculator):
    """A deliberately non-conservative control: base forces plus a rotation field.

    Forces are ``F_a = F_base,a + strength * ẑ × (r_a - r_center)`` while the
    energy is the base energy, so the extra force has a curl (``∇ × F = 2 strength ẑ``)
    and does work on the atoms: NVE runs heat up and :func:`jacobian_asymmetry`
    is large. Use it as the non-conservative reference in drift checks.

    Parameters
    ----------
    base : Calculator
        Conservative calculator giving energy and forces.
    strength : float
        Strength of the rotation field in eV/Å².
    center : array_like, shape (3,), optional
        Centre of rotation in Å (the initial centre of mass by default).

    Examples
    --------
    >>> from ase.build import bulk
    >>> from ase.calculators.emt import EMT
    >>> atoms = bulk("Cu", cubic=True).repeat(2)
    >>> atoms.rattle(0.05, seed=0)
    >>> atoms.calc = CurlForceCalculator(EMT(), strength=0.5)
    >>> jacobian_asymmetry(atoms) > 0.01
    True
    """

    implemented_properties = ["energy", "free_energy", "forces"]  # noqa: RUF012

    def __init__(
        self, base: Calculator, strength: float, center: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.base = base
        self.strength = float(strength)
        self.center = None if center is None else np.asarray(center, dtype=float)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] | None = None,
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """Compute base energy and forces, then add the rotation field."""
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        base_atoms = self.atoms.copy()
        base_atoms.calc = self.base
        if self.center is None:
            self.center = base_atoms.get_center_of_mass()
        relative = base_atoms.get_positions() - self.center  # (n_atoms, 3)
        rotation = np.cross([0.0, 0.0, 1.0], relative)  # (n_atoms, 3)
        energy = base_atoms.get_potential_energy()
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": base_atoms.get_forces() + self.strength * rotation,
        }
