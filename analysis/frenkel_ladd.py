"""Absolute free energies of crystals: Frenkel–Ladd, harmonic + anharmonic, Gibbs.

Centre of mass (COM)
--------------------
All free energies here are for a crystal **with its centre of mass fixed**:
the MD runs use :class:`ase.constraints.FixCom` (and zero COM momentum), and
the analytic references count the 3N − 3 internal vibrational degrees of
freedom only. In mass-weighted coordinates the COM is the direction
``e ∝ sqrt(m_i)``; both the Einstein and the harmonic reference free energies
are ``k_B T Σ ln(ħω_k / k_B T)`` over the 3N − 3 frequencies of their quadratic
forms restricted to the plane ``e⊥`` (for a translation-invariant crystal these
are the Γ-point phonons of the MD cell minus the 3 zero modes). This is the
quantity to compare with phonopy's frequencies of the same supercell. The
missing COM translational term is ``O(k_B T ln N / N)`` per atom and vanishes
in the thermodynamic limit; see Polson et al., J. Chem. Phys. 112, 5339 (2000)
for the standard correction if you need the free-COM value.

All free energies are classical (MD samples classical statistics) and include
the static lattice energy.

References
----------
D. Frenkel and A. J. C. Ladd, J. Chem. Phys. 81, 3188 (1984).
R. Freitas, M. Asta and M. de Koning, Comput. Mater. Sci. 112, 333 (2016).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from numpy.typing import ArrayLike

from analysis._ti_references import (
    HBAR,
    EinsteinCalculator,
    einstein_displacements,
    einstein_free_energy,
    finite_difference_hessian,
    harmonic_calculator,
    harmonic_displacements,
    harmonic_free_energy,
    spring_constants_from_hessian,
    spring_constants_from_msd,
)
from analysis.ti import TIResult, integrate
from asecalc.fileio import write_text_atomic

logger = logging.getLogger(__name__)

__all__ = [
    "HBAR",
    "CrystalFreeEnergy",
    "EinsteinCalculator",
    "GibbsResult",
    "anharmonic_free_energy",
    "einstein_displacements",
    "einstein_free_energy",
    "finite_difference_hessian",
    "frenkel_ladd",
    "gibbs_free_energy",
    "harmonic_calculator",
    "harmonic_displacements",
    "harmonic_free_energy",
    "spring_constants_from_hessian",
    "spring_constants_from_msd",
]


@dataclass
class CrystalFreeEnergy:
    """Absolute Helmholtz free energy of a crystal (COM fixed, classical).

    Attributes
    ----------
    free_energy_eV, error_eV : float
        F of the whole cell in eV = ``reference_free_energy_eV + ti.delta_F_eV``.
    reference_free_energy_eV : float
        Analytic free energy of the reference (Einstein or harmonic) in eV.
    ti : TIResult
        Reference → potential integration.
    n_atoms : int
    temperature_K : float
    reference : str
        ``"einstein"`` or ``"harmonic"``.
    spring_constants : dict
        κ per chemical symbol in eV/Å² (Einstein reference only).
    """

    free_energy_eV: float
    error_eV: float
    reference_free_energy_eV: float
    ti: TIResult
    n_atoms: int
    temperature_K: float
    reference: str
    spring_constants: dict[str, float] = field(default_factory=dict)

    @property
    def free_energy_meV_per_atom(self) -> float:
        """F in meV per atom."""
        return 1000.0 * self.free_energy_eV / self.n_atoms

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "free_energy_eV": self.free_energy_eV,
            "error_eV": self.error_eV,
            "free_energy_meV_per_atom": self.free_energy_meV_per_atom,
            "error_meV_per_atom": 1000.0 * self.error_eV / self.n_atoms,
            "reference": self.reference,
            "reference_free_energy_eV": self.reference_free_energy_eV,
            "spring_constants_eV_per_A2": self.spring_constants,
            "com": "fixed (3N-3 internal degrees of freedom)",
            "ti": self.ti.to_dict(),
        }


def frenkel_ladd(
    atoms: Atoms,
    calc: Any,
    temperature_K: float,
    spring_constants: float | ArrayLike | None = None,
    msd_steps: int = 500,
    **ti_kwargs: Any,
) -> CrystalFreeEnergy:
    """Frenkel–Ladd absolute free energy: Einstein crystal → ``calc``.

    Parameters
    ----------
    atoms : Atoms
        The MD cell (a supercell) at its lattice sites, positions in Å.
    calc : ASE calculator
        The potential.
    temperature_K : float
    spring_constants : float or array_like, shape (n_atoms,), optional
        κ in eV/Å²; default from a ``msd_steps`` MD with ``calc``
        (:func:`spring_constants_from_msd`). When a Hessian is at hand,
        :func:`spring_constants_from_hessian` gives noise-free springs that
        match the crystal's fluctuations.
    **ti_kwargs
        Passed to :func:`analysis.ti.integrate` (``lambdas``, ``n_steps``,
        ``timestep``, ``output_dir``, ``executor``...). The COM is always fixed.
        Each window starts from a thermal configuration of the Einstein
        crystal (:func:`einstein_displacements`) unless ``start_displacements``
        says otherwise.

    Returns
    -------
    CrystalFreeEnergy
        ``F = F_Einstein(3N − 3 modes) + ∫⟨U − U_E⟩ dλ``, static energy included.
    """
    if ti_kwargs.pop("fix_com", True) is not True:
        raise ValueError("frenkel_ladd always fixes the centre of mass; drop fix_com")
    springs_file = _springs_file(ti_kwargs.get("output_dir"))
    if spring_constants is None and springs_file is not None and springs_file.exists():
        kappa = np.array(
            json.loads(springs_file.read_text())["spring_constants_eV_per_A2"]
        )
        logger.info("Einstein springs read from %s", springs_file)
    elif spring_constants is None:
        kw = {
            k: ti_kwargs[k] for k in ("timestep", "friction", "seed") if k in ti_kwargs
        }
        kappa = spring_constants_from_msd(atoms, calc, temperature_K, msd_steps, **kw)
    else:
        kappa = np.broadcast_to(
            np.asarray(spring_constants, float), (len(atoms),)
        ).copy()
    if springs_file is not None:  # windows on disk are only valid with these springs
        _write_json(springs_file, {"spring_constants_eV_per_A2": kappa.tolist()})
    einstein = EinsteinCalculator(atoms.get_positions(), kappa)
    f_ref = einstein_free_energy(atoms.get_masses(), kappa, temperature_K, fix_com=True)
    ti_kwargs.setdefault(
        "start_displacements",
        partial(einstein_displacements, atoms.get_masses(), kappa, temperature_K),
    )
    ti = integrate(atoms, einstein, calc, temperature_K, fix_com=True, **ti_kwargs)
    symbols = atoms.get_chemical_symbols()
    per_symbol = {s: float(kappa[symbols.index(s)]) for s in sorted(set(symbols))}
    logger.info(
        "Frenkel-Ladd: F_E=%.6f eV, ΔF=%.6f ± %.6f eV",
        f_ref,
        ti.delta_F_eV,
        ti.error_eV,
    )
    return CrystalFreeEnergy(
        f_ref + ti.delta_F_eV,
        ti.error_eV,
        f_ref,
        ti,
        len(atoms),
        float(temperature_K),
        "einstein",
        per_symbol,
    )


def _springs_file(output_dir: Any) -> Path | None:
    return None if output_dir is None else Path(output_dir) / "einstein_springs.json"


def _write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))


def anharmonic_free_energy(
    atoms: Atoms,
    calc: Any,
    temperature_K: float,
    hessian: ArrayLike | None = None,
    delta: float = 0.01,
    **ti_kwargs: Any,
) -> CrystalFreeEnergy:
    """Harmonic free energy plus the anharmonic correction by TI harmonic → ``calc``.

    The harmonic reference is :class:`ase.calculators.harmonic.HarmonicCalculator`
    built from the Hessian at ``atoms`` (finite differences with ``calc``
    unless ``hessian`` in eV/Å², shape (3 n_atoms, 3 n_atoms), is given, e.g.
    from phonopy force constants of the same cell). ``ti.delta_F_eV`` of the
    result is the anharmonic free energy. Windows start from thermal
    configurations of the harmonic crystal (:func:`harmonic_displacements`).
    """
    if ti_kwargs.pop("fix_com", True) is not True:
        raise ValueError("anharmonic_free_energy always fixes the COM; drop fix_com")
    work = atoms.copy()
    work.calc = calc
    static = float(work.get_potential_energy())
    h = (
        finite_difference_hessian(atoms, calc, delta)
        if hessian is None
        else np.asarray(hessian)
    )
    f_harm = harmonic_free_energy(atoms, h, temperature_K, static)
    ti_kwargs.setdefault(
        "start_displacements",
        partial(harmonic_displacements, atoms.get_masses(), h, temperature_K),
    )
    ti = integrate(
        atoms,
        harmonic_calculator(atoms, h, static),
        calc,
        temperature_K,
        fix_com=True,
        **ti_kwargs,
    )
    logger.info(
        "harmonic F=%.6f eV, anharmonic ΔF=%.6f ± %.6f eV",
        f_harm,
        ti.delta_F_eV,
        ti.error_eV,
    )
    return CrystalFreeEnergy(
        f_harm + ti.delta_F_eV,
        ti.error_eV,
        f_harm,
        ti,
        len(atoms),
        float(temperature_K),
        "harmonic",
    )


@dataclass
class GibbsResult:
    """Gibbs energy at one pressure from F(V) at a few volumes.

    ``volumes`` (Å³) and ``free_energies_eV``/``errors_eV`` (eV, whole cell)
    are the sampled points; ``gibbs_eV`` = min over V of ``F(V) + P V`` from
    the EOS fit, at ``volume`` (Å³); ``pressure`` in eV/Å³. The error is the
    mean error of the sampled F (not propagated through the fit).
    """

    gibbs_eV: float
    error_eV: float
    volume: float
    pressure: float
    volumes: list[float]
    free_energies_eV: list[float]
    errors_eV: list[float]
    n_atoms: int
    bulk_modulus_GPa: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        out = dict(self.__dict__)
        out["gibbs_meV_per_atom"] = 1000.0 * self.gibbs_eV / self.n_atoms
        out["pressure_GPa"] = self.pressure / units.GPa
        return out


def gibbs_free_energy(
    atoms: Atoms,
    calc: Any,
    temperature_K: float,
    pressure: float = 0.0,
    volume_scales: ArrayLike = (0.97, 0.985, 1.0, 1.015, 1.03),
    eos: str = "birchmurnaghan",
    **fl_kwargs: Any,
) -> GibbsResult:
    """Gibbs energy ``G = min_V F(V) + P V`` via Frenkel–Ladd at several volumes.

    Parameters
    ----------
    pressure : float
        In eV/Å³ (``1.0 * units.GPa``).
    volume_scales : array_like, shape (n_volumes,)
        Volumes relative to ``atoms`` (cell scaled isotropically, atoms with it);
        at least 5 for a Birch–Murnaghan fit.
    eos : str
        An :class:`ase.eos.EquationOfState` form other than ``"sj"``.
    **fl_kwargs
        Passed to :func:`frenkel_ladd` (``output_dir`` gets a ``V_XX`` subdir).
    """
    from ase.eos import EquationOfState
    from scipy.optimize import minimize_scalar

    scales = np.asarray(volume_scales, dtype=float)
    if scales.size < 5 or eos == "sj":
        raise ValueError(
            f"need >= 5 volumes and a non-'sj' eos, got {scales.size}, {eos!r}"
        )
    out_dir = fl_kwargs.pop("output_dir", None)
    volumes, energies, errors = [], [], []
    for k, scale in enumerate(scales):
        strained = atoms.copy()
        strained.set_cell(atoms.cell * scale ** (1.0 / 3.0), scale_atoms=True)
        sub = None if out_dir is None else f"{out_dir}/V_{k:02d}"
        res = frenkel_ladd(strained, calc, temperature_K, output_dir=sub, **fl_kwargs)
        volumes.append(float(strained.get_volume()))
        energies.append(res.free_energy_eV)
        errors.append(res.error_eV)
    fit = EquationOfState(volumes, energies, eos=eos)
    _, _, bulk = fit.fit(warn=False)
    params = fit.eos_parameters
    best = minimize_scalar(
        lambda v: fit.func(v, *params) + pressure * v,
        bounds=(min(volumes), max(volumes)),
        method="bounded",
    )
    return GibbsResult(
        float(best.fun),
        float(np.mean(errors)),
        float(best.x),
        float(pressure),
        volumes,
        energies,
        errors,
        len(atoms),
        float(bulk / units.GPa),
    )
