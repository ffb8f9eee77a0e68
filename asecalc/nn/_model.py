"""The SE(3)-Eformer: an equivariant transformer for atomistic energies.

Energy is a sum of atomic energies read out from invariant features after
``n_layers`` blocks of :class:`EquivariantAttention`; forces and stress are its
derivatives (:mod:`._autograd`), so the model is conservative by construction.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from e3nn import o3
from torch import nn

from ._attention import EquivariantAttention
from ._autograd import compute_forces_and_virial
from ._radial import BesselBasis, PolynomialEnvelope
from ._readout import AtomicEnergyReadout, SpeciesEmbedding
from ._zbl import ZBLRepulsion


def hidden_irreps(config: Any) -> o3.Irreps:
    """Node feature irreps: ``n_scalars x0e + n_vectors x1o + n_tensors x2e``."""
    parts = [f"{config.n_scalars}x0e"]
    if config.n_vectors:
        parts.append(f"{config.n_vectors}x1o")
    if config.n_tensors:
        parts.append(f"{config.n_tensors}x2e")
    return o3.Irreps(" + ".join(parts))


class EformerModel(nn.Module):
    """SE(3)-equivariant graph transformer predicting energies (and derivatives).

    Parameters
    ----------
    config : asecalc.config.ModelConfig
        Hyper-parameters (any object with the same attributes).

    Examples
    --------
    >>> import torch
    >>> from asecalc.config import ModelConfig
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = EformerModel(ModelConfig(elements=("H", "O"), n_scalars=8, n_vectors=4))
    >>> sum(p.numel() for p in model.parameters()) > 0
    True
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.irreps_hidden = hidden_irreps(config)
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.sh_lmax)
        n_species = len(config.elements)
        self.n_scalars = config.n_scalars

        self.embedding = SpeciesEmbedding(n_species, config.n_scalars)
        self.spherical_harmonics = o3.SphericalHarmonics(
            self.irreps_sh, normalize=True, normalization="component"
        )
        self.basis = BesselBasis(config.cutoff, config.n_basis)
        self.envelope = PolynomialEnvelope(config.cutoff, config.envelope_p)
        self.layers = nn.ModuleList(
            EquivariantAttention(
                self.irreps_hidden,
                self.irreps_sh,
                config.n_basis,
                config.radial_hidden,
                config.n_heads,
                getattr(config, "bilinear", False),
                getattr(config, "correlation", 0),
                getattr(config, "layer_norm", "per-irrep"),
            )
            for _ in range(config.n_layers)
        )
        self.readout = AtomicEnergyReadout(
            config.n_scalars, config.readout_hidden, n_species, config.dropout
        )
        self.zbl = (
            ZBLRepulsion(
                config.atomic_numbers,
                config.covalent_radii,
                config.zbl_inner,
                config.zbl_outer,
            )
            if config.zbl
            else None
        )
        if self.zbl is not None:
            self.zbl_rmax = config.zbl_outer * 2 * max(config.covalent_radii)

    def fade_in(self, increment: float) -> None:
        """Advance blocks added by depth growth towards full strength (a step)."""
        for layer in self.layers:
            cast(EquivariantAttention, layer).fade_in(increment)

    def forward(
        self,
        graph: dict[str, Any],
        compute_forces: bool = True,
        compute_stress: bool = False,
        create_graph: bool = False,
        return_attention: bool = False,
    ) -> dict[str, Any]:
        """Evaluate a (batched) graph from :func:`asecalc.graph.atoms_to_graph`.

        Returns
        -------
        dict
            ``energy`` (n_graphs,) eV; ``atomic_energies`` (n_atoms,) eV;
            ``forces`` (n_atoms, 3) eV/Å if requested; ``stress``
            (n_graphs, 3, 3) eV/Å³ if requested (ASE sign: (1/V) ∂E/∂ε);
            ``attention`` list of (n_edges, n_heads) per layer if requested.
        """
        positions = graph["positions"]
        cell = graph["cell"]
        graph_index = graph["graph_index"]
        src, dst = graph["edge_src"], graph["edge_dst"]
        n_graphs = int(graph["n_graphs"])
        if compute_forces or compute_stress:
            positions = positions.detach().requires_grad_(True)
        strain = None
        pos, cell_strained = positions, cell
        if compute_stress:
            strain = torch.zeros(
                n_graphs, 3, 3, dtype=positions.dtype, device=positions.device
            ).requires_grad_(True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            pos = positions + torch.einsum("ni,nij->nj", positions, sym[graph_index])
            cell_strained = cell + torch.bmm(cell, sym)

        shift = torch.einsum(
            "ei,eij->ej", graph["edge_shift"], cell_strained[graph_index[dst]]
        )
        vectors = pos[src] - pos[dst] + shift  # (n_edges, 3)
        r = torch.linalg.vector_norm(vectors, dim=-1)  # (n_edges,)
        edge_sh = self.spherical_harmonics(vectors)  # (n_edges, irreps_sh.dim)
        basis = self.basis(r)  # (n_edges, n_basis)
        envelope = self.envelope(r)  # (n_edges,)

        species = graph["species"]
        scalars = self.embedding(species)
        h = torch.cat(
            [
                scalars,
                scalars.new_zeros(
                    len(species), self.irreps_hidden.dim - self.n_scalars
                ),
            ],
            dim=1,
        )
        attention = []
        for layer in self.layers:
            h, alpha = layer(h, src, dst, edge_sh, basis, envelope, return_attention)
            attention.append(alpha)
        atomic = self.readout(h[:, : self.n_scalars], species)  # (n_atoms,)
        if self.zbl is not None:
            close = torch.nonzero(r < self.zbl_rmax).squeeze(-1)
            if len(close):
                pair = self.zbl(r[close], species[src[close]], species[dst[close]])
                atomic = atomic.index_add(0, dst[close], pair)
        energy = atomic.new_zeros(n_graphs).index_add(0, graph_index, atomic)

        out: dict[str, Any] = {"energy": energy, "atomic_energies": atomic}
        if compute_forces or compute_stress:
            forces, virial = compute_forces_and_virial(
                energy, positions, strain, create_graph=create_graph
            )
            out["forces"] = forces
            if virial is not None:
                volume = torch.linalg.det(cell).abs()
                # non-periodic graphs in a mixed batch: avoid 0-division (their
                # stress is meaningless and never used)
                volume = torch.where(volume > 1e-9, volume, torch.ones_like(volume))
                out["stress"] = -virial / volume[:, None, None]
        if return_attention:
            out["attention"] = attention
        return out


def build_model(config: Any, dtype: torch.dtype) -> EformerModel:
    """``EformerModel(config)`` with every constant built directly in ``dtype``.

    Clebsch–Gordan and Wigner 3j buffers are made in the default dtype at
    construction; a model built in float32 and cast to float64 afterwards keeps
    their float32 rounding, and rotation invariance then holds only to ~1e-9
    relative instead of to float64 rounding.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = EformerModel(config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(dtype)
