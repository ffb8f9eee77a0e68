"""Many-body features: channel-wise products of an atom's neighbour density.

Per centre atom i, channel k and spherical-harmonic component (l, m) the atomic
density (the "A basis" of Drautz's ACE, as used by MACE) is

    A_{i,k,lm} = (1/n̄) Σ_j R_{k,l}(r_ij) c_k(s_j) Y_lm(r̂_ij)

with R a radial MLP (times the smooth cutoff envelope), c_k a linear map of the
neighbour's invariant features and n̄ a fixed neighbour-count scale. One
neighbour sum carries two-body information only; the products

    B^(1) = A,   B^(ν)_{k,LM} = Σ_paths w_{i,k,path} Σ_{m1 m2} C^{LM}_{l1 m1 l2 m2}
                                 (U^(ν) B^(ν-1))_{k,l1 m1} A_{k,l2 m2}

(C a Wigner 3j symbol, U an equivariant channel mixing per degree, w a weight
per channel and path that depends on the centre atom's invariant features, so
on its element) carry body order ν + 1 — angles between pairs of neighbours at
ν = 2, four-body (dihedral-type) terms at ν = 3 — at a cost linear in the
number of neighbours. All orders are mixed into the layer's update.

Internally features are (n_atoms, channels, (l_max + 1)²): every channel holds
all degrees, components in e3nn's order, so each product is two matrix
products instead of one small operation per path.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from ._radial import RadialMLP


def _coupling(lmax: int) -> tuple[torch.Tensor, list[int]]:
    """Parity-allowed Wigner 3j couplings of (l1, l2) -> L, all l ≤ lmax.

    Returns C, shape ((lmax+1)⁴, Σ_paths (2L+1)) (the two input components
    flattened into rows, each path's 2L+1 outputs as columns), in float64, and
    the output degree L of every path.
    """
    n = (lmax + 1) ** 2
    columns, degrees = [], []
    for l1 in range(lmax + 1):
        for l2 in range(lmax + 1):
            for big_l in range(abs(l1 - l2), min(l1 + l2, lmax) + 1):
                if (l1 + l2 + big_l) % 2:
                    continue  # parity: (-1)^l1 (-1)^l2 must equal (-1)^L
                w3j = o3.wigner_3j(l1, l2, big_l, dtype=torch.float64)
                block = torch.zeros(n, n, 2 * big_l + 1, dtype=torch.float64)
                block[l1**2 : (l1 + 1) ** 2, l2**2 : (l2 + 1) ** 2] = w3j * math.sqrt(
                    2 * big_l + 1
                )
                columns.append(block.reshape(n * n, -1))
                degrees.append(big_l)
    return torch.cat(columns, dim=1), degrees


def neighbour_slots(edge_dst: torch.Tensor, n_atoms: int) -> tuple[torch.Tensor, int]:
    """Row of every edge in a zero-padded (n_atoms, width) neighbour layout.

    Returns ``slot`` (n_edges,), ``edge_dst * width + rank`` with rank the
    edge's position among the edges of its centre atom, and ``width``, the
    largest neighbour count.
    """
    counts = torch.bincount(edge_dst, minlength=n_atoms)
    order = torch.argsort(edge_dst, stable=True)
    dst_sorted = edge_dst[order]
    first = torch.cumsum(counts, 0) - counts
    width = int(counts.max())
    slot = torch.empty_like(order)
    slot[order] = dst_sorted * width + (
        torch.arange(len(order), device=edge_dst.device) - first[dst_sorted]
    )
    return slot, width


class DensityProduct(nn.Module):
    """Atomic density and its channel-wise products up to ``correlation``.

    Parameters
    ----------
    n_scalars : int
        Invariant features per atom (the first columns of the input); also the
        number of density channels.
    lmax : int
        Highest degree of the edge spherical harmonics (e3nn's
        ``Irreps.spherical_harmonics(lmax)`` layout, parity (-1)^l).
    irreps_target : o3.Irreps
        Irreps of the output (the layer's update).
    n_basis, radial_hidden : int
        Radial basis size and radial MLP width.
    correlation : int
        Highest product order ν ≥ 1 (body order ν + 1).
    avg_neighbours : float
        n̄, the fixed scale of the neighbour sum.
    """

    degree_of: torch.Tensor  # buffer, ((lmax+1)²,) degree l of every component
    coupling: torch.Tensor  # buffer, ((lmax+1)⁴, Σ_paths (2L+1))
    degree_spread: torch.Tensor  # buffer, (lmax+1, (lmax+1)²) 0/1
    path_spread: torch.Tensor  # buffer, (n_paths, Σ_paths (2L+1)) 0/1
    column_to_lm: torch.Tensor  # buffer, (Σ_paths (2L+1), (lmax+1)²) 0/1

    def __init__(
        self,
        n_scalars: int,
        lmax: int,
        irreps_target: o3.Irreps,
        n_basis: int,
        radial_hidden: int,
        correlation: int,
        avg_neighbours: float = 12.0,
    ) -> None:
        super().__init__()
        if correlation < 1:
            raise ValueError(f"correlation must be >= 1, got {correlation}")
        self.n_scalars = k = n_scalars
        self.lmax = lmax
        self.n_lm = (lmax + 1) ** 2
        self.scale = 1.0 / float(avg_neighbours)
        dtype = torch.get_default_dtype()
        degree_of = [deg for deg in range(lmax + 1) for _ in range(2 * deg + 1)]
        self.register_buffer("degree_of", torch.tensor(degree_of), persistent=False)
        # 0/1 matrices: degree_spread keeps the (degree, component) pairs of one
        # degree; path_spread copies a per-path number to every component (a
        # matrix product is cheaper than a gather, above all in the backward pass)
        spread = torch.zeros(lmax + 1, self.n_lm, dtype=dtype)
        spread[degree_of, torch.arange(self.n_lm)] = 1.0
        self.register_buffer("degree_spread", spread, persistent=False)
        self.channel_in = nn.Linear(n_scalars, k, bias=False)
        self.radial = RadialMLP(n_basis, radial_hidden, k * (lmax + 1))

        coupling, degrees = _coupling(lmax)
        # in the default dtype, like every constant: build_model makes float64
        # models with float64 defaults, so no float32 rounding is carried over
        self.register_buffer("coupling", coupling.to(dtype), persistent=False)
        path_of = [p for p, big_l in enumerate(degrees) for _ in range(2 * big_l + 1)]
        path_spread = torch.zeros(len(degrees), len(path_of), dtype=dtype)
        path_spread[path_of, torch.arange(len(path_of))] = 1.0
        self.register_buffer("path_spread", path_spread, persistent=False)
        to_lm = torch.zeros(len(path_of), self.n_lm, dtype=dtype)
        column = 0
        for big_l in degrees:
            for m in range(2 * big_l + 1):
                to_lm[column, big_l**2 + m] = 1.0
                column += 1
        self.register_buffer("column_to_lm", to_lm, persistent=False)
        n_paths = len(degrees)
        fan_in = [sum(1 for d in degrees if d == big_l) for big_l in degrees]
        init = torch.tensor(fan_in, dtype=dtype).rsqrt()
        self.path_weights = nn.ParameterList()
        self.path_gates = nn.ModuleList()
        self.mixers = nn.ParameterList()
        for _ in range(2, correlation + 1):
            self.path_weights.append(nn.Parameter(init.repeat(k, 1).clone()))
            gate = nn.Linear(n_scalars, k * n_paths, bias=False)
            nn.init.zeros_(gate.weight)
            self.path_gates.append(gate)
            eye = torch.eye(k, dtype=dtype).repeat(lmax + 1, 1, 1)
            self.mixers.append(nn.Parameter(eye))
        self.n_paths = n_paths
        irreps_a = o3.Irreps([(k, (deg, (-1) ** deg)) for deg in range(lmax + 1)])
        self.irreps_all = o3.Irreps(list(irreps_a) * correlation)
        self.linear_out = o3.Linear(self.irreps_all, o3.Irreps(irreps_target))

    def density(
        self,
        x: torch.Tensor,
        edge_src: torch.Tensor,
        edge_dst: torch.Tensor,
        edge_sh: torch.Tensor,
        basis: torch.Tensor,
        envelope: torch.Tensor,
    ) -> torch.Tensor:
        """A basis, (n_atoms, n_scalars, (lmax+1)²).

        The neighbour sum is one batched matrix product per centre atom over a
        zero-padded (n_atoms, max neighbours) layout: (k·(lmax+1), n_nb) radial
        numbers times (n_nb, (lmax+1)²) harmonics, then the blocks of matching
        degree are kept. No (n_edges, k, (lmax+1)²) tensor is formed. Measured
        (one thread, calls interleaved in one process): energy + forces of
        64-molecule water 23 % faster, a float32 training step 8 %, and no
        change for 22-atom alanine dipeptide.
        """
        n_atoms, n_edges = x.shape[0], edge_src.shape[0]
        k, n_l = self.n_scalars, self.lmax + 1
        radial = self.radial(basis, envelope).view(n_edges, k, n_l)
        radial = radial * self.channel_in(x[:, :k])[edge_src, :, None]
        if n_edges == 0:
            return radial.new_zeros(n_atoms, k, self.n_lm)
        slot, width = neighbour_slots(edge_dst, n_atoms)
        r_pad = radial.new_zeros(n_atoms * width, k * n_l).index_copy(
            0, slot, radial.view(n_edges, k * n_l)
        )
        y_pad = edge_sh.new_zeros(n_atoms * width, self.n_lm).index_copy(
            0, slot, edge_sh[:, : self.n_lm]
        )
        full = y_pad.view(n_atoms, width, self.n_lm).transpose(1, 2) @ r_pad.view(
            n_atoms, width, k * n_l
        )  # (n_atoms, (lmax+1)², k·(lmax+1)): every component times every degree
        mask = self.degree_spread.transpose(0, 1)[:, None, :]  # (n_lm, 1, lmax+1)
        a = (full.view(n_atoms, self.n_lm, k, n_l) * mask).sum(-1).transpose(1, 2)
        return a * self.scale

    def _product(
        self, b: torch.Tensor, a: torch.Tensor, order: int, s: torch.Tensor
    ) -> torch.Tensor:
        """One order up: (n, k, n_lm) x (n, k, n_lm) -> (n, k, n_lm)."""
        n, k = a.shape[0], self.n_scalars
        mixer = self.mixers[order][self.degree_of]  # (n_lm, k, k)
        b = torch.einsum("nkm,mkj->njm", b, mixer) / math.sqrt(k)
        outer = (b[:, :, :, None] * a[:, :, None, :]).reshape(n * k, -1)
        paths = (outer @ self.coupling).view(n, k, -1)  # (n, k, Σ(2L+1))
        weights = self.path_weights[order] + self.path_gates[order](s).view(
            n, k, self.n_paths
        )
        return (paths * (weights @ self.path_spread)) @ self.column_to_lm

    def forward(
        self,
        x: torch.Tensor,
        edge_src: torch.Tensor,
        edge_dst: torch.Tensor,
        edge_sh: torch.Tensor,
        basis: torch.Tensor,
        envelope: torch.Tensor,
    ) -> torch.Tensor:
        """Update from the density products.

        Parameters
        ----------
        x : Tensor, shape (n_atoms, ≥ n_scalars)
            Node features, invariant ones first.
        edge_src, edge_dst : Tensor, shape (n_edges,)
        edge_sh : Tensor, shape (n_edges, ≥ (lmax+1)²)
            Spherical harmonics of the edges, e3nn layout.
        basis : Tensor, shape (n_edges, n_basis)
        envelope : Tensor, shape (n_edges,)

        Returns
        -------
        Tensor, shape (n_atoms, irreps_target.dim)
        """
        s = x[:, : self.n_scalars]
        a = self.density(x, edge_src, edge_dst, edge_sh, basis, envelope)
        orders, b = [a], a
        for order in range(len(self.mixers)):
            b = self._product(b, a, order, s)
            orders.append(b)
        n = a.shape[0]
        blocks = [  # e3nn layout: per order, per degree, channel-major
            o[:, :, deg**2 : (deg + 1) ** 2].reshape(n, -1)
            for o in orders
            for deg in range(self.lmax + 1)
        ]
        return self.linear_out(torch.cat(blocks, dim=1))
