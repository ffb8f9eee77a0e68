"""Measured training FLOPs and parameter counts (for scaling laws).

FLOPs are counted, not estimated from a formula: one training step (forward
pass, forces by autograd with ``create_graph=True``, the loss, and the
backward pass to the parameters, which differentiates through the force
computation: a double backward) runs under
:class:`torch.utils.flop_counter.FlopCounterMode`. That counter sums the
matrix products (``mm``, ``bmm``, ``addmm``, convolutions, attention kernels),
which carry almost all the arithmetic of the model; element-wise ops, gathers
and scatters are not counted (the convention of the scaling-law literature).
Optimiser updates and validation are not training compute and are excluded.

The count depends on the batch (atoms and edges), not on the weights, so it is
measured on a few representative random batches of the training set, scaled to
the mean batch of the whole set by edge count, and a run's compute is
``steps × FLOPs per step``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from asecalc.config import TrainConfig
from asecalc.training.data import GraphDataset
from asecalc.training.loss import training_loss

logger = logging.getLogger(__name__)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters (scalars)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def count_step_flops(
    model: torch.nn.Module, batch: dict[str, Any], config: TrainConfig
) -> int:
    """FLOPs of one training step of ``model`` on ``batch`` (forward + backward).

    The step is the trainer's: energies and forces with ``create_graph=True``
    (stress too when ``config.stress_weight > 0`` and the batch has stress),
    the weighted loss, and the gradient of the loss with respect to every
    trainable parameter (``loss.backward()``; the parameters' ``.grad``
    buffers, the RNG state and the training mode are restored afterwards).
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = [p for p in model.parameters() if p.requires_grad]
    rng_state = torch.random.get_rng_state()
    was_training = model.training
    model.train()
    saved_grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        with FlopCounterMode(display=False) as counter:
            loss, _ = training_loss(model, batch, config)
            loss.backward()
    finally:
        for p, grad in zip(params, saved_grads, strict=True):
            p.grad = grad
        model.train(was_training)
        torch.random.set_rng_state(rng_state)
    return int(counter.get_total_flops())


@dataclass
class FlopsMeasurement:
    """FLOPs per training step measured on a few batches.

    Attributes
    ----------
    per_step : float
        Mean FLOPs of one optimisation step (``batch_size`` structures).
    per_batch : list of int
        FLOPs of each measured batch.
    atoms_per_batch : list of int
    n_params : int
        Trainable parameters of the model.
    """

    per_step: float
    per_batch: list[int]
    atoms_per_batch: list[int]
    n_params: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            "flops_per_step": self.per_step,
            "flops_per_batch": self.per_batch,
            "atoms_per_batch": self.atoms_per_batch,
            "n_params": self.n_params,
        }


def measure_step_flops(
    model: torch.nn.Module,
    dataset: GraphDataset,
    config: TrainConfig,
    n_batches: int = 3,
    seed: int = 0,
    n_probe: int | None = None,
) -> FlopsMeasurement:
    """Count the FLOPs of ``n_batches`` random training batches (``batch_size``).

    Batches differ in size, so the mean is rescaled by the edge count (the
    message tensor products dominate): ``per_step = Σ FLOPs_b / Σ edges_b ×
    batch_size × (mean edges per structure)``. The mean is over the whole set
    unless ``n_probe`` random structures are asked for: on a mixed database
    (small molecules and 96-atom water boxes) a 64-structure probe put the
    mean anywhere between 0.5x and 1.6x the true one (5-95 %), and runs
    compared "at equal FLOPs" differed by 2x in real compute.

    Raises
    ------
    ValueError
        If the dataset is empty or ``n_batches < 1``.
    """
    if len(dataset) == 0:
        raise ValueError("cannot measure FLOPs on an empty training set")
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    rng = np.random.default_rng(seed)
    size = min(config.batch_size, len(dataset))
    counts, atoms, edges = [], [], []
    for _ in range(n_batches):
        batch = dataset.batch(rng.choice(len(dataset), size=size, replace=False))
        counts.append(count_step_flops(model, batch, config))
        atoms.append(int(batch["positions"].shape[0]))
        edges.append(int(batch["edge_src"].shape[0]) + atoms[-1])
    probe = (
        np.arange(len(dataset))
        if n_probe is None or n_probe >= len(dataset)
        else rng.choice(len(dataset), size=n_probe, replace=False)
    )
    per_structure = np.mean(
        [
            len(g["edge_src"]) + len(g["positions"])
            for g in (dataset.graph(int(i)) for i in probe)
        ]
    )
    per_step = float(np.sum(counts) / np.sum(edges) * per_structure * config.batch_size)
    logger.info(
        "measured %.3g FLOPs per training step (%d batches, %d parameters)",
        per_step,
        n_batches,
        count_parameters(model),
    )
    return FlopsMeasurement(per_step, counts, atoms, count_parameters(model))
