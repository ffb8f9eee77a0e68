"""Shared fixtures: seeded tiny models, rng, dtype tolerances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: e3nn-style tolerances per dtype (relative).
FLOAT_TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


def make_tiny_model(seed: int = 0, **overrides):
    """A seeded small model with non-trivial readout scale and reference energies."""
    import torch

    from asecalc.config import ModelConfig
    from asecalc.nn import build_model

    kwargs = {
        "elements": ("H", "C", "N", "O", "Cu", "Si"),
        "cutoff": 4.0,
        "n_scalars": 16,
        "n_vectors": 8,
        "n_tensors": 4,
        "sh_lmax": 2,
        "n_layers": 2,
        "n_heads": 4,
        "radial_hidden": 16,
        "readout_hidden": 16,
        "bilinear": True,  # the presets' architecture, so every calculator
        "correlation": 3,  # test covers the many-body layer too
        "layer_norm": "joint",
    }
    kwargs.update(overrides)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = build_model(ModelConfig(**kwargs), torch.float64)
    with torch.no_grad():
        model.readout.scale.fill_(0.5)
        model.readout.reference_energies.copy_(
            torch.linspace(-3.0, -1.0, len(kwargs["elements"]), dtype=torch.float64)
        )
    torch.random.set_rng_state(generator_state)
    return model


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """Path of a saved seeded tiny model (one member)."""
    from asecalc.checkpoint import save_model

    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    save_model(path, make_tiny_model(0), metadata={"purpose": "tests"})
    return path


@pytest.fixture(scope="session")
def tiny_ensemble_path(tmp_path_factory):
    """Path of a saved seeded tiny model with 3 ensemble members."""
    from asecalc.checkpoint import save_model

    path = tmp_path_factory.mktemp("models") / "tiny_ens.pt"
    save_model(path, [make_tiny_model(s) for s in range(3)])
    return path


@pytest.fixture
def calc(tiny_model_path):
    """A fresh EformerCalculator on the tiny model (float64)."""
    from asecalc import EformerCalculator

    return EformerCalculator(model=tiny_model_path)


@pytest.fixture
def rng():
    """Seeded numpy generator."""
    return np.random.default_rng(12345)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Both floating dtypes."""
    return request.param


def shared_data(relative: str) -> Path:
    """Path in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(
            f"reference data {relative} not found "
            "(../shared/data is absent in a user's clone)"
        )
    return path
