"""Water and ice helpers for the datagen recipes: packing, a cheap flexible water
model (TIP3P + SPC/Fw) for sampling periodic water, and proton-ordered ice Ih."""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.build import bulk, make_supercell, molecule
from ase.calculators.calculator import BaseCalculator, Calculator, all_changes
from ase.geometry import find_mic, get_distances


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def pack_water(
    n_molecules: int,
    rng: np.random.Generator,
    cell: float | None = None,
    radius: float | None = None,
    min_oo: float = 2.6,
    max_tries: int = 20000,
) -> Atoms:
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
            _, dist = get_distances(
                new.positions, atoms.positions, cell=atoms.cell, pbc=atoms.pbc
            )
            if dist[0, ::3].min() < min_oo or dist.min() < 1.7:
                continue
        atoms += new
    raise RuntimeError(
        f"could not pack {n_molecules} water molecules in {max_tries} tries"
    )


class FlexibleWaterIntra(Calculator):
    """Intramolecular SPC/Fw bond and angle terms for water ordered O, H, H.

    Summed with ASE's (intermolecular-only) TIP3P it gives a cheap flexible water
    model that drives the liquid-water sampler. Parameters from Wu, Tepper and Voth,
    J. Chem. Phys. 124, 024503 (2006).
    """

    implemented_properties = ["energy", "free_energy", "forces"]  # noqa: RUF012
    k_bond = 1059.162 * units.kcal / units.mol  # eV/Å²
    r0 = 1.012  # Å
    k_angle = 75.90 * units.kcal / units.mol  # eV/rad²
    theta0 = np.radians(113.24)
    k_wall = 20.0  # eV/Å²
    r_wall = 1.5  # Å

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pos = self.atoms.positions
        forces = np.zeros_like(pos)
        vec = [
            find_mic(pos[h::3] - pos[0::3], self.atoms.cell, self.atoms.pbc)[0]
            for h in (1, 2)
        ]
        length = [np.linalg.norm(v, axis=1) for v in vec]
        unit = [v / r[:, None] for v, r in zip(vec, length, strict=True)]
        cos = np.clip(np.sum(unit[0] * unit[1], axis=1), -1.0, 1.0)
        theta = np.arccos(cos)
        energy = 0.5 * self.k_angle * np.sum((theta - self.theta0) ** 2)
        for h in (0, 1):
            stretch = length[h] - self.r0
            energy += 0.5 * self.k_bond * np.sum(stretch**2)
            other = unit[1 - h]
            dtheta = (
                -(other - cos[:, None] * unit[h]) / (length[h] * np.sin(theta))[:, None]
            )
            force_h = (
                -self.k_bond * stretch[:, None] * unit[h]
                - self.k_angle * (theta - self.theta0)[:, None] * dtheta
            )
            forces[h + 1 :: 3] += force_h
            forces[0::3] -= force_h
        energy += self._contact_repulsion(forces)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}

    def _contact_repulsion(self, forces: np.ndarray) -> float:
        """Harmonic wall ``k (r_wall - r)²/2`` on intermolecular pairs with an H.

        TIP3P has no repulsion on H, so flexible molecules can let an H sink into
        a neighbour; this wall (r < 1.5 Å) keeps sampled frames physical.
        """
        vectors, dist = get_distances(
            self.atoms.positions, cell=self.atoms.cell, pbc=self.atoms.pbc
        )  # (n_atoms, n_atoms, 3) Å
        molecule_index = np.arange(len(self.atoms)) // 3
        hydrogen = self.atoms.numbers == 1
        mask = (
            (molecule_index[:, None] != molecule_index[None, :])
            & (hydrogen[:, None] | hydrogen[None, :])
            & (dist < self.r_wall)
        )
        i, j = np.nonzero(np.triu(mask))
        if not len(i):
            return 0.0
        overlap = self.r_wall - dist[i, j]
        pair_force = (self.k_wall * overlap / dist[i, j])[:, None] * vectors[i, j]
        np.add.at(forces, j, pair_force)
        np.add.at(forces, i, -pair_force)
        return float(0.5 * self.k_wall * np.sum(overlap**2))


