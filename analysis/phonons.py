"""Phonons of crystals with phonopy and any ASE calculator.

The bridge is small: convert the structure (:func:`to_phonopy_atoms`), let
phonopy choose symmetry-reduced displacements, evaluate forces one displaced
supercell at a time (or in small batches, :func:`compute_forces`), and hand the
forces back to phonopy for force constants, band structures, densities of
states and thermal properties. Everything returned is in ASE units or in THz
for frequencies; this module is the *one* place where phonopy's kJ/mol and
THz meet ASE's eV (see the unit constants below, tested against ``ase.units``
and phonopy's own constants).

phonopy and spglib are imported lazily (``pip install eformer[phonopy]``).
Reference: A. Togo, L. Chaput, T. Tadano, I. Tanaka, J. Phys.: Condens.
Matter 35, 353001 (2023); A. Togo, J. Phys. Soc. Jpn. 92, 012001 (2023).

Examples
--------
>>> from ase.build import bulk
>>> from ase.calculators.emt import EMT
>>> result = run_phonons(bulk("Cu", "fcc", a=3.6), EMT(), supercell=(2, 2, 2),
...                      mesh=(4, 4, 4), temperatures_K=[300.0])
>>> sorted(result.high_symmetry_frequencies_THz)
['Gamma', 'K', 'L', 'U', 'W', 'X']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units
from numpy.typing import NDArray

from analysis.vibrations import check_imaginary_modes, compute_forces, relax_structure

logger = logging.getLogger(__name__)

# --- unit boundary (the only conversions of this package) -------------------
#: Energy h * (1 THz) in eV.
THZ_TO_EV: float = units._hplanck * 1e12 / units._e
#: Wavenumber in cm^-1 of a frequency of 1 THz (1e12 / c).
THZ_TO_CM: float = 1e12 / (units._c * 100.0)
#: Energy of a 1 cm^-1 photon in eV.
CM_TO_EV: float = THZ_TO_EV / THZ_TO_CM
#: 1 eV per particle in kJ/mol.
EV_TO_KJMOL: float = units.mol / units.kJ
#: sqrt(eV / (Å^2 amu)) / (2 pi) in THz: eigenvalues of the dynamical matrix
#: built from ASE force constants (eV/Å^2) and masses (amu) give THz with it.
ASE_TO_THZ: float = math.sqrt(units._e / units._amu) * 1e10 / (2 * math.pi) / 1e12


def thz_to_ev(frequency_THz: Any) -> Any:
    """Phonon energy h*nu in eV of frequencies in THz (any shape)."""
    return np.asarray(frequency_THz) * THZ_TO_EV


def thz_to_cm(frequency_THz: Any) -> Any:
    """Wavenumbers in cm^-1 of frequencies in THz (any shape)."""
    return np.asarray(frequency_THz) * THZ_TO_CM


def kjmol_to_ev(energy_kJmol: Any) -> Any:
    """Energies in eV per particle of energies in kJ/mol (any shape)."""
    return np.asarray(energy_kJmol) / EV_TO_KJMOL


def _phonopy() -> Any:
    try:
        import phonopy
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("phonons need phonopy: pip install eformer[phonopy]") from err
    return phonopy


def to_phonopy_atoms(atoms: Atoms) -> Any:
    """Convert ASE atoms to ``phonopy.structure.atoms.PhonopyAtoms``.

    Symbols, cell (Å), scaled positions and masses (amu, so isotopes survive)
    are copied; calculator, constraints and ``info`` are not.
    """
    _phonopy()
    from phonopy.structure.atoms import PhonopyAtoms

    if atoms.cell.rank != 3:
        raise ValueError(
            f"phonopy needs a 3D periodic cell, got cell rank {atoms.cell.rank}; "
            "for a molecule use analysis.vibrations.harmonic_frequencies"
        )
    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=np.array(atoms.cell[:]),
        scaled_positions=atoms.get_scaled_positions(wrap=False),
        masses=atoms.get_masses(),
    )


def from_phonopy_atoms(cell: Any) -> Atoms:
    """Convert ``PhonopyAtoms`` to periodic ASE atoms (cell Å, masses amu)."""
    return Atoms(
        symbols=list(cell.symbols),
        cell=np.array(cell.cell),
        scaled_positions=np.array(cell.scaled_positions),
        masses=np.array(cell.masses),
        pbc=True,
    )


def displaced_supercells(phonon: Any) -> Iterator[Atoms]:
    """Yield the displaced supercells of ``phonon.dataset`` one by one.

    Unlike ``phonon.supercells_with_displacements`` this never holds all of
    them in memory: each is the perfect supercell plus one displacement.
    """
    perfect = from_phonopy_atoms(phonon.supercell)
    for entry in phonon.dataset["first_atoms"]:
        displaced = perfect.copy()
        positions = displaced.get_positions()
        positions[entry["number"]] += entry["displacement"]
        displaced.set_positions(positions)
        yield displaced


def make_phonopy(
    atoms: Atoms,
    supercell: Sequence[int] | NDArray[np.int64] = (3, 3, 3),
    primitive_matrix: Any = "auto",
    symprec: float = 1e-5,
) -> Any:
    """Build a ``phonopy.Phonopy`` for ``atoms`` (ASE units: eV, Å, amu -> THz).

    ``primitive_matrix="auto"`` finds the primitive cell by symmetry (spglib),
    so a conventional cubic cell gives the fcc/bcc/diamond Brillouin zone.
    """
    phonopy = _phonopy()
    matrix = np.asarray(supercell, dtype=int)
    if matrix.shape not in ((3,), (3, 3)):
        raise ValueError(
            f"supercell must be 3 integers or a 3x3 integer matrix, got {supercell!r}"
        )
    unitcell = to_phonopy_atoms(atoms)
    if isinstance(primitive_matrix, str) and primitive_matrix == "auto":
        from phonopy.structure.cells import guess_primitive_matrix

        primitive_matrix = guess_primitive_matrix(unitcell, symprec=symprec)
    return phonopy.Phonopy(
        unitcell,
        supercell_matrix=matrix,
        primitive_matrix=primitive_matrix,
        symprec=symprec,
    )


def compute_force_constants(
    phonon: Any,
    calc: Any,
    displacement: float = 0.01,
    is_plusminus: bool | str = "auto",
    batch_size: int = 1,
    symmetrize: bool = True,
) -> Any:
    """Displace, compute forces, build (and symmetrise) force constants in place.

    Parameters
    ----------
    displacement : float
        Finite-difference displacement in Å.
    is_plusminus : bool or "auto"
        Displace in both directions (central differences); ``"auto"`` lets
        phonopy use +/- only where symmetry does not relate them.
    batch_size : int
        Supercells per call of a batched calculator (see :func:`compute_forces`).

    Returns
    -------
    phonon : phonopy.Phonopy
        The same object, with ``forces`` and compact force constants
        (shape ``(n_primitive, n_supercell, 3, 3)``, eV/Å^2).
    """
    phonon.generate_displacements(distance=displacement, is_plusminus=is_plusminus)
    n_disp = len(phonon.dataset["first_atoms"])
    logger.info(
        "phonopy: %d displaced supercells of %d atoms", n_disp, len(phonon.supercell)
    )
    phonon.forces = np.array(
        list(compute_forces(displaced_supercells(phonon), calc, batch_size))
    )
    phonon.produce_force_constants(
        calculate_full_force_constants=False, show_drift=False
    )
    if symmetrize:
        phonon.symmetrize_force_constants(show_drift=False)
    return phonon


@dataclass
class PhononResult:
    """Phonons of one structure (see :func:`run_phonons`).

    Frequencies are in THz (imaginary as negative): ``band_frequencies_THz``
    has shape (n_kpts, n_branches) along ``path`` (an ASE ``BandPath`` in the
    phonopy primitive cell), ``high_symmetry_frequencies_THz`` maps "Gamma",
    "X", ... to shape (n_branches,). ``dos`` (states/THz per primitive cell)
    is tabulated at ``dos_frequencies_THz``, shape (n_points,). For each of
    ``temperatures_K`` (K, shape (n_T,)): quantum harmonic ``free_energy`` in
    eV/atom (zero-point energy included), ``entropy`` and ``heat_capacity``
    (C_v) in eV/K/atom. ``phonon.save(...)`` writes phonopy yaml.
    """

    phonon: Any
    atoms: Atoms
    path: Any
    band_frequencies_THz: NDArray[np.float64]
    high_symmetry_frequencies_THz: dict[str, NDArray[np.float64]]
    dos_frequencies_THz: NDArray[np.float64]
    dos: NDArray[np.float64]
    temperatures_K: NDArray[np.float64]
    free_energy: NDArray[np.float64]
    entropy: NDArray[np.float64]
    heat_capacity: NDArray[np.float64]
    min_frequency_THz: float


def frequencies_at(phonon: Any, qpoints: Any) -> NDArray[np.float64]:
    """Frequencies in THz, shape (n_q, n_branches), at reduced q of the primitive."""
    phonon.run_qpoints(np.atleast_2d(np.asarray(qpoints, dtype=float)))
    return np.array(phonon.qpoints.frequencies)


def band_structure(
    phonon: Any, npoints: int = 150
) -> tuple[Any, NDArray[np.float64], dict[str, NDArray[np.float64]]]:
    """Frequencies along ASE's automatic high-symmetry path of the primitive cell.

    The path (Setyawan & Curtarolo, Comput. Mater. Sci. 49, 299 (2010)) comes
    from ``ase.cell.Cell.bandpath``, which maps special points to the reduced
    reciprocal basis of the *given* primitive cell, whatever its setting.

    Returns
    -------
    path : ase.dft.kpoints.BandPath
    frequencies : ndarray, shape (n_kpts, n_branches)
        In THz.
    special : dict[str, ndarray of shape (n_branches,)]
        Frequencies at each special point on the path ("G" renamed "Gamma").
    """
    from ase.cell import Cell

    path = Cell(np.array(phonon.primitive.cell)).bandpath(npoints=npoints)
    frequencies = frequencies_at(phonon, path.kpts)
    labels = list(dict.fromkeys(_split_labels(path.path)))
    special_freq = frequencies_at(phonon, [path.special_points[lab] for lab in labels])
    names = ["Gamma" if lab == "G" else lab for lab in labels]
    return path, frequencies, dict(zip(names, special_freq, strict=True))


def _split_labels(path_string: str) -> list[str]:
    """Split an ASE path string like 'GXW1,LK' into ['G', 'X', 'W1', 'L', 'K']."""
    labels: list[str] = []
    for char in path_string.replace(",", ""):
        if char.isdigit() and labels:
            labels[-1] += char
        else:
            labels.append(char)
    return labels


def total_dos(
    phonon: Any, mesh: Sequence[int] = (20, 20, 20)
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Total DOS (tetrahedron method): frequencies in THz, states/THz per cell."""
    phonon.run_mesh(mesh, is_gamma_center=True)
    phonon.run_total_dos()
    return np.array(phonon.total_dos.frequency_points), np.array(phonon.total_dos.dos)


