"""Build a new model for a dataset, or start from an existing one (fine-tuning)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch
from ase.data import atomic_numbers

from asecalc.checkpoint import load_model
from asecalc.config import ModelConfig
from asecalc.nn import EformerModel, build_model

logger = logging.getLogger(__name__)


def new_model(config: ModelConfig, seed: int) -> EformerModel:
    """A freshly initialised model with a scoped seed (the global RNG is untouched)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = build_model(config, getattr(torch, config.dtype))
    finally:
        torch.random.set_rng_state(state)
    return model


def set_normalisation(
    model: EformerModel, reference_energies: np.ndarray, scale: float
) -> None:
    """Write fitted per-element energies (eV) and the energy scale into the readout."""
    with torch.no_grad():
        readout = model.readout
        readout.reference_energies.copy_(torch.as_tensor(reference_energies))
        readout.scale.fill_(float(scale))
        last = cast(torch.nn.Linear, readout.net[-1])
        last.weight.zero_()  # start from E = Σ E0: the NN learns the residual
        last.bias.zero_()


def extend_elements(
    model: EformerModel, elements: Sequence[str], seed: int
) -> EformerModel:
    """Return a copy of ``model`` that also knows ``elements`` (new rows fresh).

    Existing elements keep their embedding and reference energy; new ones get a
    random embedding and a reference energy of 0 (refitted by the trainer).
    """
    old = model.config
    added = [s for s in elements if s not in old.elements]
    if not added:
        return model
    merged = tuple(sorted({*old.elements, *added}, key=lambda s: atomic_numbers[s]))
    logger.info("extending model elements %s with %s", old.elements, added)
    fresh = new_model(old.replace(elements=merged), seed)
    fresh = fresh.to(dtype=next(model.parameters()).dtype)
    old_state, new_state = model.state_dict(), fresh.state_dict()
    rows = torch.tensor([merged.index(s) for s in old.elements])
    for key, value in old_state.items():
        if key in ("embedding.embedding.weight", "readout.reference_energies"):
            new_state[key][rows] = value
        elif key.startswith("zbl."):
            continue  # per-element buffers rebuilt from the new config
        else:
            new_state[key] = value
    fresh.load_state_dict(new_state)
    return fresh


def init_from(
    spec: str, elements: Sequence[str], allow_new_elements: bool, seed: int
) -> tuple[ModelConfig, list[EformerModel]]:
    """Load ``spec`` ("default", a bundled name or a path) for fine-tuning."""
    bundle = load_model(None if spec == "default" else spec)
    missing = [s for s in elements if s not in bundle.config.elements]
    if missing and not allow_new_elements:
        raise ValueError(
            f"the data contain element(s) {', '.join(missing)} that the initial model "
            f"({', '.join(bundle.config.elements)}) does not know; pass "
            "--extend-elements to add them"
        )
    members = [
        extend_elements(m, elements, seed + k) for k, m in enumerate(bundle.members)
    ]
    return members[0].config, members


def refit_reference_energies(
    counts: np.ndarray, residuals: np.ndarray, current: np.ndarray
) -> np.ndarray:
    """Minimal-norm correction of per-element energies (eV) when fine-tuning.

    ``counts`` (n_structures, n_elements) element counts; ``residuals``
    (n_structures,) reference minus model energies in eV. Elements and
    compositions absent from the new data keep their previous values.
    """
    delta, *_ = np.linalg.lstsq(counts, residuals, rcond=None)
    return current + delta
