"""Forces and stress as derivatives of the energy (conservative by construction)."""

from __future__ import annotations

import torch


def compute_forces_and_virial(
    energy: torch.Tensor,
    positions: torch.Tensor,
    strain: torch.Tensor | None,
    create_graph: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return ``F = -∂E/∂r`` and ``W = -∂E/∂ε``.

    Parameters
    ----------
    energy : Tensor, shape (n_graphs,)
        Total energies in eV.
    positions : Tensor, shape (n_atoms, 3)
        Positions in Å (requires grad).
    strain : Tensor, shape (n_graphs, 3, 3), or None
        Symmetric strain ε applied to positions and cell (requires grad).
    create_graph : bool
        Keep the graph for higher derivatives (training on forces).

    Returns
    -------
    forces : Tensor, shape (n_atoms, 3)
        eV/Å.
    virial : Tensor, shape (n_graphs, 3, 3), or None
        eV; ASE stress is ``-virial / volume``.
    """
    inputs = [positions] if strain is None else [positions, strain]
    grads = torch.autograd.grad(
        [energy.sum()], inputs, create_graph=create_graph, allow_unused=True
    )
    forces = -grads[0] if grads[0] is not None else torch.zeros_like(positions)
    virial = None
    if strain is not None:
        virial = -grads[1] if grads[1] is not None else torch.zeros_like(strain)
    return forces, virial
