"""Scaling sweeps: train model size × data size at a FLOP budget, then fit laws.

:func:`prepare_split` writes a fixed validation database and nested training
subsets (prefixes of one seeded permutation) under ``<output>/data``, so every
run of a sweep (and of ``eformer scale adaptive``/``compare`` on the same
directory) is validated on the same structures. :func:`run_sweep` trains each
(size, fraction) with :func:`asecalc.training.run.train_model` in its own
``runs/<size>_f<fraction>`` directory, with the number of steps set by the
measured FLOPs per step (:mod:`asecalc.training.flops`), and writes
``result.json`` there as soon as the run finishes; finished runs are skipped on
a re-run and unfinished ones resume from their checkpoint.
:func:`fit_sweep` fits L(C) on the compute frontier, L(N), L(P) and the joint
L(N, P) (:mod:`analysis.scaling_fit`) and draws the plots.

The learning rate follows the trainer's cosine schedule over each run, so the
intermediate points of a curve are not compute-optimal for their own budget:
the frontier is an upper bound of the best achievable loss.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from asecalc.config import PRESET_ALIASES, PRESETS, TrainConfig, preset_config
from asecalc.fileio import write_json_atomic
from asecalc.training._scale_fit import RESULT, fit_sweep, load_results
from asecalc.training._scale_split import prepare_split
from asecalc.training.data import GraphDataset, elements_of, open_sources

logger = logging.getLogger(__name__)

__all__ = [
    "RESULT",
    "SweepRequest",
    "best_record",
    "fit_sweep",
    "load_results",
    "measure_run_flops",
    "parse_sizes",
    "prepare_split",
    "read_metrics",
    "run_one",
    "run_sweep",
    "size_config",
]


@dataclass
class SweepRequest:
    """A scaling sweep (see ``eformer scale sweep --help``).

    Attributes
    ----------
    data : str
        ASE database or file with energy/force labels.
    output_dir : str
    sizes : dict
        ``label -> ModelConfig overrides`` (a preset name in ``"preset"``).
    data_fractions : list of float
        Fractions of the training pool, each in (0, 1].
    budget_flops : float
        Training FLOPs of each run (sets its number of steps).
    train : TrainConfig
        Base settings; ``max_steps`` and ``eval_every`` are set per run.
    n_evals : int
        Validation points per run (the learning curve in C).
    """

    data: str
    output_dir: str
    sizes: dict[str, dict[str, Any]]
    data_fractions: list[float]
    budget_flops: float
    select: str | None = None
    val_fraction: float = 0.1
    train: TrainConfig = field(default_factory=TrainConfig)
    n_evals: int = 10
    flops_batches: int = 3
    seed: int = 0
    progress: bool = False


def parse_sizes(
    text: str, overrides: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """``"small,medium"`` or ``"xs:S:n_scalars=8:n_layers=1,..."`` -> size specs.

    Each item is a preset name, or ``label:preset:key=value:...``; ``overrides``
    (e.g. from ``--model.*`` flags) apply to every size.
    """
    sizes: dict[str, dict[str, Any]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        label, *rest = item.split(":")
        preset = rest[0] if rest and "=" not in rest[0] else label
        spec: dict[str, Any] = {"preset": preset, **(overrides or {})}
        for kv in rest[1:] if rest and "=" not in rest[0] else rest:
            key, _, value = kv.partition("=")
            try:
                spec[key] = json.loads(value)
            except json.JSONDecodeError:
                spec[key] = value
        if PRESET_ALIASES.get(preset, preset) not in PRESETS:
            raise ValueError(
                f"size {item!r}: unknown preset {preset!r}; use S/M/L "
                "(small/medium/large) or label:preset:key=value"
            )
        sizes[label] = spec
    if not sizes:
        raise ValueError(f"no model sizes in {text!r}; e.g. --sizes small,medium")
    return sizes


def size_config(spec: dict[str, Any], elements: list[str]) -> Any:
    """ModelConfig of a size spec for the given elements."""
    spec = dict(spec)
    return preset_config(spec.pop("preset", "S"), elements=tuple(elements), **spec)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a trainer ``metrics.csv`` as dicts of floats (``is_best`` as bool)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        rec: dict[str, Any] = {}
        for k, v in row.items():
            if k == "is_best":
                rec[k] = v == "True"
            elif v not in ("", None):
                rec[k] = float(v)
        out.append(rec)
    return out


def best_record(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last ``is_best`` row (the weights in ``model.pt``), else the last row."""
    best = [h for h in history if h.get("is_best")]
    return best[-1] if best else (history[-1] if history else {})


