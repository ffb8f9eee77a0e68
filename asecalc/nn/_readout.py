"""Species embedding and atomic-energy readout."""

from __future__ import annotations

import torch
from torch import nn


class SpeciesEmbedding(nn.Module):
    """Learned scalar (0e) features of each species.

    (n_atoms,) -> (n_atoms, n_scalars).
    """

    def __init__(self, n_species: int, n_scalars: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_species, n_scalars)

    def forward(self, species: torch.Tensor) -> torch.Tensor:
        """species: (n_atoms,) int64 indices -> (n_atoms, n_scalars)."""
        return self.embedding(species)


class AtomicEnergyReadout(nn.Module):
    """Atomic energies ``E_i = scale · MLP(s_i) + E0[species_i]`` in eV.

    ``scale`` and the per-species reference energies ``E0`` are buffers fitted
    from the training data (least squares), not learned by gradient descent.
    Dropout before the last layer serves MC-dropout uncertainty.
    """

    scale: torch.Tensor  # buffer, () dimensionless
    reference_energies: torch.Tensor  # buffer, (n_species,) E0 in eV

    def __init__(
        self, n_scalars: int, hidden: int, n_species: int, dropout: float
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_scalars, hidden),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("reference_energies", torch.zeros(n_species))

    def forward(self, scalars: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """scalars: (n_atoms, n_scalars), species: (n_atoms,) -> (n_atoms,) eV."""
        return (
            self.scale * self.net(scalars).squeeze(-1)
            + self.reference_energies[species]
        )