def flexible_water_calculator(atoms: Atoms) -> BaseCalculator:
    """Return TIP3P (intermolecular) + SPC/Fw (intramolecular) for ``atoms``."""
    from ase.calculators.mixing import SumCalculator
    from ase.calculators.tip3p import TIP3P

    rc = min(4.5, atoms.cell.lengths().min() / 2 - 0.01) if atoms.pbc.all() else 4.5
    return SumCalculator([TIP3P(rc=rc), FlexibleWaterIntra()])


def thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Draw Maxwell-Boltzmann momenta (``thermalize_momenta`` from ASE 3.29 on)."""
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import (
            MaxwellBoltzmannDistribution as thermalize_momenta,
        )
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)


def equilibrate_water(
    atoms: Atoms, temperature_K: float, n_steps: int, rng: np.random.Generator
) -> Atoms:
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

    work = atoms.copy()
    work.calc = flexible_water_calculator(work)
    thermalize(work, temperature_K=temperature_K, rng=rng)
    Langevin(
        work,
        0.5 * units.fs,
        temperature_K=temperature_K,
        friction=0.05 / units.fs,
        fixcm=False,
        rng=rng,
    ).run(n_steps)
    frame = work.copy()
    frame.wrap()
    return frame


def _euler_orientation(
    n_nodes: int, edges: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Orient the edges of a connected even-degree graph along an Euler circuit.

    Every node then has as many outgoing as incoming edges: two donated and two
    accepted hydrogen bonds per oxygen of a 4-connected ice lattice (Hierholzer).
    """
    adjacency: dict[int, list[tuple[int, int]]] = {i: [] for i in range(n_nodes)}
    for index, (i, j) in enumerate(edges):
        adjacency[i].append((j, index))
        adjacency[j].append((i, index))
    used = [False] * len(edges)
    oriented: list[tuple[int, int]] = []
    stack: list[tuple[int, tuple[int, int] | None]] = [(0, None)]
    while stack:
        node, via = stack[-1]
        while adjacency[node] and used[adjacency[node][-1][1]]:
            adjacency[node].pop()
        if adjacency[node]:
            nxt, index = adjacency[node].pop()
            used[index] = True
            stack.append((nxt, (node, nxt)))
        else:
            stack.pop()
            if via is not None:
                oriented.append(via)
    return oriented


def build_ice_ih(rng: np.random.Generator | None = None) -> list[tuple[str, Atoms]]:
    """Return proton-ordered ice Ih (16 molecules, orthorhombic, ~0.93 g/cm³).

    Oxygens sit on the wurtzite lattice (a = 4.52 Å, c = 7.36 Å); each O–O bond
    gets one hydrogen (0.98 Å from its donor), oriented along an Euler circuit
    of the bond graph so that every oxygen donates two (the ice rules).
    """
    lattice = bulk("ZnO", "wurtzite", a=4.52, c=7.36, u=3 / 8)
    oxygens = make_supercell(lattice, [[2, 0, 0], [1, 2, 0], [0, 0, 1]])
    oxygens.symbols[:] = "O"
    vectors, dist = get_distances(oxygens.positions, cell=oxygens.cell, pbc=True)
    bonds = [
        (int(i), int(j))
        for i, j in zip(*np.nonzero((dist > 0.1) & (dist < 3.0)), strict=True)
        if i < j
    ]
    if len(bonds) != 2 * len(oxygens):  # pragma: no cover - geometry check
        raise RuntimeError(
            f"ice lattice has {len(bonds)} O-O bonds, expected {2 * len(oxygens)}"
        )
    hydrogens = []
    for donor, acceptor in _euler_orientation(len(oxygens), bonds):
        vector = vectors[donor, acceptor]
        hydrogens.append(
            oxygens.positions[donor] + 0.98 * vector / np.linalg.norm(vector)
        )
    ice = oxygens + Atoms(f"H{len(hydrogens)}", hydrogens)
    order = [
        k
        for i in range(len(oxygens))
        for k in [
            i,
            *(
                len(oxygens) + h
                for h, (d, _) in enumerate(_euler_orientation(len(oxygens), bonds))
                if d == i
            ),
        ]
    ]
    return [("ice_ih_16", ice[order])]
