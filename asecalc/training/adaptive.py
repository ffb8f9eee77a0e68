"""Adaptive (DiaSL) runs from a database, and the comparison with fixed configurations.

:func:`run_adaptive` prepares the same validation split as a sweep
(:func:`asecalc.training.scale.prepare_split`), builds the start model on the
first slice of the training pool and runs
:class:`~asecalc.training.diasl.DiaSLController`. Re-running it on the same
``output_dir`` resumes a stopped run from its ``checkpoint.pt`` (or returns the
finished one), provided the settings that shape the run are unchanged.
:func:`compare_adaptive` is the acceptance experiment: at equal training FLOPs,
the adaptive run against fixed configurations chosen up front (each trained on
all the data with a cosine schedule over the whole budget), all validated on
the same structures, and, given a separate test set, all tested on it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from asecalc.config import ModelConfig, TrainConfig
from asecalc.fileio import write_json_atomic
from asecalc.training._diasl_checkpoint import read_state
from asecalc.training._diasl_laws import fit_params
from asecalc.training.data import (
    GraphDataset,
    elements_of,
    fit_reference_energies,
    open_sources,
)
from asecalc.training.diasl import DiaSLConfig, DiaSLController
from asecalc.training.growth import AppendableSource, DataHook
from asecalc.training.model_init import new_model, set_normalisation
from asecalc.training.scale import (
    SweepRequest,
    prepare_split,
    run_dir_of,
    run_sweep,
    size_config,
)

logger = logging.getLogger(__name__)
#: TrainConfig fields the controller sets itself (or does not use): they may
#: change between a run and its resumption.
_FREE_TRAIN_FIELDS = ("max_steps", "max_time_s", "warmup_steps", "schedule")


@dataclass
class AdaptiveRequest:
    """An adaptive (DiaSL) run (see ``eformer scale adaptive --help``)."""

    data: str
    output_dir: str
    budget_flops: float
    start_size: dict[str, Any] = field(
        default_factory=lambda: {"preset": "S", "n_layers": 1}
    )
    select: str | None = None
    val_fraction: float = 0.1
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    diasl: DiaSLConfig = field(default_factory=DiaSLConfig)
    laws: str | None = None


def run_adaptive(
    req: AdaptiveRequest, data_hook: DataHook | None = None
) -> dict[str, Any]:
    """Prepare the split, build the start model and run :class:`DiaSLController`.

    If ``output_dir`` holds the ``checkpoint.pt`` of an earlier run with the
    same settings, that run continues: model (with its grown config),
    optimiser, EMA, RNG, FLOPs spent, decisions, curve and training set. A
    custom ``data_hook`` is not saved: the structures it returned are, but a
    stateful hook must resume its own state.

    Raises
    ------
    ValueError
        If the budget is not positive, or the saved run's settings differ.
    """
    if req.budget_flops <= 0:
        raise ValueError(f"budget_flops must be positive, got {req.budget_flops}")
    out = Path(req.output_dir)
    laws = json.loads(Path(req.laws).read_text()) if req.laws else None
    settings = adaptive_settings(req, laws)
    saved = read_state(out, settings)  # before prepare_split may rewrite data/
    split = prepare_split(req.data, out, req.select, req.val_fraction, [1.0], req.seed)
    pool = AppendableSource(open_sources(split["pool"], None, False))
    cfg = req.diasl
    slice_size = max(round(cfg.slice_fraction * len(pool)), 1)
    if saved is None:
        n0 = min(
            len(pool),
            max(round(cfg.initial_fraction * len(pool)), req.train.batch_size),
        )
        positions = list(range(n0))
        config = size_config(req.start_size, elements_of(pool.base))
        model = new_model(config, req.train.seed)
        set_normalisation(
            model, *fit_reference_energies(pool, positions, config.elements)
        )
    else:
        pool.restore_extra(saved["diasl"]["hook_structures"])
        positions = [int(i) for i in saved["diasl"]["positions"]]
        config = ModelConfig.from_dict(saved["model_config"])
        model = new_model(config, req.train.seed)  # weights from the checkpoint
    val_source = open_sources(split["val"], None, False)
    val_set = GraphDataset(
        val_source,
        range(len(val_source)),
        config.elements,
        config.cutoff,
        getattr(torch, config.dtype),
    )
    controller = DiaSLController(
        model,
        pool,
        positions,
        val_set,
        req.train,
        cfg,
        req.budget_flops,
        out,
        data_hook,
        laws,
        slice_size,
        settings,
    )
    if saved is not None:
        controller.load_state_dict(saved)
        logger.info(
            "resuming the adaptive run in %s at step %d: %.3g of %.3g FLOPs, "
            "%d decisions",
            out,
            controller.trainer.step,
            controller.used,
            controller.budget,
            len(controller.decisions),
        )
    return controller.run()


def adaptive_settings(
    req: AdaptiveRequest, laws: dict[str, Any] | None
) -> dict[str, Any]:
    """The settings that shape an adaptive run (a resumed run must match them).

    Data, selection, split, start model, budget, DiaSL settings, the joint and
    L(P, steps) laws used for decisions, and every :class:`TrainConfig` field
    except those the controller sets itself (``max_steps``, ``max_time_s``,
    ``warmup_steps``, ``schedule``).
    """
    train = {
        k: v for k, v in req.train.to_dict().items() if k not in _FREE_TRAIN_FIELDS
    }
    return {
        "data": str(Path(req.data).resolve()),
        "select": req.select,
        "val_fraction": req.val_fraction,
        "seed": req.seed,
        "start_size": req.start_size,
        "budget_flops": float(req.budget_flops),
        "train": train,
        "diasl": dataclasses.asdict(req.diasl),
        "laws": fit_params(laws, "joint"),
        "steps_law": fit_params(laws, "steps"),
    }


def compare_adaptive(
    data: str,
    output_dir: str | Path,
    budget_flops: float,
    fixed_sizes: dict[str, dict[str, Any]],
    adaptive: AdaptiveRequest | None = None,
    train: TrainConfig | None = None,
    select: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    flops_batches: int = 3,
    test: str | None = None,
    test_select: str | None = None,
) -> dict[str, Any]:
    """Adaptive run against fixed configurations at the same FLOP budget.

    Each fixed configuration (a size in ``fixed_sizes`` trained on the whole
    training pool with a cosine schedule over ``budget_flops``, as one would
    choose up front without scaling laws) and the DiaSL run are validated on
    the same held-out structures. Writes ``compare.json``.

    The validation set both picks each run's best (EMA) model and, for the
    adaptive run, drives the decisions, so its errors flatter the run that
    looked at it most often. ``test`` (a database or file with labels, never
    seen by any run) gives the unbiased verdict: every run's best model is
    evaluated on it.

    Returns
    -------
    dict
        ``fixed`` (per size: best validation force MAE in meV/Å, FLOPs used),
        ``best_fixed``, ``adaptive`` and ``adaptive_wins`` (lower validation
        force MAE); with ``test``, also ``test``: per run energy (meV/atom)
        and force (meV/Å) errors, ``best_fixed`` and ``adaptive_wins`` on it.
    """
    out = Path(output_dir)
    train = train or TrainConfig()
    if test is not None:  # a missing or empty test set fails now, not after hours
        if not Path(test).exists():
            raise FileNotFoundError(f"test set {str(test)!r} not found")
        open_sources(test, test_select, energy_only=False)
    sweep = run_sweep(
        SweepRequest(
            data=data,
            output_dir=str(out / "fixed"),
            sizes=fixed_sizes,
            data_fractions=[1.0],
            budget_flops=budget_flops,
            select=select,
            val_fraction=val_fraction,
            train=train,
            seed=seed,
            flops_batches=flops_batches,
        )
    )
    key = "val_forces_mae_meV_per_A"
    fixed = {
        r["label"]: {
            "forces_mae_meV_per_A": r["best"].get(key),
            "n_params": r["n_params"],
            "flops": r["total_flops"],
        }
        for r in sweep["runs"]
    }
    adaptive = adaptive or AdaptiveRequest(
        data=data, output_dir="", budget_flops=budget_flops
    )
    adaptive.data, adaptive.output_dir = data, str(out / "adaptive")
    adaptive.budget_flops, adaptive.select = budget_flops, select
    adaptive.val_fraction, adaptive.seed, adaptive.train = val_fraction, seed, train
    result = run_adaptive(adaptive)
    best_label = min(fixed, key=lambda k: fixed[k]["forces_mae_meV_per_A"] or math.inf)
    summary = {
        "budget_flops": budget_flops,
        "fixed": fixed,
        "best_fixed": {"label": best_label, **fixed[best_label]},
        "adaptive": {
            "forces_mae_meV_per_A": result["best"].get(key),
            "flops": result["flops_used"],
            "decisions": [d.get("action") for d in result["decisions"]],
        },
    }
    summary["adaptive_wins"] = bool(
        (summary["adaptive"]["forces_mae_meV_per_A"] or math.inf)
        < (fixed[best_label]["forces_mae_meV_per_A"] or math.inf)
    )
    if test is not None:
        models = {
            label: run_dir_of(out / "fixed", label, 1.0) / "model.pt" for label in fixed
        }
        summary["test"] = errors_on_test_set(
            models, out / "adaptive" / "model.pt", test, test_select
        )
    write_json_atomic(out / "compare.json", summary)
    return summary


def errors_on_test_set(
    fixed_models: dict[str, Path],
    adaptive_model: Path,
    test: str,
    select: str | None = None,
) -> dict[str, Any]:
    """Errors of every compared model on a test set, and the verdict on it."""
    from asecalc.checkpoint import load_model
    from asecalc.training.evaluate import evaluate_model

    keys = ("forces_mae_meV_per_A", "energy_mae_meV_per_atom")

    def errors(path: Path) -> dict[str, Any]:
        result = evaluate_model(load_model(path), test, select)
        return {"n": result["n"], **{k: result["overall"].get(k) for k in keys}}

    fixed = {label: errors(path) for label, path in fixed_models.items()}
    adaptive = errors(adaptive_model)
    best = min(fixed, key=lambda k: fixed[k]["forces_mae_meV_per_A"])
    logger.info(
        "test set %s (%d structures): best fixed %s %.4g meV/Å; adaptive %.4g meV/Å",
        test,
        adaptive["n"],
        best,
        fixed[best]["forces_mae_meV_per_A"],
        adaptive["forces_mae_meV_per_A"],
    )
    return {
        "data": str(test),
        "select": select,
        "fixed": fixed,
        "adaptive": adaptive,
        "best_fixed": best,
        "adaptive_wins": bool(
            adaptive["forces_mae_meV_per_A"] < fixed[best]["forces_mae_meV_per_A"]
        ),
    }
