"""One training run from a data file to a model file (used by ``eformer train``,
scaling sweeps and active learning)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from asecalc.checkpoint import load_model, save_model
from asecalc.config import TrainConfig, preset_config
from asecalc.fileio import write_json_atomic
from asecalc.training.data import (
    GraphDataset,
    elements_of,
    fit_reference_energies,
    open_sources,
    split_indices,
)
from asecalc.training.loop import Trainer
from asecalc.training.model_init import (
    init_from,
    new_model,
    refit_reference_energies,
    set_normalisation,
)

if TYPE_CHECKING:
    from asecalc.nn import EformerModel

logger = logging.getLogger(__name__)


@dataclass
class TrainRequest:
    """What to train: data, model and run settings (see ``eformer train --help``)."""

    data: str | list[str]
    output_dir: str
    select: str | None = None
    val_data: str | list[str] | None = None
    val_select: str | None = None
    preset: str = "S"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    ensemble: int = 1
    bootstrap: bool = False
    init: str | None = None
    extend_elements: bool = False
    energy_only: bool = False
    resume: bool = False
    progress: bool = True
    max_structures: int | None = None
    plots: bool = True
    #: the data already hold what the initial model was trained on (active
    #: learning retrains on every label so far): no forgetting warning
    includes_base_data: bool = False


def _sources(req: TrainRequest) -> tuple[Any, ...]:
    source = open_sources(req.data, req.select, req.energy_only)
    n = (
        len(source)
        if req.max_structures is None
        else min(len(source), req.max_structures)
    )
    if req.val_data:
        train_idx = np.arange(n)
        val_source = open_sources(req.val_data, req.val_select, req.energy_only)
        val_idx = np.arange(len(val_source))
    else:
        train_idx, val_idx = split_indices(n, req.train.val_fraction, req.train.seed)
        val_source = source
    elements = elements_of(source, train_idx)
    return source, val_source, train_idx, val_idx, elements


def train_model(req: TrainRequest) -> dict[str, Any]:
    """Train (or resume) ``req.ensemble`` members; write ``model.pt`` and a summary.

    Returns
    -------
    dict
        ``model`` path, per-member best validation metrics, ``elements``.
    """
    out = Path(req.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    source, val_source, train_idx, val_idx, elements = _sources(req)
    if req.init:
        config, init_members = init_from(
            req.init, elements, req.extend_elements, req.train.seed
        )
        if len(source) < 2000 and not req.includes_base_data:
            logger.warning(
                "fine-tuning on %d structures without the base model's data: the model "
                "may forget chemistry that is not in the new data",
                len(train_idx),
            )
    else:
        config = preset_config(
            req.preset, elements=tuple(elements), **req.model_overrides
        )
        init_members = []
    dtype = getattr(torch, config.dtype)
    train_set = GraphDataset(source, train_idx, config.elements, config.cutoff, dtype)
    val_set = (
        GraphDataset(val_source, val_idx, config.elements, config.cutoff, dtype)
        if len(val_idx)
        else None
    )
    e0, force_rms = fit_reference_energies(source, train_idx, config.elements)
    write_json_atomic(
        out / "config.json",
        {
            "model": config.to_dict(),
            "train": req.train.to_dict(),
            "data": req.data,
            "select": req.select,
            "n_train": len(train_idx),
            "n_val": len(val_idx),
            "ensemble": req.ensemble,
            "init": req.init,
        },
    )
    metadata = {
        "data": [str(p) for p in np.atleast_1d(req.data)],
        "select": req.select,
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "init": req.init,
    }
    results, best_members = [], []
    for k in range(req.ensemble):
        seed = req.train.seed + 1000 * k
        member_dir = out if req.ensemble == 1 else out / "members" / str(k)
        if init_members:
            model = init_members[k % len(init_members)].to(dtype=dtype)
            _refit_for_finetune(model, train_set)
        else:
            model = new_model(config, seed)
            set_normalisation(model, e0, force_rms)
        cfg = TrainConfig.from_dict({**req.train.to_dict(), "seed": seed})
        trainer = Trainer(
            model,
            train_set,
            val_set,
            cfg,
            member_dir,
            metadata,
            bootstrap=req.bootstrap and req.ensemble > 1,
            progress=req.progress,
        )
        if req.resume:
            trainer.resume()
        if trainer.step < cfg.max_steps and not _finished(trainer):
            trainer.train()
        results.append(trainer.history[-1] if trainer.history else {})
        best_members.append(load_model(member_dir / "model.pt").members[0])
    if req.ensemble > 1:
        save_model(
            out / "model.pt",
            best_members,
            metadata={**metadata, "ensemble": req.ensemble},
        )
    summary = {
        "model": str(out / "model.pt"),
        "elements": list(config.elements),
        "members": results,
    }
    write_json_atomic(out / "summary.json", summary)
    if req.plots:
        _plots(
            out,
            [
                Path(out if req.ensemble == 1 else out / "members" / str(k))
                for k in range(req.ensemble)
            ],
            val_set,
        )
    return summary


def _finished(trainer: Trainer) -> bool:
    budget = trainer.config.max_time_s
    return budget > 0 and trainer.elapsed >= budget


def _refit_for_finetune(model: EformerModel, train_set: GraphDataset) -> None:
    """Shift per-element energies so the initial model matches the new data's zero."""
    n = min(len(train_set), 200)
    counts = np.zeros((n, len(model.config.elements)))
    residuals = np.zeros(n)
    model.eval()
    with torch.no_grad():
        for i in range(n):
            g = train_set.graph(i)
            pred = model(g, compute_forces=False)
            residuals[i] = float(g["energy_ref"][0] - pred["energy"][0])
            counts[i] = np.bincount(g["species"].numpy(), minlength=counts.shape[1])
    current = model.readout.reference_energies.detach().cpu().numpy()
    with torch.no_grad():
        model.readout.reference_energies.copy_(
            torch.as_tensor(refit_reference_energies(counts, residuals, current))
        )


def _plots(out: Path, member_dirs: list[Path], val_set: GraphDataset | None) -> None:
    from asecalc.training.plots import learning_curve_png, parity_png

    try:
        learning_curve_png(
            [d / "metrics.csv" for d in member_dirs], out / "learning_curve.png"
        )
        if val_set is not None:
            parity_png(load_model(out / "model.pt"), val_set, out / "parity")
    except Exception as err:  # plots must never lose a finished model
        logger.warning("could not draw plots: %s", err)
