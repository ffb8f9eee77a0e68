"""Equivariant layer normalisation for e3nn irreps features."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

#: Accepted values of ``mode`` (and of :attr:`asecalc.config.ModelConfig.layer_norm`).
NORM_MODES = ("per-irrep", "joint")


class EquivariantLayerNorm(nn.Module):
    """Layer norm that keeps equivariance.

    Scalars (0e) are centred; l > 0 blocks are not (centring would break
    equivariance). Each block is then divided by a root mean square and
    scaled per channel (plus a bias for the 0e scalars):

    * ``"joint"``: one RMS over the whole feature vector (centred scalars and
      every l > 0 component). The map is smooth everywhere: an l > 0 block that
      vanishes by symmetry (every atom of a cubic crystal, the carbon of CH4)
      stays small and linear in a displacement.
    * ``"per-irrep"``: each block by its own RMS. This is the architecture of
      model files written before ``"joint"`` existed. It is **not smooth**
      where a block vanishes: the block is rescaled to unit size, so only its
      direction is kept, which is ill-defined at zero. Near such
      configurations forces jump and finite-difference force constants
      (phonons, Hessians) are meaningless.

    Parameters
    ----------
    irreps : e3nn.o3.Irreps
        Irreps of the features, ``(n_atoms, irreps.dim)``.
    eps : float
        Added to the mean squares.
    mode : str
        ``"joint"`` or ``"per-irrep"`` (see above).
    """

    def __init__(
        self, irreps: o3.Irreps, eps: float = 1e-5, mode: str = "per-irrep"
    ) -> None:
        super().__init__()
        if mode not in NORM_MODES:
            raise ValueError(
                f"layer norm mode must be one of {NORM_MODES}, got {mode!r}"
            )
        self.irreps = o3.Irreps(irreps)
        self.eps = eps
        self.mode = mode
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
        blocks = []
        start = 0
        for mul, ir in self.irreps:
            block = x[:, start : start + mul * ir.dim].reshape(-1, mul, ir.dim)
            start += mul * ir.dim
            if ir.l == 0 and ir.p == 1:
                block = block - block.mean(dim=1, keepdim=True)
            blocks.append(block)
        if self.mode == "joint":
            square = sum(b.pow(2).sum(dim=(1, 2)) for b in blocks)
            rms = torch.sqrt(square / self.irreps.dim + self.eps)[:, None, None]
        out = []
        for (mul, ir), block, w, b in zip(
            self.irreps, blocks, self.weights, self.biases, strict=True
        ):
            if self.mode == "per-irrep":
                rms = torch.sqrt(block.pow(2).mean(dim=(1, 2), keepdim=True) + self.eps)
            block = block / rms * w[:, None]
            if ir.l == 0 and ir.p == 1:
                block = block + b[:, None]
            out.append(block.reshape(-1, mul * ir.dim))
        return torch.cat(out, dim=1)
