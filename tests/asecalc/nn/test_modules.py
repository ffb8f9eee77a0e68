"""Module-level checks: equivariance of each e3nn module, radial smoothness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3
from e3nn.util.test import assert_equivariant
from scipy.optimize import check_grad

from asecalc.nn import (
    BesselBasis,
    EquivariantAttention,
    EquivariantLayerNorm,
    PolynomialEnvelope,
)


def test_layer_norm_equivariant():
    irreps = o3.Irreps("8x0e + 4x1o + 2x2e")
    norm = EquivariantLayerNorm(irreps)
    assert_equivariant(norm, irreps_in=[irreps], irreps_out=[irreps])


def test_attention_layer_equivariant():
    torch.manual_seed(0)
    irreps = o3.Irreps("8x0e + 4x1o + 4x2e")
    sh_irreps = o3.Irreps.spherical_harmonics(2)
    layer = EquivariantAttention(
        irreps, sh_irreps, n_basis=6, radial_hidden=8, n_heads=2
    )
    n_atoms = 5
    src, dst = torch.tensor([0, 1, 2, 3, 4, 1]), torch.tensor([1, 0, 3, 2, 0, 4])
    basis = torch.randn(len(src), 6)
    envelope = torch.rand(len(src))
    sh = o3.SphericalHarmonics(sh_irreps, normalize=True, normalization="component")

    def func(h, edge_vec):
        out, _ = layer(h, src, dst, sh(edge_vec), basis, envelope)
        return out

    args = [torch.randn(n_atoms, irreps.dim), torch.randn(len(src), 3)]
    assert_equivariant(
        func,
        args_in=args,
        irreps_in=[irreps, "1o"],
        irreps_out=[irreps],
        tolerance=1e-9,
    )


def test_envelope_smooth_and_zero_beyond_cutoff():
    env = PolynomialEnvelope(cutoff=3.0, p=6)
    r = torch.tensor([0.0, 2.999999, 3.0, 3.5])
    values = env(r)
    assert values[0] == pytest.approx(1.0)
    assert abs(values[1]) < 1e-12
    assert values[2] == 0
    assert values[3] == 0

    def f(x):
        return float(env(torch.tensor(x)).sum())

    def g(x):
        t = torch.tensor(x, requires_grad=True)
        env(t).sum().backward()
        return t.grad.numpy()

    x0 = np.array([0.3, 1.2, 2.5, 2.95])
    assert check_grad(f, g, x0, epsilon=1e-7) < 1e-6


def test_bessel_basis_gradient():
    basis = BesselBasis(cutoff=4.0, n_basis=5)

    def f(x):
        return float(basis(torch.tensor(x)).sum())

    def g(x):
        t = torch.tensor(x, requires_grad=True)
        basis(t).sum().backward()
        return t.grad.numpy()

    assert check_grad(f, g, np.array([0.7, 1.9, 3.3]), epsilon=1e-7) < 1e-6
