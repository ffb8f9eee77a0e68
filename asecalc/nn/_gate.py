"""Gated nonlinearity (Weiler et al. 2018, as in e3nn.nn.Gate), built without sampling.

e3nn's ``Gate`` normalises its activations by second moments estimated from
10⁶ Gaussian samples at construction, which dominates model load time. The
constants are deterministic (e3nn seeds the sampler with 0), so they are
stored here; outputs equal ``e3nn.nn.Gate(...)`` to machine precision (tested).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

#: 1/sqrt(E[f(z)^2]), z ~ N(0, 1), as computed by e3nn.math.normalize2mom.
SILU_NORM = 1.6791767923989418
SIGMOID_NORM = 1.8467055342154763


class Gate(nn.Module):
    """``[silu(s)·c₁, sigmoid(g_k)·c₂ · x_k]`` for scalars s, gates g, gated irreps x.

    Parameters
    ----------
    irreps_scalars : o3.Irreps
        Even scalars passed through SiLU.
    irreps_gated : o3.Irreps
        Irreps multiplied channel-wise by sigmoid gates (one 0e gate each).

    Input layout is ``irreps_scalars + gates + irreps_gated`` (``irreps_in``);
    output is ``irreps_scalars + irreps_gated`` (``irreps_out``).
    """

    gate_index: torch.Tensor  # buffer, (n_gated_dim,) gate of each gated component

    def __init__(self, irreps_scalars: o3.Irreps, irreps_gated: o3.Irreps) -> None:
        super().__init__()
        self.irreps_scalars = o3.Irreps(irreps_scalars)
        self.irreps_gated = o3.Irreps(irreps_gated)
        n_gates = self.irreps_gated.num_irreps
        self.irreps_gates = o3.Irreps(f"{n_gates}x0e") if n_gates else o3.Irreps("")
        self.irreps_in = (
            self.irreps_scalars + self.irreps_gates + self.irreps_gated
        ).simplify()
        self.irreps_out = self.irreps_scalars + self.irreps_gated
        self.n_scalars = self.irreps_scalars.dim
        self.n_gates = n_gates
        repeat = [ir.dim for mul, ir in self.irreps_gated for _ in range(mul)]
        self.register_buffer(
            "gate_index",
            torch.repeat_interleave(
                torch.arange(n_gates), torch.tensor(repeat, dtype=torch.long)
            )
            if n_gates
            else torch.zeros(0, dtype=torch.long),
            persistent=False,
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        # files written with e3nn.nn.Gate carry its weightless product's buffers
        for key in ("mul.weight", "mul.output_mask"):
            state_dict.pop(prefix + key, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n, irreps_in.dim) -> (n, irreps_out.dim)."""
        scalars = nn.functional.silu(x[:, : self.n_scalars]) * SILU_NORM
        if not self.n_gates:
            return scalars
        gates = (
            torch.sigmoid(x[:, self.n_scalars : self.n_scalars + self.n_gates])
            * SIGMOID_NORM
        )
        gated = x[:, self.n_scalars + self.n_gates :] * gates[:, self.gate_index]
        return torch.cat([scalars, gated], dim=1)
