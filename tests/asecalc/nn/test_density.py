"""Many-body products of the neighbour density (MACE-style body order > 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from e3nn import o3
from scipy.spatial.transform import Rotation

from asecalc.config import ModelConfig, preset_config
from asecalc.nn._density import DensityProduct


def _density_out(module, atoms, rot=None):
    pos = atoms.positions if rot is None else atoms.positions @ rot.T
    pos = torch.tensor(pos)
    n = len(atoms)
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = src != dst
    src, dst = src[keep], dst[keep]
    vec = pos[src] - pos[dst]
    r = vec.norm(dim=1)
    sh = o3.spherical_harmonics(list(range(module.lmax + 1)), vec, normalize=True)
    basis = torch.stack([torch.sin(k * r) / r for k in range(1, 5)], dim=1)
    x = torch.ones(n, module.n_scalars)
    return module(x, src, dst, sh, basis, torch.ones_like(r))


def test_density_products_are_equivariant():
    torch.manual_seed(0)
    irreps_out = o3.Irreps("4x0e + 3x1o + 2x2e")
    module = DensityProduct(6, 2, irreps_out, 4, 8, 3)
    atoms = molecule("CH3CH2OH")
    rot = Rotation.random(random_state=1).as_matrix()
    out0 = _density_out(module, atoms)
    out1 = _density_out(module, atoms, rot)
    d = irreps_out.D_from_matrix(torch.tensor(rot))
    torch.testing.assert_close(out1, out0 @ d.T, atol=1e-10, rtol=1e-8)
    # parity: a mirror image maps 1o vectors to minus themselves
    mirrored = _density_out(module, atoms, -np.eye(3))
    d_inv = irreps_out.D_from_matrix(-torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(mirrored, out0 @ d_inv.T, atol=1e-10, rtol=1e-8)


def test_products_see_angles_at_fixed_distances():
    """Bending two neighbours out of plane, all centre distances fixed, changes
    the invariant output: the density products carry angular information."""
    torch.manual_seed(2)
    module = DensityProduct(4, 2, o3.Irreps("3x0e"), 4, 8, 3)
    flat = Atoms("CH4", [[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]])
    bent = flat.copy()
    bent.positions[3] = [0, np.cos(0.4), np.sin(0.4)]
    bent.positions[4] = [0, -np.cos(0.4), np.sin(0.4)]
    assert not torch.allclose(
        _density_out(module, flat)[0], _density_out(module, bent)[0]
    )


def test_products_on_in_presets_off_for_legacy_files():
    """The preset model's rotation invariance (products included) is checked in
    test_bilinear.py; here the switch itself."""
    assert preset_config("S", elements=("H", "C", "O")).correlation == 3
    assert ModelConfig.from_dict({"elements": ["H", "C", "O"]}).correlation == 0
    with pytest.raises(ValueError, match="correlation"):
        ModelConfig(correlation=-1)
