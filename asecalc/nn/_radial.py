"""Radial basis, smooth cutoff envelope and the radial MLP.

The Bessel basis and the polynomial envelope follow Klicpera, Groß and
Günnemann, "Directional message passing for molecular graphs", ICLR 2020
(arXiv:2003.03123), as used by NequIP and MACE.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PolynomialEnvelope(nn.Module):
    """Smooth cutoff u(r): 1 at r=0, 0 with ``p`` vanishing derivatives at r_max.

    ``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)``, x = r/r_max,
    and exactly 0 for r >= r_max.
    """

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = int(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """r: (n_edges,) distances in Å -> (n_edges,) envelope values."""
        p = self.p
        x = r / self.cutoff
        value = (
            1.0
            - 0.5 * (p + 1) * (p + 2) * x.pow(p)
            + p * (p + 2) * x.pow(p + 1)
            - 0.5 * p * (p + 1) * x.pow(p + 2)
        )
        return torch.where(x < 1.0, value, torch.zeros_like(value))


class BesselBasis(nn.Module):
    """``sqrt(2/r_max) sin(n π r / r_max) / r``, n = 1..n_basis (fixed frequencies)."""

    frequencies: torch.Tensor  # buffer, (n_basis,) n π / r_max in 1/Å

    def __init__(self, cutoff: float, n_basis: int = 8) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        freqs = torch.arange(1, n_basis + 1, dtype=torch.get_default_dtype()) * math.pi
        self.register_buffer("frequencies", freqs / self.cutoff)
        self.prefactor = math.sqrt(2.0 / self.cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """r: (n_edges,) in Å -> (n_edges, n_basis)."""
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies * r) / r


class RadialMLP(nn.Module):
    """MLP from the radial basis to tensor-product weights, times the envelope.

    The output is multiplied by the envelope so every weight, and hence every
    message, goes to zero smoothly at the cutoff.
    """

    def __init__(self, n_basis: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_basis, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, n_out),
        )

    def forward(self, basis: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
        """basis: (n_edges, n_basis), envelope: (n_edges,) -> (n_edges, n_out)."""
        return self.net(basis) * envelope.unsqueeze(-1)
