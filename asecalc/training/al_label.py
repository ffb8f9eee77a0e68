"""Data of the active-learning loop: seed import, labelling, files, report.

Labels live in one ``ase.db``; each row has a geometry ``uid``
(:func:`asecalc.training.datagen.geometry_uid`), so writing is idempotent and a
restart relabels nothing. Labelling reuses
:func:`asecalc.training.datagen.label_database` (any Executor, each label
committed at once).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from asecalc.training.datagen import (
    DatagenSummary,
    Task,
    geometry_uid,
    label_database,
    method_name,
)

logger = logging.getLogger(__name__)


def read_labelled(path: str | Path, query: str = "") -> list[Atoms]:
    """Structures of an ase.db (rows matching ``query``) or any ase.io file.

    Labels stay attached as a SinglePointCalculator (energy eV, forces eV/Å).
    """
    from ase.db import connect
    from ase.io import read

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"structure file {str(path)!r} not found")
    if path.suffix == ".db":
        return [row.toatoms() for row in connect(path).select(query)]
    images = read(path, index=":")
    return images if isinstance(images, list) else [images]


def write_frames(path: str | Path, frames: Sequence[Atoms]) -> None:
    """Write frames (info and per-atom arrays kept) to extxyz atomically."""
    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp, list(frames), format="extxyz")
    os.replace(tmp, path)


def _has_labels(atoms: Atoms) -> bool:
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    return "energy" in results and "forces" in results


def _clean(atoms: Atoms) -> Atoms:
    return Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)


def add_seed(config: Any, labels: Path, executor: Executor | None = None) -> int:
    """Copy (or label) the seed structures into ``labels``; return how many are there.

    Rows with energy and forces keep their labels (``method`` ``"seed"``);
    unlabelled ones are labelled with ``config.reference``. A seeded
    ``config.val_fraction`` of them (at least one) form the validation split.
    """
    from ase.db import connect

    seed = read_labelled(config.seed_data)
    if not seed:
        raise ValueError(f"no structures in the seed data {config.seed_data!r}")
    n_val = 0
    if config.val_fraction > 0 and len(seed) > 1:
        n_val = min(max(round(config.val_fraction * len(seed)), 1), len(seed) - 1)
    val = set(
        np.random.default_rng([config.seed, 0, 3])
        .permutation(len(seed))[:n_val]
        .tolist()
    )
    db = connect(labels)  # no `with`: each write commits at once
    done = {row.get("uid") for row in db.select(include_data=False)}
    source = f"seed:{Path(config.seed_data).name}"
    tasks = []
    for k, atoms in enumerate(seed):
        uid = geometry_uid(atoms)
        info = {
            "al_round": 0,
            "source": source,
            "split": "val" if k in val else "train",
        }
        if uid in done:
            continue
        if _has_labels(atoms):
            frame = _clean(atoms)
            frame.calc = SinglePointCalculator(frame, **atoms.calc.results)
            db.write(frame, key_value_pairs={**info, "uid": uid, "method": "seed"})
            done.add(uid)
        else:
            tasks.append(Task(uids=[uid], info=info, atoms=[_clean(atoms)]))
    if tasks:
        logger.info("labelling %d unlabelled seed structures", len(tasks))
        label_database(
            labels, tasks, config.reference, executor, config.workers, progress=False
        )
    return db.count()


def label_selected(
    selected: Path,
    labels: Path,
    al_round: int,
    config: Any,
    executor: Executor | None = None,
) -> DatagenSummary:
    """Label the frames of ``selected`` (extxyz) into ``labels`` with provenance."""
    from ase.io import read

    frames = read(selected, index=":") if Path(selected).stat().st_size else []
    tasks = []
    for atoms in frames:
        info = {
            "al_round": int(al_round),
            "sigma": float(atoms.info["sigma_max"]),
            "source": str(atoms.info["source"]),
            "step": int(atoms.info["step"]),
            "explore_temperature_K": float(atoms.info["temperature_K"]),
            "split": str(atoms.info["split"]),
            "strategy": config.strategy,
        }
        tasks.append(Task(uids=[geometry_uid(atoms)], info=info, atoms=[_clean(atoms)]))
    summary = label_database(
        labels, tasks, config.reference, executor, config.workers, progress=False
    )
    logger.info(
        "round %d labels (%s): %d written, %d already present, %d failed",
        al_round,
        method_name(config.reference),
        summary.written,
        summary.skipped,
        summary.failed,
    )
    return summary


def report_png(report: dict[str, Any], path: str | Path) -> None:
    """Per-round plot: force error vs labels, σ distribution, calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r for r in report["rounds"] if "n_labels" in r]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, style in (("val", "o-"), ("test", "s-")):
        pts = [
            (r["n_labels"], 1000 * r[name]["forces_mae"]) for r in rounds if name in r
        ]
        if pts:
            axes[0].plot(*zip(*pts, strict=True), style, label=name)
            for k in ("spearman", "miscalibration_area"):
                cal = [(r["round"], r[name][k]) for r in rounds if name in r]
                axes[2].plot(*zip(*cal, strict=True), style, label=f"{k} ({name})")
    axes[0].set(
        xlabel="labels",
        ylabel="force MAE (meV/Å)",
        yscale="log",
        title=f"strategy: {report['config']['strategy']}",
    )
    explored = [(r["round"], r["explore"]) for r in report["rounds"] if "explore" in r]
    if explored:
        x = [k for k, _ in explored]
        pct = [e["sigma_percentiles"] for _, e in explored]
        axes[1].fill_between(
            x,
            [p.get("p10", np.nan) for p in pct],
            [p.get("p90", np.nan) for p in pct],
            alpha=0.3,
            label="p10-p90",
        )
        axes[1].plot(x, [p.get("p50", np.nan) for p in pct], "o-", label="median")
        axes[1].plot(x, [e["sigma_max"] for _, e in explored], "k^--", label="max")
    axes[1].set(xlabel="round", ylabel="σ on exploration frames (eV/Å)", yscale="log")
    axes[2].set(xlabel="round", ylabel="calibration", ylim=(-1, 1))
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.92, wspace=0.3)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(
    out: Path, config: dict[str, Any], state: dict[str, Any], plot: bool = True
) -> dict[str, Any]:
    """Write ``al_report.json`` (and ``al_report.png``) in ``out``; return it."""
    from asecalc.fileio import write_json_atomic

    report = {
        "config": config,
        "done": state["done"],
        "stop_reason": state["stop_reason"],
        "n_labels": count_rows(out / "labels.db"),
        "rounds": state["rounds"],
    }
    write_json_atomic(out / "al_report.json", report)
    if plot:
        try:
            report_png(report, out / "al_report.png")
        except Exception as err:  # a plot must never stop the loop
            logger.warning("could not draw al_report.png: %s", err)
    return report


def count_rows(path: Path, query: str = "") -> int:
    """Rows of an ase.db matching ``query`` (0 if the file does not exist)."""
    from ase.db import connect

    return connect(path).count(query) if Path(path).exists() else 0


def percentiles(values: np.ndarray) -> dict[str, float]:
    """Min, 10th, 50th, 90th percentile and max of ``values`` (empty dict if none)."""
    if not len(values):
        return {}
    keys = ("min", "p10", "p50", "p90", "max")
    levels = np.percentile(values, [0, 10, 50, 90, 100]).tolist()
    return dict(zip(keys, levels, strict=True))
