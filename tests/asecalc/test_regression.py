"""Stored predictions of a seeded tiny model (see tests/data/make_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asecalc import EformerCalculator
from tests.data.make_reference import structures

DATA = Path(__file__).parents[1] / "data"


@pytest.mark.parametrize("name", ["ethanol", "cu"])
def test_predictions_match_stored_reference(name):
    reference = json.loads((DATA / "tiny_reference.json").read_text())[name]
    atoms = structures()[name]
    atoms.calc = EformerCalculator(model=DATA / "tiny_model.pt")
    assert atoms.get_potential_energy() == pytest.approx(reference["energy"], abs=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), reference["forces"], atol=1e-9)
    if "stress" in reference:
        np.testing.assert_allclose(atoms.get_stress(), reference["stress"], atol=1e-10)
