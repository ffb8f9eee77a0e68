"""Equivariant graph attention: the core layer of the SE(3)-Eformer.

For a centre atom i and its neighbours j within the cutoff, per head h,

    logit_ij = (q_i · k_j + σ(W_v [v_i ⊗ v_j]_0e)) / √d + b(r_ij)
    α_ij = u(r_ij) exp(logit_ij) / (1 + Σ_k u(r_ik) exp(logit_ik))

with q, k linear maps of the invariant (0e) features, ``[v_i ⊗ v_j]_0e`` the
scalar part of the tensor product of the two atoms' vector features (their
per-channel dot products), b a learned function of the radial basis and u the
smooth cutoff envelope. The design's ``W_s s_i`` term is realised as the
query–key product (a term of s_i alone cancels in a softmax over j). The
envelope inside the normalisation and the constant 1 (an "attend to nothing"
slot) make α_ij continuous as a neighbour crosses the cutoff, so the energy
stays smooth. Values are e3nn tensor products of neighbour features with the
spherical harmonics Y(r̂_ij), weighted by a radial MLP.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from ._density import DensityProduct
from ._gate import Gate
from ._message import convolve_and_mix
from ._norm import EquivariantLayerNorm
from ._radial import RadialMLP


def _tp_instructions(
    irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps
) -> tuple[o3.Irreps, list[tuple[int, int, int, str, bool]]]:
    """'uvu' paths of irreps_in ⊗ irreps_sh that land in irreps_target's types."""
    targets = {ir for _, ir in irreps_target}
    out: list[tuple[int, o3.Irrep]] = []
    instructions: list[tuple[int, int, int, str, bool]] = []
    for i_in, (mul, ir_in) in enumerate(irreps_in):
        for i_sh, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in targets:
                    instructions.append((i_in, i_sh, len(out), "uvu", True))
                    out.append((mul, ir_out))
    return o3.Irreps(out), instructions


def _weight_head_index(tp: o3.TensorProduct, n_heads: int) -> torch.Tensor:
    """Head of every 'uvu' path weight: channel u goes to head u % H.

    Output channel u of a 'uvu' path is linear in that path's weight u, so
    scaling the weights by α_ij of head(u) scales the messages exactly.
    """
    index: list[int] = []
    for ins in tp.instructions:
        index.extend(u % n_heads for u in range(tp.irreps_in1[ins.i_in1].mul))
    return torch.tensor(index, dtype=torch.long)