def measure_run_flops(
    spec: dict[str, Any], train_db: str, train: TrainConfig, n_batches: int, seed: int
) -> tuple[dict[str, Any], list[str]]:
    """FLOPs per step and parameters of the model ``train_model`` builds for a run."""
    from asecalc.training.flops import measure_step_flops
    from asecalc.training.model_init import new_model

    source = open_sources(train_db, None, False)
    elements = elements_of(source)
    config = size_config(spec, elements)
    model = new_model(config, train.seed)
    dataset = GraphDataset(
        source,
        range(len(source)),
        config.elements,
        config.cutoff,
        getattr(torch, config.dtype),
    )
    return measure_step_flops(
        model, dataset, train, n_batches, seed
    ).to_dict(), elements


def run_dir_of(output_dir: str | Path, label: str, fraction: float) -> Path:
    """Folder of one sweep run (its ``model.pt``, ``metrics.csv``, ``result.json``)."""
    return Path(output_dir) / "runs" / f"{label}_f{fraction}"


def run_one(
    req: SweepRequest, label: str, fraction: float, split: dict[str, Any]
) -> dict[str, Any]:
    """Train (or resume, or load) one sweep run; return its ``result.json`` data."""
    from asecalc.training.run import TrainRequest, train_model

    run_dir = run_dir_of(req.output_dir, label, fraction)
    if (run_dir / RESULT).exists():
        logger.info("skipping finished run %s", run_dir.name)
        return json.loads((run_dir / RESULT).read_text())
    spec = req.sizes[label]
    train_db = split["train"][str(fraction)]
    flops, _ = measure_run_flops(spec, train_db, req.train, req.flops_batches, req.seed)
    steps = int(req.budget_flops // flops["flops_per_step"])
    if steps < 1:
        raise ValueError(
            f"run {run_dir.name}: budget {req.budget_flops:.3g} FLOPs is less "
            f"than one step ({flops['flops_per_step']:.3g}); raise --budget-flops"
        )
    eval_every = max(1, math.ceil(steps / req.n_evals))
    cfg = TrainConfig.from_dict(
        {
            **req.train.to_dict(),
            "max_steps": steps,
            "eval_every": eval_every,
            "warmup_steps": min(req.train.warmup_steps, steps // 5),
        }
    )
    overrides = {k: v for k, v in spec.items() if k != "preset"}
    summary = train_model(
        TrainRequest(
            data=train_db,
            output_dir=str(run_dir),
            val_data=split["val"],
            preset=spec.get("preset", "S"),
            model_overrides=overrides,
            train=cfg,
            resume=True,
            progress=req.progress,
        )
    )
    history = read_metrics(run_dir / "metrics.csv")
    for row in history:
        row["flops"] = row["step"] * flops["flops_per_step"]
    result = {
        "label": label,
        "fraction": fraction,
        "n_train": split["n_train"][str(fraction)],
        "n_val": split["n_val"],
        **flops,
        "steps": steps,
        "batch_size": cfg.batch_size,
        "total_flops": steps * flops["flops_per_step"],
        "best": best_record(history),
        "curve": history,
        "model": summary["model"],
        "size": spec,
    }
    write_json_atomic(run_dir / RESULT, result)
    return result


def run_sweep(req: SweepRequest) -> dict[str, Any]:
    """Run every (size, fraction) not yet finished; returns ``sweep.json`` contents."""
    if req.budget_flops <= 0:
        raise ValueError(f"budget_flops must be positive, got {req.budget_flops}")
    out = Path(req.output_dir)
    split = prepare_split(
        req.data, out, req.select, req.val_fraction, req.data_fractions, req.seed
    )
    results = []
    for label in req.sizes:
        for fraction in req.data_fractions:
            res = run_one(req, label, fraction, split)
            results.append(
                {
                    k: res[k]
                    for k in (
                        "label",
                        "fraction",
                        "n_train",
                        "n_params",
                        "flops_per_step",
                        "total_flops",
                        "best",
                    )
                }
            )
            write_json_atomic(
                out / "sweep.json",
                {"budget_flops": req.budget_flops, "split": split, "runs": results},
            )
    return {"budget_flops": req.budget_flops, "split": split, "runs": results}
