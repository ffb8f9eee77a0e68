"""The nn module tests run in float64 (equivariance to 1e-9 or tighter)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