def thermal_properties(
    phonon: Any,
    temperatures_K: Sequence[float] | NDArray[np.float64],
    mesh: Sequence[int] = (20, 20, 20),
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Quantum harmonic F (eV/atom), S and C_v (eV/K/atom) at each temperature.

    phonopy's kJ/mol and J/K/mol per primitive cell are converted here; the
    three acoustic modes at Gamma are excluded.
    """
    phonon.run_mesh(mesh, is_gamma_center=True)
    tp = phonon.run_thermal_properties(
        temperatures=np.asarray(temperatures_K, dtype=float),
        exclude_gamma_acoustic=True,
    )
    n_atoms = len(phonon.primitive)
    free = kjmol_to_ev(tp.free_energy) / n_atoms
    entropy = kjmol_to_ev(np.asarray(tp.entropy) / 1000.0) / n_atoms
    heat_capacity = kjmol_to_ev(np.asarray(tp.heat_capacity) / 1000.0) / n_atoms
    return free, entropy, heat_capacity


def classical_harmonic_free_energy(
    phonon: Any, temperature_K: float, mesh: Sequence[int] = (20, 20, 20)
) -> float:
    """Classical harmonic Helmholtz free energy per atom in eV.

    ``F/N = (k_B T / N) * sum'_{q,nu} ln(hbar omega_{q,nu} / (k_B T))`` over a
    Gamma-centred q mesh, with ``N = n_q * n_primitive_atoms`` and the prime
    excluding the three acoustic modes at Gamma (the rigid translations).
    For a mesh commensurate with a supercell this is exactly the classical
    free energy of that N-atom periodic harmonic crystal with its centre of
    mass fixed (no momentum / de Broglie term, no COM correction), the
    reference that Frenkel-Ladd / thermodynamic integration results reduce
    to for a harmonic potential (Frenkel & Ladd, J. Chem. Phys. 81, 3188
    (1984)). Raises ``ValueError`` on imaginary modes.

    Parameters
    ----------
    phonon : phonopy.Phonopy
        With force constants.
    temperature_K : float
        Temperature in K (> 0).
    mesh : sequence of 3 int
        q mesh; use the supercell multiplicity to compare with a supercell.
    """
    if temperature_K <= 0:
        raise ValueError(f"temperature_K must be > 0, got {temperature_K}")
    phonon.run_mesh(mesh, is_gamma_center=True)
    qpoints = np.array(phonon.mesh.qpoints)
    weights = np.array(phonon.mesh.weights, dtype=float)
    frequencies = np.array(phonon.mesh.frequencies)  # (n_irq, n_branches) THz
    kT = units.kB * temperature_K
    total = 0.0
    for q, w, freq in zip(qpoints, weights, frequencies, strict=True):
        modes = np.sort(freq)
        if np.allclose(q - np.rint(q), 0.0):
            modes = modes[3:]
        if modes.size and modes[0] <= 0:
            raise ValueError(
                f"imaginary or zero mode {modes[0]:.4f} THz at q={q}: the classical "
                "harmonic free energy is undefined; relax the structure first"
            )
        total += w * np.sum(np.log(thz_to_ev(modes) / kT))
    n_atoms = weights.sum() * len(phonon.primitive)
    return float(kT * total / n_atoms)


def run_phonons(
    atoms: Atoms,
    calc: Any,
    supercell: Sequence[int] = (3, 3, 3),
    displacement: float = 0.01,
    relax: bool = False,
    relax_cell: bool = False,
    fmax: float = 1e-3,
    mesh: Sequence[int] = (20, 20, 20),
    temperatures_K: Sequence[float] | NDArray[np.float64] = tuple(range(0, 1001, 50)),
    npoints: int = 150,
    batch_size: int = 1,
    imaginary_tolerance_THz: float = 0.05,
) -> PhononResult:
    """Full pipeline: (relax), force constants, bands, DOS, thermal properties.

    See :func:`relax_structure`, :func:`compute_force_constants`,
    :func:`band_structure`, :func:`total_dos` and :func:`thermal_properties`
    for the parameters. Warns on imaginary modes (:func:`check_imaginary_modes`).
    """
    if relax or relax_cell:
        atoms = relax_structure(atoms, calc, fmax=fmax, relax_cell=relax_cell)
    phonon = make_phonopy(atoms, supercell)
    compute_force_constants(
        phonon, calc, displacement=displacement, batch_size=batch_size
    )
    path, band_freq, special = band_structure(phonon, npoints=npoints)
    dos_freq, dos = total_dos(phonon, mesh)
    mesh_min = float(np.min(phonon.mesh.frequencies))
    min_freq = check_imaginary_modes(
        [float(np.min(band_freq)), mesh_min], imaginary_tolerance_THz, "THz", "phonon"
    )
    free, entropy, heat_capacity = thermal_properties(phonon, temperatures_K, mesh)
    return PhononResult(
        phonon=phonon,
        atoms=atoms,
        path=path,
        band_frequencies_THz=band_freq,
        high_symmetry_frequencies_THz=special,
        dos_frequencies_THz=dos_freq,
        dos=dos,
        temperatures_K=np.asarray(temperatures_K, dtype=float),
        free_energy=free,
        entropy=entropy,
        heat_capacity=heat_capacity,
        min_frequency_THz=min_freq,
    )
