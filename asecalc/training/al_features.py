"""Model-based descriptors of structures for active-learning selection.

:func:`model_features` runs the current model once over candidate structures
and returns, per structure, a descriptor vector for farthest-point sampling and
the attention entropy (an optional acquisition signal). The per-atom invariant
(0e) features entering the readout, taken with a forward hook on
``model.readout``, are reduced in one of two ways:

``"pooled"``
    Mean and maximum over atoms, shape (2 n_scalars,). Defined for any mix of
    compositions, but blind to a change that moves few atoms: a torsion of
    alanine dipeptide changes the environment of a handful of its 22 atoms, and
    the mean barely moves.
``"atoms"``
    Every atom's features, grouped by element and sorted within each element
    channel by channel, shape (n_atoms · n_scalars,). Invariant to permuting
    atoms of one element, and it resolves conformations: on 201 held-out
    alanine dipeptide frames (MD + φ/ψ metadynamics), the Spearman correlation
    of descriptor distance with φ/ψ distance is 0.58 against 0.43 for
    ``"pooled"`` (default model), 0.33 against 0.23 (an active-learning round's
    model). It needs every structure compared to share one composition.
``"auto"``
    ``"atoms"`` when all structures share one composition (a molecule or a
    fixed cell explored by MD), otherwise ``"pooled"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

DESCRIPTORS = ("auto", "pooled", "atoms")


def resolve_descriptor(descriptor: str, *groups: Sequence[Atoms]) -> str:
    """``"auto"`` -> ``"atoms"`` if every structure of ``groups`` has one composition.

    Raises ValueError for an unknown name, or for ``"atoms"`` over mixed
    compositions (whose per-atom descriptors have different lengths).
    """
    if descriptor not in DESCRIPTORS:
        raise ValueError(f"descriptor must be one of {DESCRIPTORS}, got {descriptor!r}")
    formulas = {atoms.get_chemical_formula() for g in groups for atoms in g}
    if descriptor == "auto":
        return "atoms" if len(formulas) <= 1 else "pooled"
    if descriptor == "atoms" and len(formulas) > 1:
        raise ValueError(
            f"descriptor 'atoms' needs one composition, got {len(formulas)} "
            f"({', '.join(sorted(formulas)[:4])}, ...); use 'pooled' or 'auto'"
        )
    return descriptor


def _reduce(block: np.ndarray, numbers: np.ndarray, descriptor: str) -> np.ndarray:
    """One structure's (n_atoms, n_scalars) features -> its descriptor vector."""
    if descriptor == "pooled":
        return np.concatenate([block.mean(axis=0), block.max(axis=0)])
    return np.concatenate(
        [np.sort(block[numbers == z], axis=0).ravel() for z in np.unique(numbers)]
    )


def model_features(
    calc: Any,
    images: Sequence[Atoms],
    batch_atoms: int = 2048,
    descriptor: str = "pooled",
) -> dict[str, np.ndarray]:
    """Invariant descriptors and attention entropy of structures under ``calc``'s model.

    Parameters
    ----------
    calc : EformerCalculator
        Its first ensemble member is used.
    images : sequence of ase.Atoms
    batch_atoms : int
        Atoms per forward pass.
    descriptor : {"pooled", "atoms", "auto"}
        Reduction of the per-atom features (module docstring).

    Returns
    -------
    dict
        ``descriptors`` (n_images, n_features): readout input features
        (dimensionless), n_features = 2 n_scalars ("pooled") or
        n_atoms · n_scalars ("atoms"); ``attention_entropy`` (n_images,): mean
        over atoms, heads and layers of the entropy (nats) of each atom's
        attention over its neighbours.
    """
    import torch

    from asecalc.graph import atoms_to_graph, batch_graphs

    descriptor = resolve_descriptor(descriptor, images)
    model = calc.models[0]
    captured: list[torch.Tensor] = []
    handle = model.readout.register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].detach())
    )
    descriptors, entropies = [], []
    try:
        for chunk in _chunks(list(images), batch_atoms):
            graphs = [
                atoms_to_graph(
                    atoms,
                    calc.config.elements,
                    calc.config.cutoff,
                    calc.dtype,
                    calc.device,
                )
                for atoms in chunk
            ]
            graph = batch_graphs(graphs)
            captured.clear()
            with torch.no_grad():
                out = model(graph, compute_forces=False, return_attention=True)
            scalars = captured[-1].double().cpu().numpy()  # (n_atoms, n_scalars)
            entropy = _attention_entropy(out["attention"], graph)  # (n_atoms,)
            start = 0
            for atoms in chunk:
                stop = start + len(atoms)
                block = scalars[start:stop]
                descriptors.append(_reduce(block, atoms.numbers, descriptor))
                entropies.append(float(entropy[start:stop].mean()))
                start = stop
    finally:
        handle.remove()
    return {
        "descriptors": np.array(descriptors),
        "attention_entropy": np.array(entropies),
    }


def _chunks(images: list[Atoms], batch_atoms: int) -> list[list[Atoms]]:
    chunks: list[list[Atoms]] = []
    current: list[Atoms] = []
    n = 0
    for atoms in images:
        if current and n + len(atoms) > batch_atoms:
            chunks.append(current)
            current, n = [], 0
        current.append(atoms)
        n += len(atoms)
    return chunks + ([current] if current else [])


def _attention_entropy(attention: list[Any], graph: dict[str, Any]) -> np.ndarray:
    """Per-atom entropy (nats) of attention weights, averaged over heads and layers."""
    n_atoms = len(graph["species"])
    dst = graph["edge_dst"].cpu().numpy()
    total = np.zeros(n_atoms)
    layers = [a for a in attention if a is not None]
    for alpha in layers:
        a = alpha.detach().double().cpu().numpy()  # (n_edges, n_heads)
        terms = -(a * np.log(np.clip(a, 1e-300, None))).mean(axis=1)
        total += np.bincount(dst, weights=terms, minlength=n_atoms)
    return total / max(len(layers), 1)
