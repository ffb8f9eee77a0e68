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
``organics``
    :data:`ORGANICS`: 37 CHNO organic molecules beyond G2 (substituted benzenes,
    heteroaromatics, amides, esters, acids, saturated rings, amino acids,
    caffeine, ibuprofen), built from SMILES with RDKit.
``organics-extra``
    :data:`ORGANICS_EXTRA`: 73 more CHNO molecules (fused and multi-heteroatom
    rings, lactams, lactones, biaryls, oximes, azomethane, amino acids).
``organics-holdout``
    :data:`ORGANICS_HOLDOUT`: the molecules of the rMD17, 3BPA and acetylacetone
    benchmarks that no training recipe contains (aspirin, naphthalene, ...), for
    test sets of unseen drug-like molecules.
``smiles:SMILES``
    One molecule given by the user, e.g. ``smiles:CC(=O)Nc1ccc(O)cc1``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from ase import Atoms, units
from ase.build import molecule
from ase.collections import g2

from asecalc.training._organics import ORGANICS, ORGANICS_EXTRA, ORGANICS_HOLDOUT
from asecalc.training._water import (
    build_ice_ih,
    equilibrate_water,
    pack_water,
)

logger = logging.getLogger(__name__)

#: G2 molecules left out of ``g2`` and kept for ``g2-holdout`` test sets.
G2_HOLDOUT: tuple[str, ...] = ("C5H5N", "CH3CONH2", "C4H4O", "CH3CH2OCH3", "N2O")

#: Highest sampling temperature (K) of the SMILES-built recipes.
ORGANICS_MAX_T = 800.0

ALANINE_DIPEPTIDE_FILE = (
    Path(__file__).resolve().parents[1] / "data" / "alanine_dipeptide.xyz"
)


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
        Periodic water uses ``"flexible-water"`` (TIP3P + SPC/Fw) because
        periodic GFN2-xTB costs seconds per step; frames are then rattled and
        labelled with the reference.
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


def build_g2(
    rng: np.random.Generator, holdout: bool = False
) -> list[tuple[str, Atoms]]:
    """Return ``(name, Atoms)`` for the CHNO G2 molecules (``rng`` unused)."""
    return [(name, molecule(name)) for name in g2_chno_names(holdout)]


def _replace_by_hydrogen(atoms: Atoms, anchor: int, index: int, bond: float) -> None:
    """Turn atom ``index`` into H at ``bond`` Å from ``anchor`` along the old bond."""
    vector = atoms.positions[index] - atoms.positions[anchor]
    atoms.positions[index] = atoms.positions[anchor] + bond * vector / np.linalg.norm(
        vector
    )
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
    dipeptide = cast(Atoms, read(ALANINE_DIPEPTIDE_FILE))
    dipeptide.info.clear()

    def cut(
        remove: list[int],
        to_hydrogen: list[tuple[int, int, float]],
        to_oxygen: Sequence[int] = (),
    ) -> Atoms:
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
        (
            "n_methylacetamide",
            cut([*side_chain, 15, *range(16, 22)], [(8, 10, 1.09), (8, 14, 1.09)]),
        ),
        ("alanine", cut(acetyl + nme_methyl, [(6, 4, 1.01)], to_oxygen=[16])),
        (
            "glycine",
            cut(
                acetyl + nme_methyl + side_chain,
                [(6, 4, 1.01), (8, 10, 1.09)],
                to_oxygen=[16],
            ),
        ),
    ]


def build_smiles(
    rng: np.random.Generator, molecules: dict[str, str]
) -> list[tuple[str, Atoms]]:
    """Return ``(name, Atoms)`` for ``{name: SMILES}`` (RDKit; ``rng`` unused)."""
    from asecalc.training._smiles import atoms_from_smiles

    return [(name, atoms_from_smiles(smiles)) for name, smiles in molecules.items()]


def build_water_clusters(
    rng: np.random.Generator, sizes: tuple[int, ...] = tuple(range(2, 9))
) -> list[tuple[str, Atoms]]:
    """Return random water clusters ``water<n>`` (relaxed later by the sampler)."""
    return [(f"water{n}", pack_water(n, rng, min_oo=2.7)) for n in sizes]


def build_liquid_water(
    rng: np.random.Generator, n_boxes: int = 2, n_molecules: int = 32
) -> list[tuple[str, Atoms]]:
    """Return ``n_boxes`` periodic water boxes at about 1 g/cm³ (TIP3P-equilibrated)."""
    edge = (n_molecules * 18.015 / 0.997 / units.mol * 1e24) ** (1 / 3)  # Å
    boxes = []
    for index in range(n_boxes):
        start = pack_water(n_molecules, rng, cell=edge, min_oo=2.5)
        boxes.append(
            (
                f"water{n_molecules}_box{index}",
                equilibrate_water(start, 300.0, 1000, rng),
            )
        )
    return boxes


def smiles_recipe(name: str, molecules: dict[str, str]) -> Recipe:
    """A recipe of molecules given as ``{name: SMILES}``, sampled up to
    :data:`ORGANICS_MAX_T`."""
    return Recipe(
        name,
        lambda rng: build_smiles(rng, molecules),
        max_temperature_K=ORGANICS_MAX_T,
    )


RECIPES: dict[str, Recipe] = {
    "g2": Recipe("g2", build_g2),
    "g2-holdout": Recipe("g2-holdout", lambda rng: build_g2(rng, holdout=True)),
    "peptides": Recipe("peptides", build_peptides, max_temperature_K=600.0),
    "water-cluster": Recipe(
        "water-cluster", build_water_clusters, max_temperature_K=600.0
    ),
    "liquid-water": Recipe(
        "liquid-water",
        build_liquid_water,
        samplers=("md", "random"),
        max_temperature_K=400.0,
        md_calculator="flexible-water",
        preoptimize=False,
        rattle_sigma=0.04,
        strain_sigma=0.01,
    ),
    "organics": smiles_recipe("organics", ORGANICS),
    "organics-extra": smiles_recipe("organics-extra", ORGANICS_EXTRA),
    "organics-holdout": smiles_recipe("organics-holdout", ORGANICS_HOLDOUT),
    "ice": Recipe(
        "ice",
        build_ice_ih,
        samplers=("random",),
        max_temperature_K=300.0,
        preoptimize=False,
        rattle_sigma=0.05,
        strain_sigma=0.01,
    ),
}


def get_recipe(name: str) -> Recipe:
    """Return the recipe called ``name``; raise ValueError listing valid names.

    ``"smiles:SMILES"`` is a recipe of that one molecule (structure name: the
    SMILES), sampled like ``organics``.
    """
    if name.startswith("smiles:"):
        smiles = name.removeprefix("smiles:")
        from asecalc.training._smiles import canonical_smiles

        canonical_smiles(smiles)  # parse now: a typo fails before any labelling
        return smiles_recipe(name, {smiles: smiles})
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(
            f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)} "
            "or smiles:SMILES"
        ) from None
