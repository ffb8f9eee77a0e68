"""Ziegler–Biersack–Littmark screened nuclear repulsion as a pair baseline.

J. F. Ziegler, J. P. Biersack, U. Littmark, *The Stopping and Range of Ions in
Solids* (1985). The term is switched off smoothly between ``inner`` and
``outer`` times the sum of covalent radii, so it only acts at distances far
shorter than bonds and stops atoms from collapsing onto each other.
"""

from __future__ import annotations

import torch
from torch import nn

#: e^2 / (4 π ε0) in eV Å.
COULOMB_EV_A = 14.399645478425668
_ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
_ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)


class ZBLRepulsion(nn.Module):
    """Pair energies of the ZBL potential with a smooth switch-off.

    Parameters
    ----------
    atomic_numbers : list of int
        Z of each species index.
    covalent_radii : list of float
        Covalent radius of each species in Å.
    inner, outer : float
        Switch region as fractions of the covalent-radius sum.
    """

    z: torch.Tensor  # buffer, (n_species,) atomic numbers (float64)
    radii: torch.Tensor  # buffer, (n_species,) covalent radii in Å (float64)

    def __init__(
        self,
        atomic_numbers: list[int],
        covalent_radii: list[float],
        inner: float = 0.5,
        outer: float = 0.8,
    ) -> None:
        super().__init__()
        self.register_buffer("z", torch.tensor(atomic_numbers, dtype=torch.float64))
        self.register_buffer("radii", torch.tensor(covalent_radii, dtype=torch.float64))
        self.inner = float(inner)
        self.outer = float(outer)

    def forward(
        self, r: torch.Tensor, species_src: torch.Tensor, species_dst: torch.Tensor
    ) -> torch.Tensor:
        """Half the pair energy of each directed edge, in eV: (n_edges,)."""
        z_i = self.z[species_dst].to(r.dtype)
        z_j = self.z[species_src].to(r.dtype)
        a = 0.46850 / (z_i.pow(0.23) + z_j.pow(0.23))
        x = r / a
        phi = sum(c * torch.exp(-d * x) for c, d in zip(_ZBL_C, _ZBL_D, strict=True))
        energy = COULOMB_EV_A * z_i * z_j / r * phi
        rsum = (self.radii[species_src] + self.radii[species_dst]).to(r.dtype)
        r_in, r_out = self.inner * rsum, self.outer * rsum
        t = ((r - r_in) / (r_out - r_in)).clamp(0.0, 1.0)
        switch = 1.0 - t.pow(3) * (10.0 - 15.0 * t + 6.0 * t.pow(2))
        return 0.5 * energy * switch
