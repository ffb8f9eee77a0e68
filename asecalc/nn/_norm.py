"""Equivariant layer normalisation for e3nn irreps features."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


class EquivariantLayerNorm(nn.Module):
    """Layer norm that keeps equivariance.

    Scalars (0e) are centred and scaled as in a standard layer norm. Each
    block of l > 0 irreps is divided by the root mean square of its channel
    norms (no centring, which would break equivariance) and scaled per channel.

    Parameters
    ----------
    irreps : e3nn.o3.Irreps
        Irreps of the features, ``(n_atoms, irreps.dim)``.
    eps : float
        Added to variances.
    """

    def __init__(self, irreps: o3.Irreps, eps: float = 1e-5) -> None:
        super().__init__()
        self.irreps = o3.Irreps(irreps)
        self.eps = eps
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.ones(mul)) for mul, _ in self.irreps]
        )
        self.biases = nn.ParameterList(
            [
                nn.Parameter(torch.zeros(mul if ir.l == 0 and ir.p == 1 else 0))
                for mul, ir in self.irreps
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n_atoms, irreps.dim) -> same shape."""
        out = []
        start = 0
        for (mul, ir), w, b in zip(self.irreps, self.weights, self.biases, strict=True):
            block = x[:, start : start + mul * ir.dim].reshape(-1, mul, ir.dim)
            start += mul * ir.dim
            if ir.l == 0 and ir.p == 1:
                block = block - block.mean(dim=1, keepdim=True)
                var = block.pow(2).mean(dim=(1, 2), keepdim=True)
                block = block / torch.sqrt(var + self.eps) * w[:, None] + b[:, None]
            else:
                var = block.pow(2).mean(dim=(1, 2), keepdim=True)
                block = block / torch.sqrt(var + self.eps) * w[:, None]
            out.append(block.reshape(-1, mul * ir.dim))
        return torch.cat(out, dim=1)
