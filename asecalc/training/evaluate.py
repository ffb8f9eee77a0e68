"""Evaluate a model file on labelled data: errors overall and per subset."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asecalc.checkpoint import ModelBundle
from asecalc.graph import batch_graphs
from asecalc.training.data import labelled_to_graph, open_sources
from asecalc.training.loss import ErrorAccumulator


def predict(
    bundle: ModelBundle, graphs: list[dict[str, Any]], stress: bool
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Ensemble-mean predictions of a batch (tensors, detached) and the batch."""
    batch = batch_graphs(graphs)
    outs = [
        m(batch, compute_forces=True, compute_stress=stress) for m in bundle.members
    ]
    return {
        k: torch.stack([o[k].detach() for o in outs]).mean(0)
        for k in ("energy", "forces", "stress")
        if k in outs[0]
    }, batch


def evaluate_model(
    bundle: ModelBundle,
    data: str | Path | list[str],
    select: str | None = None,
    by: str | None = None,
    batch_size: int = 16,
    max_structures: int | None = None,
) -> dict[str, Any]:
    """Errors of ``bundle`` on ``data``.

    Returns
    -------
    dict
        ``overall`` metrics (energy meV/atom and meV, forces meV/Å, stress
        GPa), ``by_<key>`` per-subset metrics when ``by`` is given, ``n``, and
        ``parity`` arrays (reference and predicted energies per atom in eV,
        force components in eV/Å) for plots.
    """
    source = open_sources(data, select, energy_only=False)
    cfg = bundle.config
    dtype = next(bundle.members[0].parameters()).dtype
    overall = ErrorAccumulator()
    groups: dict[str, ErrorAccumulator] = defaultdict(ErrorAccumulator)
    parity: dict[str, list[np.ndarray]] = defaultdict(list)
    n = len(source) if max_structures is None else min(len(source), max_structures)
    for start in range(0, n, batch_size):
        items = [source[i] for i in range(start, min(start + batch_size, n))]
        graphs = [
            labelled_to_graph(it, cfg.elements, cfg.cutoff, dtype) for it in items
        ]
        stress = any(it.stress is not None for it in items)  # masked per item
        pred, batch = predict(bundle, graphs, stress)
        overall.update(pred, batch)
        parity["energy_ref"].append((batch["energy_ref"] / batch["n_atoms"]).numpy())
        parity["energy_pred"].append((pred["energy"] / batch["n_atoms"]).numpy())
        parity["forces_ref"].append(batch["forces_ref"].numpy().ravel())
        parity["forces_pred"].append(pred["forces"].numpy().ravel())
        if by:
            for k in range(len(items)):
                key = str(source.row_value(start + k, by))
                sub = batch_graphs([graphs[k]])
                atoms_slice = batch["graph_index"] == k
                sub_pred = {
                    "energy": pred["energy"][k : k + 1],
                    "forces": pred["forces"][atoms_slice],
                }
                if "stress" in pred:
                    sub_pred["stress"] = pred["stress"][k : k + 1]
                groups[key].update(sub_pred, sub)
    result: dict[str, Any] = {"n": n, "overall": overall.metrics()}
    if by:
        result[f"by_{by}"] = {k: v.metrics() for k, v in sorted(groups.items())}
    result["parity"] = {k: np.concatenate(v) for k, v in parity.items()}
    return result