class EquivariantAttention(nn.Module):
    """One transformer block: equivariant attention + gated feed-forward.

    Parameters
    ----------
    irreps_hidden : o3.Irreps
        Node feature irreps, scalars first (e.g. ``32x0e + 8x1o``).
    irreps_sh : o3.Irreps
        Edge spherical-harmonics irreps.
    n_basis, radial_hidden : int
        Radial basis size and radial MLP width.
    n_heads : int
        Attention heads.
    bilinear : bool
        Add :class:`BilinearInvariants` of the atom's own features to the
        feed-forward scalars.
    correlation : int
        If > 0, add :class:`~._density.DensityProduct` updates (many-body
        products of the neighbour density up to this order) to the messages.
    """

    head_index: torch.Tensor  # buffer, (tp.weight_numel,) head of every path weight
    residual_scale: torch.Tensor  # buffer, (): 1, or < 1 while fading in after growth

    def __init__(
        self,
        irreps_hidden: o3.Irreps,
        irreps_sh: o3.Irreps,
        n_basis: int,
        radial_hidden: int,
        n_heads: int,
        bilinear: bool = False,
        correlation: int = 0,
        layer_norm: str = "per-irrep",
    ) -> None:
        super().__init__()
        self.irreps_hidden = o3.Irreps(irreps_hidden)
        self.n_heads = n_heads
        self.n_scalars = self.irreps_hidden[0].mul
        vec = [mul for mul, ir in self.irreps_hidden if ir.l == 1]
        self.n_vectors = vec[0] if vec else 0
        self.d_head = max(self.n_scalars // n_heads, 1)

        self.norm_attn = EquivariantLayerNorm(self.irreps_hidden, mode=layer_norm)
        self.query = nn.Linear(self.n_scalars, n_heads * self.d_head, bias=False)
        self.key = nn.Linear(self.n_scalars, n_heads * self.d_head, bias=False)
        self.radial_bias = nn.Linear(n_basis, n_heads)
        self.vector_logit = nn.Linear(max(self.n_vectors, 1), n_heads)

        irreps_msg, instructions = _tp_instructions(
            self.irreps_hidden, o3.Irreps(irreps_sh), self.irreps_hidden
        )
        self.tp = o3.TensorProduct(
            self.irreps_hidden,
            irreps_sh,
            irreps_msg,
            instructions,
            shared_weights=False,
            internal_weights=False,
        )
        self.radial = RadialMLP(n_basis, radial_hidden, self.tp.weight_numel)
        self.register_buffer("head_index", _weight_head_index(self.tp, n_heads))
        # Wigner 3j of paths with all l > 0 (float64 at build; follow .to(dtype))
        self.w3j_paths: list[int] = []
        for index, ins in enumerate(self.tp.instructions):
            ls = (
                self.tp.irreps_in1[ins.i_in1].ir.l,
                self.tp.irreps_in2[ins.i_in2].ir.l,
                self.tp.irreps_out[ins.i_out].ir.l,
            )
            if min(ls) > 0:
                w3j = o3.wigner_3j(*ls, dtype=torch.float64)
                w3j = w3j.to(torch.get_default_dtype())
                self.register_buffer(f"w3j_{index}", w3j, persistent=False)
                self.w3j_paths.append(index)
        self.gate_attn, self.lin_attn = self._gated_linear(irreps_msg)
        self.density = (
            DensityProduct(
                self.n_scalars,
                o3.Irreps(irreps_sh).lmax,
                self.gate_attn.irreps_in,
                n_basis,
                radial_hidden,
                correlation,
            )
            if correlation
            else None
        )

        self.norm_ff = EquivariantLayerNorm(self.irreps_hidden, mode=layer_norm)
        self.gate_ff, self.lin_ff_in = self._gated_linear(self.irreps_hidden)
        self.lin_ff_out = o3.Linear(self.irreps_hidden, self.irreps_hidden)
        n_gate_scalars = self.gate_ff.n_scalars + self.gate_ff.n_gates
        self.bilinear = (
            BilinearInvariants(self.irreps_hidden, n_gate_scalars) if bilinear else None
        )
        # Fade-in of a block added by depth growth (training.growth.grow_depth):
        # the block maps h to h + s (block(h) - h); s = 1 except while it fades in.
        self.register_buffer("residual_scale", torch.ones(()))

    def _load_from_state_dict(  # type: ignore[no-untyped-def]
        self, state_dict, prefix, *args, **kwargs
    ) -> None:
        # model files written before the fade-in existed have no residual_scale
        state_dict.setdefault(prefix + "residual_scale", torch.ones(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def fade_in(self, increment: float) -> None:
        """Raise ``residual_scale`` by ``increment``, capped at 1 (a training step)."""
        if float(self.residual_scale) < 1.0:
            self.residual_scale.add_(increment).clamp_(max=1.0)

    def _gated_linear(self, irreps_in: o3.Irreps) -> tuple[Gate, o3.Linear]:
        scalars = o3.Irreps([(m, ir) for m, ir in self.irreps_hidden if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in self.irreps_hidden if ir.l > 0])
        gate = Gate(scalars, gated)
        return gate, o3.Linear(irreps_in, gate.irreps_in)

    def attention_weights(
        self,
        h: torch.Tensor,
        edge_src: torch.Tensor,
        edge_dst: torch.Tensor,
        basis: torch.Tensor,
        envelope: torch.Tensor,
    ) -> torch.Tensor:
        """Attention weights α_ij (n_edges, n_heads) of normalised features h."""
        n_atoms = h.shape[0]
        s = h[:, : self.n_scalars]
        q = self.query(s).view(n_atoms, self.n_heads, self.d_head)
        k = self.key(s).view(n_atoms, self.n_heads, self.d_head)
        qk = (q[edge_dst] * k[edge_src]).sum(-1)  # (n_edges, n_heads)
        if self.n_vectors:
            v = h[:, self.n_scalars : self.n_scalars + 3 * self.n_vectors]
            # component-major (n_atoms, 3, n_vectors): the sum over x, y, z adds
            # three contiguous rows instead of reducing a trailing axis of 3
            v = v.view(n_atoms, self.n_vectors, 3).transpose(1, 2).contiguous()
            dots = (v[edge_dst] * v[edge_src]).sum(1)  # (n_edges, n_vectors)
            qk = qk + nn.functional.silu(self.vector_logit(dots))
        logits = qk / math.sqrt(self.d_head) + self.radial_bias(basis)
        # shift by m_i = max(0, max_j logit_ij) for stability; it cancels exactly
        shift = torch.zeros(n_atoms, self.n_heads, dtype=logits.dtype, device=h.device)
        shift = shift.scatter_reduce(
            0, edge_dst[:, None].expand_as(logits), logits.detach(), "amax"
        )
        weights = envelope[:, None] * torch.exp(logits - shift[edge_dst])
        denom = torch.exp(-shift).index_add(0, edge_dst, weights)  # (n_atoms, n_heads)
        return weights / denom[edge_dst]

    def forward(
        self,
        h: torch.Tensor,
        edge_src: torch.Tensor,
        edge_dst: torch.Tensor,
        edge_sh: torch.Tensor,
        basis: torch.Tensor,
        envelope: torch.Tensor,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Update node features.

        Parameters
        ----------
        h : Tensor, shape (n_atoms, irreps_hidden.dim)
        edge_src, edge_dst : Tensor, shape (n_edges,)
        edge_sh : Tensor, shape (n_edges, irreps_sh.dim)
        basis : Tensor, shape (n_edges, n_basis)
        envelope : Tensor, shape (n_edges,)

        Returns
        -------
        h : Tensor, shape (n_atoms, irreps_hidden.dim)
        alpha : Tensor, shape (n_edges, n_heads), or None
        """
        h_in = h
        x = self.norm_attn(h)
        alpha = self.attention_weights(x, edge_src, edge_dst, basis, envelope)
        # radial weights times α_ij u(r_ij) of the channel's head, fused into
        # lin_attn(Σ_j tp(x_j, Y_ij, w_ij)) (see ._message; same maths as
        # self.tp + index_add + self.lin_attn, fewer per-edge numbers)
        heads = nn.functional.one_hot(self.head_index, self.n_heads).to(alpha.dtype)
        head_scale = (alpha * envelope[:, None]) @ heads.T  # (n_edges, weight_numel)
        weights = self.radial.net(basis) * head_scale
        w3j = {i: getattr(self, f"w3j_{i}") for i in self.w3j_paths}
        mixed = convolve_and_mix(
            self.tp,
            self.lin_attn,
            self.gate_attn.irreps_in,
            x,
            edge_src,
            edge_dst,
            edge_sh,
            weights,
            w3j,
        )  # (n_atoms, gate_attn.irreps_in.dim)
        if self.density is not None:
            mixed = mixed + self.density(
                x, edge_src, edge_dst, edge_sh, basis, envelope
            )
        h = h + self.gate_attn(mixed)
        x = self.norm_ff(h)
        pre = self.lin_ff_in(x)
        if self.bilinear is not None:
            n0 = self.bilinear.n_out
            pre = torch.cat([pre[:, :n0] + self.bilinear(x), pre[:, n0:]], dim=1)
        h = h + self.lin_ff_out(self.gate_ff(pre))
        if float(self.residual_scale) != 1.0:  # fading in after growth
            h = h_in + self.residual_scale * (h - h_in)
        return h, (alpha if return_attention else None)


class BilinearInvariants(nn.Module):
    """Invariants <U x_l, V x_l> of each l > 0 block, mixed into ``n_out`` scalars.

    For every block of ``mul`` copies of an irrep of degree l > 0, two learned
    channel mixings U and V (equivariant: they act on channels, not components)
    give ``mul`` dot products (U x)_k · (V x)_k, which are invariant (0e for
    1o·1o and 2e·2e). These carry the angles between an atom's own neighbour
    directions (three-body terms, as in PaiNN's scalar update), which a
    message from one neighbour at a time cannot. Output (n_atoms, n_out).
    """

    def __init__(self, irreps: o3.Irreps, n_out: int) -> None:
        super().__init__()
        self.n_out = n_out
        self.blocks: list[tuple[int, int, int]] = []  # (start, mul, dim)
        start = 0
        mixes_u, mixes_v = [], []
        for mul, ir in o3.Irreps(irreps):
            if ir.l > 0 and mul > 0:
                self.blocks.append((start, mul, ir.dim))
                mixes_u.append(nn.Parameter(torch.randn(mul, mul) / math.sqrt(mul)))
                mixes_v.append(nn.Parameter(torch.randn(mul, mul) / math.sqrt(mul)))
            start += mul * ir.dim
        self.mix_u = nn.ParameterList(mixes_u)
        self.mix_v = nn.ParameterList(mixes_v)
        n_inv = sum(mul for _, mul, _ in self.blocks)
        self.linear = nn.Linear(max(n_inv, 1), n_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n_atoms, irreps.dim) -> (n_atoms, n_out)."""
        if not self.blocks:
            return x.new_zeros(x.shape[0], self.n_out)
        parts = []
        mixes = zip(self.blocks, self.mix_u, self.mix_v, strict=True)
        for (start, mul, dim), wu, wv in mixes:
            block = x[:, start : start + mul * dim].view(-1, mul, dim)
            u = torch.einsum("ncd,ck->nkd", block, wu)
            v = torch.einsum("ncd,ck->nkd", block, wv)
            parts.append((u * v).sum(-1))
        return self.linear(torch.cat(parts, dim=1))
