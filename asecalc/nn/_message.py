"""Fused equivariant convolution + linear mixing (exact, fewer per-edge numbers).

:class:`~._attention.EquivariantAttention` computes, per layer,

    lin(Σ_j TP(x_j, Y(r̂_ij), w_ij))

with ``TP`` an e3nn 'uvu' tensor product and ``lin`` an e3nn ``Linear``. Both are
linear in the channel index, so for l > 0 outputs the channel mixing of ``lin``
is applied per edge *before* the outer product with Y (a (mul_in, mul_out)
matrix on (n_edges, mul_in) numbers), and for 0e outputs it is applied on the
nodes *after* the neighbour sum. No (n_edges, irreps_msg.dim) tensor is built:
for the S preset 64 instead of 184 numbers per edge are formed and summed.
The result equals the e3nn composition to rounding (same parameters, same
state dict).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from e3nn import o3


def irreps_slices(irreps: o3.Irreps) -> list[slice]:
    """Column slice of every (mul, ir) block of ``irreps``."""
    out, start = [], 0
    for mul, ir in irreps:
        out.append(slice(start, start + mul * ir.dim))
        start += mul * ir.dim
    return out


def linear_channel_blocks(
    linear: o3.Linear, irreps_in: o3.Irreps, irreps_out: o3.Irreps
) -> dict[tuple[int, int], torch.Tensor]:
    """Channel matrices of an e3nn Linear: ``{(i_in, i_out): (mul_in, mul_out)}``.

    Read from ``linear(identity)``, so they carry e3nn's normalisation and are
    differentiable in the Linear's weights.
    """
    eye = torch.eye(
        irreps_in.dim, dtype=linear.weight.dtype, device=linear.weight.device
    )
    matrix = linear(eye)  # (irreps_in.dim, irreps_out.dim)
    s_in, s_out = irreps_slices(irreps_in), irreps_slices(irreps_out)
    blocks = {}
    for i, (mul_in, ir_in) in enumerate(irreps_in):
        for j, (mul_out, ir_out) in enumerate(irreps_out):
            if ir_in == ir_out:
                block = matrix[s_in[i], s_out[j]].reshape(
                    mul_in, ir_in.dim, mul_out, ir_out.dim
                )
                blocks[(i, j)] = block[:, 0, :, 0]
    return blocks


def _vector_path(ins, ir1, ir2, ir_out, x1, w, y, mix, w3j) -> torch.Tensor:
    """mix-contracted 'uvu' path with l_out > 0: (n_edges, mul_out, ir_out.dim)."""
    pw = ins.path_weight
    if ir1.l == 0:
        c = (w * x1[:, :, 0]) @ mix  # (n_edges, mul_out)
        return c[:, :, None] * (y * (pw / math.sqrt(ir_out.dim)))[:, None, :]
    t = ((x1 * w[:, :, None]).transpose(1, 2) @ mix).transpose(
        1, 2
    )  # (n_edges, mul_out, d1)
    if ir2.l == 0:
        return t * (y * (pw / math.sqrt(ir_out.dim)))[:, :, None]
    n_edges = y.shape[0]
    z = (y @ (w3j * pw).transpose(0, 1).reshape(ir2.dim, -1)).view(
        n_edges, ir1.dim, ir_out.dim
    )
    return sum(t[:, :, i, None] * z[:, None, i, :] for i in range(ir1.dim))


def convolve_and_mix(
    tp: o3.TensorProduct,
    linear: o3.Linear,
    irreps_target: o3.Irreps,
    x: torch.Tensor,
    edge_src: torch.Tensor,
    edge_dst: torch.Tensor,
    edge_sh: torch.Tensor,
    weights: torch.Tensor,
    w3j: dict[int, torch.Tensor],
) -> torch.Tensor:
    """``linear(Σ_j tp(x_j, Y_ij, weights_ij))``.

    Parameters
    ----------
    tp : o3.TensorProduct
        'uvu' product irreps_hidden ⊗ irreps_sh -> irreps_msg (per-edge weights).
    linear : o3.Linear
        irreps_msg -> irreps_target (no biases).
    x : Tensor, shape (n_atoms, irreps_hidden.dim)
    edge_src, edge_dst : Tensor, shape (n_edges,)
    edge_sh : Tensor, shape (n_edges, irreps_sh.dim)
    weights : Tensor, shape (n_edges, tp.weight_numel)
        Per-edge path weights (the attention layer has already multiplied
        channel u of every path by α_ij of its head).
    w3j : dict
        Instruction index -> Wigner 3j (d1, d2, d_out), for paths with all l > 0.

    Returns
    -------
    Tensor, shape (n_atoms, irreps_target.dim)
    """
    n_atoms, n_edges = x.shape[0], edge_src.shape[0]
    irreps_in, irreps_sh, irreps_msg = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
    mix = linear_channel_blocks(linear, irreps_msg, irreps_target)
    xs = [  # (n_edges, mul, d) per input block
        x[:, s].reshape(n_atoms, mul, ir.dim)[edge_src]
        for s, (mul, ir) in zip(irreps_slices(irreps_in), irreps_in, strict=True)
    ]
    ys = [edge_sh[:, s] for s in irreps_slices(irreps_sh)]
    ws = weights.split([irreps_in[ins.i_in1].mul for ins in tp.instructions], dim=1)
    scalars, scalar_rows = [], []
    vector_targets = [j for j, (_, ir) in enumerate(irreps_target) if ir.l > 0]
    vectors: dict[int, list[torch.Tensor]] = {j: [] for j in vector_targets}
    for index, (ins, w) in enumerate(zip(tp.instructions, ws, strict=True)):
        ir1 = irreps_in[ins.i_in1].ir
        ir2, ir_out = irreps_sh[ins.i_in2].ir, irreps_msg[ins.i_out].ir
        x1, y = xs[ins.i_in1], ys[ins.i_in2]
        if ir_out.l == 0:  # 0e messages are mixed on the nodes after the sum
            if ir1.l == 0:
                msg = w * x1[:, :, 0] * (y * ins.path_weight)
            else:
                msg = (
                    w
                    * (x1 * y[:, None, :]).sum(-1)
                    * (ins.path_weight / math.sqrt(ir1.dim))
                )
            scalars.append(msg)
            scalar_rows.append(ins.i_out)
            continue
        for j in vector_targets:
            if (ins.i_out, j) in mix:
                vectors[j].append(
                    _vector_path(
                        ins,
                        ir1,
                        ir2,
                        ir_out,
                        x1,
                        w,
                        y,
                        mix[(ins.i_out, j)],
                        w3j.get(index),
                    )
                )
    per_edge = [*scalars] + [
        cast(torch.Tensor, sum(v)).reshape(n_edges, irreps_target[j].dim)
        for j, v in vectors.items()
        if v
    ]
    per_edge_cat = torch.cat(per_edge, dim=1)  # (n_edges, n_0e + Σ mul_out·d)
    agg = per_edge_cat.new_zeros(n_atoms, per_edge_cat.shape[1]).index_add(
        0, edge_dst, per_edge_cat
    )
    chunks = agg.split([p.shape[1] for p in per_edge], dim=1)
    out, vector_chunks = [], iter(chunks[len(scalars) :])
    for j, (mul_out, ir) in enumerate(irreps_target):
        if ir.l == 0:
            parts = [
                c @ mix[(r, j)]
                for r, c in zip(scalar_rows, chunks, strict=False)
                if (r, j) in mix
            ]
            out.append(sum(parts) if parts else agg.new_zeros(n_atoms, mul_out))
        elif vectors[j]:
            out.append(next(vector_chunks))
        else:
            out.append(agg.new_zeros(n_atoms, mul_out * ir.dim))
    return torch.cat(out, dim=1)
