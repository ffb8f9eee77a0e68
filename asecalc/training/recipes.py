"""Built-in starting structures for ``eformer datagen``: CHNO molecules and water.

A :class:`Recipe` names a family of starting structures and how to sample around
them. :data:`RECIPES` maps the names the command line accepts to recipes:

``g2``
    Closed-shell CHNO molecules of the G2 set (:mod:`ase.collections`), without
    the :data:`G2_HOLDOUT` molecules.
``g2-holdout``
    Only the :data:`G2_HOLDOUT` molecules (for test sets of unseen molecules).
``peptides``
    Alanine dipeptide (Ace-Ala-Nme) and fragments cut from it: N-methylacetamide,
    Ace-Gly-Nme, neutral alanine and glycine.
``water-cluster``
    Clusters of 2 to 8 water molecules.
``liquid-water``
    32 water molecules in a periodic 9.86 Å cube (about 1 g/cm³), pre-equilibrated
    with a cheap flexible water model (TIP3P + SPC/Fw).
``ice``
    Proton-ordered ice Ih, 16 molecules in an orthorhombic cell.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk, make_supercell, molecule
from ase.collections import g2
from ase.calculators.calculator import Calculator, all_changes
from ase.geometry import find_mic, get_distances

logger = logging.getLogger(__name__)

#: G2 molecules left out of ``g2`` and kept for ``g2-holdout`` test sets.
G2_HOLDOUT: tuple[str, ...] = ("C5H5N", "CH3CONH2", "C4H4O", "CH3CH2OCH3", "N2O")

ALANINE_DIPEPTIDE_FILE = Path(__file__).resolve().parents[1] / "data" / "alanine_dipeptide.xyz"


@dataclass(frozen=True)
class Recipe:
    """A family of starting structures and the default way to sample them.

    Parameters
    ----------
    name : str
        Name used on the command line (``--recipe NAME``).
    build : callable
        ``build(rng) -> list[(structure_name, Atoms)]``; ``rng`` is a
        ``numpy.random.Generator`` for structures built at random (clusters, boxes).
    samplers : tuple of str
        Default samplers (``"md"``, ``"normal-modes"``, ``"random"``).
    max_temperature_K : float
        Requested temperatures above this are clipped to it (clusters evaporate,
        ice melts).
    md_calculator : str or None
        Calculator spec driving the MD sampler; None means the reference itself.
        Periodic water uses ``"flexible-water"`` (TIP3P + SPC/Fw) because periodic GFN2-xTB costs
        seconds per step; frames are then rattled and labelled with the reference.
    preoptimize : bool
        Relax the start with the reference before sampling.
    rattle_sigma : float
        Gaussian displacement (Å, at 300 K, scaled by sqrt(T/300)) added to frames
        of the random sampler and of MD with a non-reference calculator.
    strain_sigma : float
        Standard deviation of a random symmetric cell strain (periodic cells only).
    """

    name: str
    build: Callable[[np.random.Generator], list[tuple[str, Atoms]]]
    samplers: tuple[str, ...] = ("md", "normal-modes")
    max_temperature_K: float = 1000.0
    md_calculator: str | None = None
    preoptimize: bool = True
    rattle_sigma: float = 0.05
    strain_sigma: float = 0.0


def g2_chno_names(holdout: bool = False) -> list[str]:
    """Return the closed-shell CHNO G2 molecules with at least two atoms.

    Parameters
    ----------
    holdout : bool
        Return only :data:`G2_HOLDOUT` instead of the molecules without it.
    """
    names = []
    for name in g2.names:
        atoms = g2[name]
        if len(atoms) < 2 or not set(atoms.get_chemical_symbols()) <= set("CHNO"):
            continue
        if abs(atoms.get_initial_magnetic_moments()).sum() > 0:
            continue  # radicals and triplets: the model has no spin input
        if atoms.get_atomic_numbers().sum() % 2:
            continue
        if (name in G2_HOLDOUT) == holdout:
            names.append(name)
    return sorted(names)


def build_g2(rng: np.random.Generator, holdout: bool = False) -> list[tuple[str, Atoms]]:
    """Return ``(name, Atoms)`` for the CHNO G2 molecules (``rng`` unused)."""
    return [(name, molecule(name)) for name in g2_chno_names(holdout)]


def _replace_by_hydrogen(atoms: Atoms, anchor: int, index: int, bond: float) -> None:
    """Turn atom ``index`` into H at ``bond`` Å from ``anchor`` along the old bond."""
    vector = atoms.positions[index] - atoms.positions[anchor]
    atoms.positions[index] = atoms.positions[anchor] + bond * vector / np.linalg.norm(vector)
    atoms.symbols[index] = "H"


def build_peptides(rng: np.random.Generator) -> list[tuple[str, Atoms]]:
    """Return alanine dipeptide and four fragments cut from it (``rng`` unused).

    Atom indices refer to ``asecalc/data/alanine_dipeptide.xyz`` (Ace-Ala-Nme:
    0-5 acetyl, 6-7 N-H, 8-9 CA-H, 10-13 methyl side chain, 14-15 C=O, 16-21 NMe).
    The fragments are crude cuts; the samplers relax them with the reference first.
    """
    from ase.io import read

    if not ALANINE_DIPEPTIDE_FILE.exists():
        raise FileNotFoundError(f"missing packaged structure {ALANINE_DIPEPTIDE_FILE}")
    dipeptide = read(ALANINE_DIPEPTIDE_FILE)
    dipeptide.info.clear()

    def cut(remove: list[int], to_hydrogen: list[tuple[int, int, float]],
            to_oxygen: list[int] = ()) -> Atoms:
        atoms = dipeptide.copy()
        for anchor, index, bond in to_hydrogen:
            _replace_by_hydrogen(atoms, anchor, index, bond)
        for index in to_oxygen:
            atoms.symbols[index] = "O"
        del atoms[remove]
        return atoms

    side_chain = [11, 12, 13]
    nme_methyl = [18, 19, 20, 21]
    acetyl = [0, 1, 2, 3, 5]
    return [
        ("alanine_dipeptide", dipeptide.copy()),
        ("ace_gly_nme", cut(side_chain, [(8, 10, 1.09)])),
        ("n_methylacetamide", cut(side_chain + [15, *range(16, 22)],
                                  [(8, 10, 1.09), (8, 14, 1.09)])),
        ("alanine", cut(acetyl + nme_methyl, [(6, 4, 1.01)], to_oxygen=[16])),
        ("glycine", cut(acetyl + nme_methyl + side_chain, [(6, 4, 1.01), (8, 10, 1.09)],
                        to_oxygen=[16])),
    ]


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def pack_water(n_molecules: int, rng: np.random.Generator, cell: float | None = None,
               radius: float | None = None, min_oo: float = 2.6,
               max_tries: int = 20000) -> Atoms:
    """Place rigid water molecules at random without overlaps (order O, H, H).

    Parameters
    ----------
    n_molecules : int
        Number of molecules.
    rng : numpy.random.Generator
        Random generator.
    cell : float, optional
        Edge (Å) of a periodic cube; else a cluster inside a sphere of ``radius`` Å.
    radius : float, optional
        Sphere radius in Å for clusters (default grows with ``n_molecules``).
    min_oo : float
        Minimum O–O distance in Å; all other intermolecular pairs keep > 1.7 Å.
    """
    water = molecule("H2O")
    water.positions -= water.positions[0]
    radius = radius if radius is not None else 1.6 * n_molecules ** (1 / 3) + 0.5
    atoms = Atoms(cell=[cell] * 3 if cell else None, pbc=bool(cell))
    for _ in range(max_tries):
        if len(atoms) == 3 * n_molecules:
            return atoms
        if cell:
            centre = rng.uniform(0, cell, 3)
        else:
            centre = rng.uniform(-radius, radius, 3)
            if np.linalg.norm(centre) > radius:
                continue
        new = Atoms("OH2", water.positions @ _random_rotation(rng).T + centre)
        if len(atoms):
            _, dist = get_distances(new.positions, atoms.positions, cell=atoms.cell,
                                    pbc=atoms.pbc)
            if dist[0, ::3].min() < min_oo or dist.min() < 1.7:
                continue
        atoms += new
    raise RuntimeError(f"could not pack {n_molecules} water molecules in {max_tries} tries")


def build_water_clusters(rng: np.random.Generator,
                         sizes: tuple[int, ...] = tuple(range(2, 9))) -> list[tuple[str, Atoms]]:
    """Return random water clusters ``water<n>`` (relaxed later by the sampler)."""
    return [(f"water{n}", pack_water(n, rng, min_oo=2.7)) for n in sizes]


class FlexibleWaterIntra(Calculator):
    """Intramolecular SPC/Fw bond and angle terms for water ordered O, H, H.

    Summed with ASE's (intermolecular-only) TIP3P it gives a cheap flexible water
    model that drives the liquid-water sampler. Parameters from Wu, Tepper and Voth,
    J. Chem. Phys. 124, 024503 (2006).
    """

    implemented_properties = ["energy", "free_energy", "forces"]
    k_bond = 1059.162 * units.kcal / units.mol  # eV/Å²
    r0 = 1.012  # Å
    k_angle = 75.90 * units.kcal / units.mol  # eV/rad²
    theta0 = np.radians(113.24)

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pos = self.atoms.positions
        forces = np.zeros_like(pos)
        vec = [find_mic(pos[h::3] - pos[0::3], self.atoms.cell, self.atoms.pbc)[0]
               for h in (1, 2)]
        length = [np.linalg.norm(v, axis=1) for v in vec]
        unit = [v / r[:, None] for v, r in zip(vec, length)]
        cos = np.clip(np.sum(unit[0] * unit[1], axis=1), -1.0, 1.0)
        theta = np.arccos(cos)
        energy = 0.5 * self.k_angle * np.sum((theta - self.theta0) ** 2)
        for h in (0, 1):
            stretch = length[h] - self.r0
            energy += 0.5 * self.k_bond * np.sum(stretch**2)
            other = unit[1 - h]
            dtheta = -(other - cos[:, None] * unit[h]) / (
                length[h] * np.sin(theta))[:, None]
            force_h = (-self.k_bond * stretch[:, None] * unit[h]
                       - self.k_angle * (theta - self.theta0)[:, None] * dtheta)
            forces[h + 1::3] += force_h
            forces[0::3] -= force_h
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}


def flexible_water_calculator(atoms: Atoms) -> Calculator:
    """Return TIP3P (intermolecular) + SPC/Fw (intramolecular) for ``atoms``."""
    from ase.calculators.mixing import SumCalculator
    from ase.calculators.tip3p import TIP3P

    rc = min(4.5, atoms.cell.lengths().min() / 2 - 0.01) if atoms.pbc.all() else 4.5
    return SumCalculator([TIP3P(rc=rc), FlexibleWaterIntra()])


def equilibrate_water(atoms: Atoms, temperature_K: float, n_steps: int,
                      rng: np.random.Generator) -> Atoms:
    """Run flexible-water Langevin MD (order O, H, H) and return the final frame.

    Parameters
    ----------
    atoms : Atoms
        Periodic water box; not modified.
    temperature_K : float
        Thermostat temperature in K.
    n_steps : int
        Number of 0.5 fs steps.
    rng : numpy.random.Generator
        Random generator for velocities and the thermostat.
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    work = atoms.copy()
    work.calc = flexible_water_calculator(work)
    MaxwellBoltzmannDistribution(work, temperature_K=temperature_K, rng=rng)
    Langevin(work, 0.5 * units.fs, temperature_K=temperature_K, friction=0.05 / units.fs,
             fixcm=False, rng=rng).run(n_steps)
    frame = work.copy()
    frame.wrap()
    return frame


