"""Reference systems with analytic free energies: Einstein crystal and harmonic.

Also their spring constants (from a Hessian or an MD) and thermal start
configurations for the λ windows.

Private helpers of :mod:`analysis.frenkel_ladd` (re-exported there). Classical
free energies count the 3N − 3 internal modes of a crystal whose centre of mass
is fixed (see the :mod:`analysis.frenkel_ladd` docstring).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.harmonic import HarmonicCalculator, HarmonicForceField
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import null_space

from analysis._ti_windows import draw_momenta

#: ħ in eV × ASE time.
HBAR = units._hbar * units.J * units.s


class EinsteinCalculator(Calculator):
    """Independent harmonic springs tying each atom to a fixed site.

    ``U = Σ_i κ_i / 2 · |r_i − r0_i|²`` (positions are not wrapped).

    Parameters
    ----------
    sites : array_like, shape (n_atoms, 3)
        Spring anchor positions in Å.
    spring_constants : float or array_like, shape (n_atoms,)
        κ in eV/Å².

    Examples
    --------
    >>> from ase.build import bulk
    >>> atoms = bulk("Cu", cubic=True)
    >>> atoms.calc = EinsteinCalculator(atoms.positions, 2.0)
    >>> atoms.positions[0, 0] += 0.1
    >>> round(atoms.get_potential_energy(), 6)
    0.01
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces"]  # noqa: RUF012

    def __init__(self, sites: ArrayLike, spring_constants: float | ArrayLike) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.sites = np.array(sites, dtype=float)
        if self.sites.ndim != 2 or self.sites.shape[1] != 3:
            raise ValueError(
                f"sites must have shape (n_atoms, 3), got {self.sites.shape}"
            )
        kappa = np.broadcast_to(np.asarray(spring_constants, float), (len(self.sites),))
        if np.any(kappa <= 0):
            raise ValueError(f"spring constants must be positive eV/Å², got {kappa}")
        self.spring_constants = kappa.copy()

    @property
    def fingerprint(self) -> str:
        """Hash of the sites and spring constants (what a resumed TI run checks)."""
        digest = hashlib.sha256(self.sites.tobytes() + self.spring_constants.tobytes())
        return digest.hexdigest()[:16]

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Any = None,
        system_changes: Any = all_changes,
    ) -> None:
        """Energy (eV), per-atom energies (eV) and forces (eV/Å)."""
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        disp = self.atoms.positions - self.sites
        if disp.shape != self.sites.shape:
            raise ValueError(
                f"calculator has {len(self.sites)} sites, atoms has {len(self.atoms)}"
            )
        energies = 0.5 * self.spring_constants * np.einsum("ij,ij->i", disp, disp)
        self.results = {
            "energy": float(energies.sum()),
            "free_energy": float(energies.sum()),
            "energies": energies,
            "forces": -self.spring_constants[:, None] * disp,
        }


def _classical_free_energy(
    omega_squared: NDArray[np.float64], temperature_K: float
) -> float:
    """``k_B T Σ ln(ħω/k_B T)`` for squared frequencies in 1/(ASE time)²."""
    kt = units.kB * temperature_K
    return float(kt * np.sum(np.log(HBAR * np.sqrt(omega_squared) / kt)))


def einstein_free_energy(
    masses: ArrayLike,
    spring_constants: ArrayLike,
    temperature_K: float,
    fix_com: bool = True,
) -> float:
    """Classical Helmholtz free energy of an Einstein crystal in eV.

    Parameters
    ----------
    masses : array_like, shape (n_atoms,)
        Masses in amu.
    spring_constants : array_like, shape (n_atoms,)
        κ in eV/Å².
    temperature_K : float
    fix_com : bool
        Restrict to the 3N − 3 internal modes (COM fixed, see module docstring);
        otherwise all 3N oscillators: ``3 k_B T Σ_i ln(ħω_i / k_B T)``.
    """
    m = np.asarray(masses, dtype=float)
    kappa = np.broadcast_to(np.asarray(spring_constants, float), m.shape)
    w2 = kappa / m
    if not fix_com:
        return 3.0 * _classical_free_energy(w2, temperature_K)
    basis = null_space(np.sqrt(m)[None, :])  # (n_atoms, n_atoms - 1), orthonormal e⊥
    restricted = np.linalg.eigvalsh(basis.T @ (w2[:, None] * basis))
    return 3.0 * _classical_free_energy(restricted, temperature_K)


