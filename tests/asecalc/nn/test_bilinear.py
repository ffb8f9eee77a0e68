"""The bilinear invariants of an atom's own features (three-body angular terms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule
from e3nn import o3
from e3nn.util.test import assert_equivariant
from scipy.spatial.transform import Rotation

from asecalc.config import ModelConfig, preset_config
from asecalc.graph import atoms_to_graph
from asecalc.nn import EformerModel
from asecalc.nn._attention import BilinearInvariants


def test_bilinear_invariants_are_invariant_under_o3():
    torch.manual_seed(0)
    irreps = o3.Irreps("8x0e + 4x1o + 2x2e")
    module = BilinearInvariants(irreps, n_out=6)
    assert_equivariant(module, irreps_in=[irreps], irreps_out=["6x0e"], tolerance=1e-10)


def test_bilinear_invariants_see_angles():
    """Two atoms with equal vector norms but different angles differ."""
    torch.manual_seed(1)
    irreps = o3.Irreps("0x0e + 2x1o")
    module = BilinearInvariants(irreps, n_out=3)
    a = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])  # 90 degrees
    b = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])  # 0 degrees
    assert not torch.allclose(module(a), module(b))


def test_model_with_bilinear_rotation_invariant_and_legacy_default():
    """The S preset (bilinear invariants and many-body products) is O(3)-invariant."""
    atoms = molecule("CH3CH2OH")
    config = preset_config("S", elements=("H", "C", "O"))
    assert config.bilinear
    assert not ModelConfig.from_dict({"elements": ["H", "C", "O"]}).bilinear
    torch.manual_seed(2)
    model = EformerModel(config)
    with torch.no_grad():  # the readout starts at zero: make the energy non-trivial
        for p in model.readout.parameters():
            p.add_(0.1 * torch.randn_like(p))

    def evaluate(at):
        out = model(atoms_to_graph(at, config.elements, config.cutoff))
        return out["energy"].detach().item(), out["forces"].detach().numpy()

    e0, f0 = evaluate(atoms)
    rot = Rotation.random(random_state=3).as_matrix()
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ rot.T + 1.7
    e1, f1 = evaluate(rotated)
    assert np.abs(f0).max() > 1e-3
    assert e1 == pytest.approx(e0, abs=1e-10)
    np.testing.assert_allclose(f1, f0 @ rot.T, atol=1e-10)