def build_liquid_water(rng: np.random.Generator, n_boxes: int = 2,
                       n_molecules: int = 32) -> list[tuple[str, Atoms]]:
    """Return ``n_boxes`` periodic water boxes at about 1 g/cm³ (TIP3P-equilibrated)."""
    edge = (n_molecules * 18.015 / 0.997 / units.mol * 1e24) ** (1 / 3)  # Å
    boxes = []
    for index in range(n_boxes):
        start = pack_water(n_molecules, rng, cell=edge, min_oo=2.5)
        boxes.append((f"water{n_molecules}_box{index}",
                      equilibrate_water(start, 300.0, 1000, rng)))
    return boxes


def build_ice_ih(rng: np.random.Generator | None = None) -> list[tuple[str, Atoms]]:
    """Return proton-ordered ice Ih (16 molecules, orthorhombic, ~0.93 g/cm³).

    Oxygens sit on the wurtzite lattice (a = 4.52 Å, c = 7.36 Å); hydrogens follow
    the ice rules (one H per O–O bond, two per O) found by exhaustive search on
    the 8-molecule cell, then the cell is doubled along a.
    """
    lattice = bulk("ZnO", "wurtzite", a=4.52, c=7.36, u=3 / 8)
    oxygens = make_supercell(lattice, [[1, 0, 0], [1, 2, 0], [0, 0, 1]])
    oxygens.symbols[:] = "O"
    vectors, dist = get_distances(oxygens.positions, cell=oxygens.cell, pbc=True)
    bonds = [(i, j) for i, j in zip(*np.nonzero((dist > 0.1) & (dist < 3.0))) if i < j]
    for donors in itertools.product((0, 1), repeat=len(bonds)):
        count = np.zeros(len(oxygens), int)
        for (i, j), side in zip(bonds, donors):
            count[j if side else i] += 1
        if np.all(count == 2):
            break
    else:  # pragma: no cover - the wurtzite lattice always admits ice rules
        raise RuntimeError("no ice-rule proton arrangement found")
    hydrogens = []
    for (i, j), side in zip(bonds, donors):
        donor, acceptor = (j, i) if side else (i, j)
        vector = vectors[donor, acceptor]
        hydrogens.append(oxygens.positions[donor] + 0.98 * vector / np.linalg.norm(vector))
    ice = oxygens + Atoms(f"H{len(hydrogens)}", hydrogens)
    return [("ice_ih_16", ice.repeat((2, 1, 1)))]


RECIPES: dict[str, Recipe] = {
    "g2": Recipe("g2", build_g2),
    "g2-holdout": Recipe("g2-holdout", lambda rng: build_g2(rng, holdout=True)),
    "peptides": Recipe("peptides", build_peptides, max_temperature_K=600.0),
    "water-cluster": Recipe("water-cluster", build_water_clusters, max_temperature_K=600.0),
    "liquid-water": Recipe("liquid-water", build_liquid_water, samplers=("md", "random"),
                           max_temperature_K=400.0, md_calculator="flexible-water",
                           preoptimize=False, rattle_sigma=0.04, strain_sigma=0.01),
    "ice": Recipe("ice", build_ice_ih, samplers=("random",), max_temperature_K=300.0,
                  preoptimize=False, rattle_sigma=0.05, strain_sigma=0.01),
}


def get_recipe(name: str) -> Recipe:
    """Return the recipe called ``name``; raise ValueError listing valid names."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(
            f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}"
        ) from None