def finite_difference_hessian(
    atoms: Atoms, calc: Any, delta: float = 0.01
) -> NDArray[np.float64]:
    """Cartesian Hessian by central differences of forces.

    Returns
    -------
    ndarray, shape (3 n_atoms, 3 n_atoms)
        ``∂²U/∂x_i∂x_j`` in eV/Å², symmetrised.
    """
    work = atoms.copy()
    work.set_constraint()
    work.calc = calc
    x0 = work.get_positions()
    n = 3 * len(work)
    hessian = np.empty((n, n))
    for index in range(n):
        forces = []
        for sign in (1.0, -1.0):
            x = x0.copy()
            x.flat[index] += sign * delta
            work.set_positions(x)
            forces.append(work.get_forces().ravel())
        hessian[index] = -(forces[0] - forces[1]) / (2.0 * delta)
    symmetric: NDArray[np.float64] = 0.5 * (hessian + hessian.T)
    return symmetric


def _internal_modes(
    masses: ArrayLike, hessian: ArrayLike, n_zero_modes: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Squared frequencies (1/ASE time²) and mass-weighted eigenvectors of the
    Hessian without its ``n_zero_modes`` lowest modes, and the masses repeated
    per Cartesian coordinate (amu, shape (3 n_atoms,)).

    Raises ``ValueError`` if any remaining mode is not positive.
    """
    m = np.repeat(np.asarray(masses, dtype=float), 3)
    dyn = np.asarray(hessian, float) / np.sqrt(np.outer(m, m))
    w2, modes = np.linalg.eigh(0.5 * (dyn + dyn.T))
    w2, modes = w2[n_zero_modes:], modes[:, n_zero_modes:]
    if np.any(w2 <= 0):
        raise ValueError(
            f"{np.sum(w2 <= 0)} non-positive harmonic modes beyond the {n_zero_modes} "
            "zero modes: the structure is not at a minimum; relax it first"
        )
    return w2, modes, m


def _per_symbol_springs(
    atoms: Atoms, msd: NDArray[np.float64], kt: float
) -> NDArray[np.float64]:
    """``κ = 3 k_B T / ⟨|u|²⟩`` in eV/Å² per atom, the MSD (Å²) averaged per symbol."""
    symbols = np.array(atoms.get_chemical_symbols())
    kappa = np.empty(len(atoms))
    for symbol in np.unique(symbols):
        mask = symbols == symbol
        kappa[mask] = 3.0 * kt / msd[mask].mean()
    return kappa


def harmonic_free_energy(
    atoms: Atoms,
    hessian: ArrayLike,
    temperature_K: float,
    static_energy: float = 0.0,
    n_zero_modes: int = 3,
) -> float:
    """Classical harmonic free energy ``U0 + k_B T Σ ln(ħω/k_B T)`` in eV.

    Parameters
    ----------
    atoms : Atoms
        Supplies the masses (amu).
    hessian : array_like, shape (3 n_atoms, 3 n_atoms)
        Cartesian Hessian in eV/Å².
    static_energy : float
        ``U0`` in eV.
    n_zero_modes : int
        Lowest modes excluded (3 translations of a crystal with fixed COM).
    """
    w2, _, _ = _internal_modes(atoms.get_masses(), hessian, n_zero_modes)
    return static_energy + _classical_free_energy(w2, temperature_K)


def spring_constants_from_hessian(
    atoms: Atoms, hessian: ArrayLike, n_zero_modes: int = 3
) -> NDArray[np.float64]:
    """Einstein spring constants matching the harmonic crystal's fluctuations.

    In the classical harmonic crystal with its COM fixed, the displacement
    covariance is ``⟨u uᵀ⟩ = k_B T M^-1/2 D⁺ M^-1/2`` (``D`` the mass-weighted
    Hessian, ``D⁺`` its pseudo-inverse without the ``n_zero_modes`` lowest
    modes). The springs ``κ_s = 3 k_B T / ⟨|u|²⟩_s``, averaged over the atoms
    of each symbol, are then what :func:`spring_constants_from_msd` measures
    in the limit of a long MD of the harmonic crystal, but without its
    sampling noise, and independent of the temperature.

    Parameters
    ----------
    atoms : Atoms
        Supplies the masses (amu) and the symbols.
    hessian : array_like, shape (3 n_atoms, 3 n_atoms)
        Cartesian Hessian in eV/Å² (:func:`finite_difference_hessian`).

    Returns
    -------
    ndarray, shape (n_atoms,)
        κ in eV/Å² for each atom.
    """
    w2, modes, m = _internal_modes(atoms.get_masses(), hessian, n_zero_modes)
    # diagonal of M^-1/2 D+ M^-1/2: Å²/eV per Cartesian coordinate
    variance = np.einsum("ik,k,ik->i", modes, 1.0 / w2, modes) / m
    return _per_symbol_springs(atoms, variance.reshape(-1, 3).sum(axis=1), 1.0)


def einstein_displacements(
    masses: ArrayLike,
    spring_constants: ArrayLike,
    temperature_K: float,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Thermal displacements (Å, shape (n_atoms, 3)) of an Einstein crystal, COM fixed.

    Each coordinate is drawn from ``N(0, k_B T / κ_i)``; the mass-weighted
    mean is then removed. A λ window started from such a configuration needs
    no time to heat its slow modes up from the lattice sites.
    """
    m = np.asarray(masses, dtype=float)
    kappa = np.broadcast_to(np.asarray(spring_constants, float), m.shape)
    u = (
        rng.standard_normal((m.size, 3))
        * np.sqrt(units.kB * temperature_K / kappa)[:, None]
    )
    shifted: NDArray[np.float64] = u - (m @ u) / m.sum()
    return shifted


def harmonic_displacements(
    masses: ArrayLike,
    hessian: ArrayLike,
    temperature_K: float,
    rng: np.random.Generator,
    n_zero_modes: int = 3,
) -> NDArray[np.float64]:
    """Thermal displacements (Å, shape (n_atoms, 3)) of the harmonic crystal.

    Normal-mode sampling of the classical Boltzmann distribution of
    ``½ uᵀ H u`` without its ``n_zero_modes`` lowest (translation) modes.
    """
    w2, modes, m = _internal_modes(masses, hessian, n_zero_modes)
    amplitudes = rng.standard_normal(w2.size) * np.sqrt(units.kB * temperature_K / w2)
    u: NDArray[np.float64] = ((modes @ amplitudes) / np.sqrt(m)).reshape(-1, 3)
    return u


def spring_constants_from_msd(
    atoms: Atoms,
    calc: Any,
    temperature_K: float,
    n_steps: int = 500,
    timestep: float = 2.0 * units.fs,
    friction: float = 0.02 / units.fs,
    seed: int = 0,
) -> NDArray[np.float64]:
    """Einstein spring constants ``κ_s = 3 k_B T / ⟨|u|²⟩_s`` from a short MD.

    Langevin NVT with the COM fixed; mean-square displacements from the
    starting sites are averaged over the second half of the run and over all
    atoms of each chemical symbol.

    Returns
    -------
    ndarray, shape (n_atoms,)
        κ in eV/Å² for each atom.
    """
    work = atoms.copy()
    work.set_constraint(FixCom())
    work.calc = calc
    rng = np.random.default_rng(seed)
    draw_momenta(work, temperature_K, rng)
    dyn = Langevin(
        work,
        timestep,
        temperature_K=temperature_K,
        friction=friction,
        fixcm=False,
        rng=rng,
    )
    sites = atoms.get_positions()
    dyn.run(n_steps // 2)
    msd = np.zeros(len(atoms))
    n_frames = 0
    for _ in range(max(1, n_steps // 20)):
        dyn.run(10)
        msd += np.sum((work.positions - sites) ** 2, axis=1)
        n_frames += 1
    return _per_symbol_springs(atoms, msd / n_frames, units.kB * temperature_K)


def _cartesian_q(atoms: Atoms) -> NDArray[np.float64]:
    """Cartesian coordinates (ASE's default, as a picklable function)."""
    positions: NDArray[np.float64] = atoms.get_positions()
    return positions


def _cartesian_jacobian(atoms: Atoms) -> NDArray[np.float64]:
    """Identity Jacobian of Cartesian coordinates (picklable)."""
    return np.eye(3 * len(atoms))


def harmonic_calculator(
    atoms: Atoms, hessian: ArrayLike, static_energy: float
) -> HarmonicCalculator:
    """ASE :class:`~ase.calculators.harmonic.HarmonicCalculator` about ``atoms``.

    ``hessian`` (eV/Å², shape (3 n_atoms, 3 n_atoms)) and ``static_energy`` (eV).
    Built with module-level coordinate functions so that it pickles.
    """
    field = HarmonicForceField(
        ref_atoms=atoms.copy(),
        hessian_x=np.asarray(hessian, dtype=float),
        ref_energy=static_energy,
        get_q_from_x=_cartesian_q,
        get_jacobian=_cartesian_jacobian,
    )
    return HarmonicCalculator(field)
