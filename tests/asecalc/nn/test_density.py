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


def test_padded_neighbour_sum_equals_the_edge_sum():
    """The batched (padded) density equals Σ_j R_kl(r_ij) c_k(s_j) Y_lm(r̂_ij) / n̄,
    with edges in any order and an atom without neighbours (its row is zero)."""
    torch.manual_seed(0)
    module = DensityProduct(4, 2, o3.Irreps("4x0e + 2x1o"), 4, 8, 2).double()
    n, gen = 6, torch.Generator().manual_seed(1)
    src = torch.tensor([0, 1, 2, 3, 4, 0, 2, 4, 1, 3, 0])  # atom 5: no neighbours
    dst = torch.tensor([1, 0, 0, 0, 2, 3, 1, 1, 4, 4, 2])
    vec = torch.randn(len(src), 3, generator=gen, dtype=torch.float64)
    sh = o3.spherical_harmonics([0, 1, 2], vec, normalize=True)
    basis = torch.rand(len(src), 4, generator=gen, dtype=torch.float64)
    envelope = torch.rand(len(src), generator=gen, dtype=torch.float64)
    x = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    radial = module.radial(basis, envelope).view(len(src), 4, 3)
    radial = radial * module.channel_in(x)[src, :, None]
    per_edge = radial[:, :, module.degree_of] * sh[:, None, :]
    expected = torch.zeros(n, 4, 9, dtype=torch.float64).index_add(0, dst, per_edge)
    for perm in (torch.arange(len(src)), torch.randperm(len(src), generator=gen)):
        got = module.density(
            x, src[perm], dst[perm], sh[perm], basis[perm], envelope[perm]
        )
        torch.testing.assert_close(got, expected * module.scale, rtol=0, atol=1e-13)
    assert (got[5] == 0).all()
