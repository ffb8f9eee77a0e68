"""The equivariant layer norm: equivariance, and smoothness where l > 0 features vanish.

At a centrosymmetric or cubic site (every atom of diamond Si, the carbon of CH4)
the l = 1 and l = 2 features vanish by symmetry. A norm that rescales each irrep
block by its own RMS keeps only the block's direction there, which is undefined
at zero: forces jump and finite-difference force constants (phonons) are
meaningless. The ``"joint"`` norm of the presets must be smooth there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from e3nn import o3
from e3nn.util.test import assert_equivariant

from asecalc import EformerCalculator
from asecalc.checkpoint import save_model
from asecalc.config import ModelConfig, preset_config
from asecalc.nn import EquivariantLayerNorm
from tests.conftest import make_tiny_model

IRREPS = o3.Irreps("8x0e + 4x1o + 2x2e")


@pytest.mark.parametrize("mode", ["joint", "per-irrep"])
def test_layer_norm_is_equivariant(mode):
    torch.manual_seed(0)
    norm = EquivariantLayerNorm(IRREPS, mode=mode)
    assert_equivariant(norm, irreps_in=[IRREPS], irreps_out=[IRREPS], tolerance=1e-10)


def test_joint_norm_is_linear_in_a_vanishing_block_and_scale_invariant():
    """Small l > 0 parts stay small (no rescaling to unit size); x -> c x is a no-op."""
    torch.manual_seed(1)
    norm = EquivariantLayerNorm(IRREPS, mode="joint")
    x = torch.randn(3, IRREPS.dim)
    x[:, 8:] *= 1e-3  # l > 0 blocks nearly vanish
    y = norm(x)
    assert y[:, 8:].abs().max() < 0.05
    torch.testing.assert_close(norm(5.0 * x), y, rtol=1e-4, atol=1e-6)  # up to eps
    legacy = EquivariantLayerNorm(IRREPS, mode="per-irrep")(x)
    assert legacy[:, 8:].abs().max() > 0.2  # the legacy norm blows them up


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="layer norm mode"):
        EquivariantLayerNorm(IRREPS, mode="batch")
    with pytest.raises(ValueError, match="layer_norm"):
        ModelConfig(layer_norm="batch")


def test_presets_use_joint_norm_and_old_files_keep_per_irrep():
    assert preset_config("S", elements=("Si",)).layer_norm == "joint"
    assert ModelConfig.from_dict({"elements": ["Si"]}).layer_norm == "per-irrep"


def _force_constants(calc, atoms, steps):
    """d F_0x / d x_0 (eV/Å²) by one-sided differences for each step in Å."""
    ref = atoms.copy()
    ref.calc = calc
    f0 = ref.get_forces()[0, 0]
    out = []
    for step in steps:
        moved = atoms.copy()
        moved.positions[0, 0] += step
        moved.calc = calc
        out.append((moved.get_forces()[0, 0] - f0) / step)
    return np.array(out)


@pytest.mark.parametrize(
    "atoms",
    [bulk("Si", "diamond", a=5.43), molecule("CH4")],
    ids=["diamond-Si", "CH4"],
)
def test_forces_are_linear_in_small_displacements_at_symmetric_sites(atoms, tmp_path):
    """Harmonic regime: force constants from ±1e-3 and 1e-2 Å steps agree."""
    steps = [-1e-3, 1e-3, 2e-3, 1e-2]
    path = tmp_path / "joint.pt"
    save_model(path, make_tiny_model(0, layer_norm="joint"))
    k = _force_constants(EformerCalculator(model=path), atoms, steps)
    np.testing.assert_allclose(k, k[1], rtol=0.02)
    # the legacy norm is not smooth there (the reason the presets changed)
    path = tmp_path / "legacy.pt"
    save_model(path, make_tiny_model(0, layer_norm="per-irrep"))
    k_legacy = _force_constants(EformerCalculator(model=path), atoms, steps)
    assert np.ptp(k_legacy) > 0.5 * np.abs(k_legacy).max()  # step-dependent
