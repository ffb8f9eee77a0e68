"""Names of the entries of a graph dict, with their shapes and units.

A graph dict is what :func:`asecalc.graph.atoms_to_graph` returns and what
:class:`asecalc.nn.EformerModel` consumes. ``n_graphs`` structures may be
batched into one dict by concatenation (:func:`asecalc.graph.batch_graphs`).
"""

from typing import Final

POSITIONS: Final[str] = "positions"  # (n_atoms, 3) | Cartesian positions [Å]
SPECIES: Final[str] = "species"  # (n_atoms,) int64 | index into ModelConfig.elements
CELL: Final[str] = "cell"  # (n_graphs, 3, 3) | lattice vectors as rows [Å]
EDGE_SRC: Final[str] = "edge_src"  # (n_edges,) int64 | neighbour j (sender)
EDGE_DST: Final[str] = "edge_dst"  # (n_edges,) int64 | centre i (receiver)
EDGE_SHIFT: Final[str] = "edge_shift"  # (n_edges, 3) | integer cell shifts S
GRAPH_INDEX: Final[str] = "graph_index"  # (n_atoms,) int64 | structure of each atom
N_GRAPHS: Final[str] = "n_graphs"  # int | structures in the batch
PBC: Final[str] = "pbc"  # (n_graphs, 3) bool | periodic directions

ENERGY: Final[str] = "energy"  # (n_graphs,) | total energy [eV]
ATOMIC_ENERGIES: Final[str] = "atomic_energies"  # (n_atoms,) | per-atom energy [eV]
FORCES: Final[str] = "forces"  # (n_atoms, 3) | -dE/dr [eV/Å]
STRESS: Final[str] = "stress"  # (n_graphs, 3, 3) | (1/V) dE/dε [eV/Å³]
VIRIAL: Final[str] = "virial"  # (n_graphs, 3, 3) | -dE/dε [eV]
