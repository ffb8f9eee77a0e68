"""Units: eformer uses ASE's units only (eV, Å, amu, ASE time).

Re-exports :mod:`ase.units` and derives the few conversion factors used in
reports, so no second unit system exists anywhere in :mod:`asecalc`.
"""

from ase.units import GPa, fs, kB, kcal, kJ, mol

__all__ = ["EV_PER_A3_TO_GPA", "MEV", "GPa", "fs", "kB", "kJ", "kcal", "mol", "ps"]

#: 1 ps in ASE time units (:mod:`ase.units` defines ``fs`` but not ``ps``).
ps: float = 1e3 * fs
#: 1 eV/Å³ in GPa.
EV_PER_A3_TO_GPA: float = 1.0 / GPa
#: meV in eV.
MEV: float = 1e-3
