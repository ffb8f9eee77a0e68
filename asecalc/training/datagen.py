"""Reference data pipeline: sample structures, label them, store them in ``ase.db``.

Sampling tasks (Langevin MD, normal-mode and random displacements around a start)
and labelling run in worker processes through any
:class:`concurrent.futures.Executor`; the main process writes each finished task
to the SQLite database at once. Every frame has a deterministic ``uid`` (hash of
recipe, structure, sampler, temperature, seed and frame index, or of the geometry
for user structures), so re-running the same command resumes a killed run
without relabelling. Frames whose labelling fails are logged and appended to
``<output>.failures.jsonl`` and skipped on restart unless ``retry_failed``.
A uid names a frame slot, not the method or MD settings: label with another
reference or other settings into a new file (or change ``seed``).

Each row holds energy (eV), forces (eV/Å), stress (eV/Å³, periodic cells) and the
key-value pairs ``uid, method, recipe, structure, sampler, temperature_K, seed,
frame, source``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from asecalc.training._sampling import strip_atoms
from asecalc.training.dbtools import (
    geometry_uid,
    hash_seed,
    info_key_value_pairs,
    make_uid,
)
from asecalc.training.recipes import get_recipe

logger = logging.getLogger(__name__)

SAMPLERS = ("md", "normal-modes", "random")
XTB_SPECS = ("xtb", "gfn2", "gfn2-xtb", "tblite")
Reference = str | Callable[[], Any]


@dataclass(frozen=True)
class SamplingConfig:
    """How frames are sampled around each start structure.

    Parameters
    ----------
    temperatures_K : tuple of float
        Temperatures in K (clipped per recipe to ``Recipe.max_temperature_K``).
    n_per_structure : int
        Frames per start structure, split evenly over (sampler, temperature).
    samplers : tuple of str, optional
        Override of the recipes' default samplers.
    md_interval : int
        MD steps between stored frames (decorrelation).
    equilibration_steps : int
        MD steps before the first stored frame.
    timestep : float
        MD time step in ASE time units.
    friction : float
        Langevin friction in 1/(ASE time).
    frames_per_task : int
        Maximum frames per worker task (each MD task is an independent trajectory).
    seed : int
        Master seed; task seeds derive from it and from the task's name.
    """

    temperatures_K: tuple[float, ...] = (300.0, 600.0, 1000.0)
    n_per_structure: int = 20
    samplers: tuple[str, ...] | None = None
    md_interval: int = 30
    equilibration_steps: int = 100
    timestep: float = 0.5 * units.fs
    friction: float = 0.02 / units.fs
    frames_per_task: int = 10
    seed: int = 0


@dataclass
class Task:
    """One unit of worker work: frames sampled from one start, or given structures.

    ``frame_info`` (given structures) holds each frame's own key-value pairs.
    """

    uids: list[str]
    info: dict[str, Any]
    atoms: list[Atoms]
    frame_info: list[dict[str, Any]] | None = None
    sampler: str = "label"
    temperature_K: float = 0.0
    seed: int = 0
    md_calculator: str | None = None
    preoptimize: bool = False
    rattle_sigma: float = 0.0
    strain_sigma: float = 0.0
    config: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass
class DatagenSummary:
    """Counts of one run: frames written, skipped as present, failed, and pending."""

    output: str
    written: int = 0
    skipped: int = 0
    failed: int = 0
    not_run: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)


def method_name(reference: Reference) -> str:
    """Return the provenance name of a reference spec (``"GFN2-xTB"`` for xtb)."""
    if isinstance(reference, str):
        return "GFN2-xTB" if reference.lower() in XTB_SPECS else reference
    return getattr(reference, "__name__", type(reference).__name__)


def build_calculator(reference: Reference) -> Any:
    """Return a fresh calculator from a spec string or a zero-argument factory."""
    if callable(reference):
        return reference()
    from asecalc.cli._common import make_calculator

    return make_calculator(reference)


def plan_recipe_tasks(
    recipe_names: Sequence[str], config: SamplingConfig
) -> list[Task]:
    """Return the sampling tasks of the named recipes (structures built here).

    Raises
    ------
    ValueError
        For an unknown recipe or sampler, or a non-positive frame count.
    """
    if config.n_per_structure < 1:
        raise ValueError(f"n_per_structure must be >= 1, got {config.n_per_structure}")
    bad = [s for s in config.samplers or () if s not in SAMPLERS]
    if bad:
        raise ValueError(f"unknown sampler(s) {bad}; expected some of {SAMPLERS}")
    recipes = [get_recipe(name) for name in recipe_names]  # validate all first
    tasks = []
    for recipe in recipes:
        rng = np.random.default_rng([config.seed, hash_seed(recipe.name) % 2**32])
        temperatures = sorted(
            {min(t, recipe.max_temperature_K) for t in config.temperatures_K}
        )
        combos = [
            (s, t) for s in config.samplers or recipe.samplers for t in temperatures
        ]
        for name, start in recipe.build(rng):
            counts = np.full(len(combos), config.n_per_structure // len(combos))
            counts[: config.n_per_structure % len(combos)] += 1
            for (sampler, temp), count in zip(combos, counts, strict=True):
                for first in range(0, int(count), config.frames_per_task):
                    n_frames = min(config.frames_per_task, int(count) - first)
                    key = (recipe.name, name, sampler, temp, config.seed, first)
                    tasks.append(
                        Task(
                            uids=[
                                make_uid(*key[:-1], first + i) for i in range(n_frames)
                            ],
                            info={
                                "recipe": recipe.name,
                                "structure": name,
                                "source": f"recipe:{recipe.name}",
                            },
                            atoms=[start],
                            sampler=sampler,
                            temperature_K=float(temp),
                            seed=hash_seed(*key) % 2**31,
                            md_calculator=recipe.md_calculator,
                            preoptimize=recipe.preoptimize,
                            rattle_sigma=recipe.rattle_sigma,
                            strain_sigma=recipe.strain_sigma,
                            config=config,
                        )
                    )
    return tasks


def plan_file_tasks(paths: Iterable[str | Path], chunk: int = 4) -> list[Task]:
    """Return labelling tasks for every structure in files ase.io can read.

    Scalar ``atoms.info`` entries of each frame (e.g. an extxyz comment's
    ``config_type=...``) are kept as key-value pairs of its row
    (:func:`~asecalc.training.dbtools.info_key_value_pairs`).

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    """
    from ase.io import read

    tasks = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"structure file {str(path)!r} not found")
        frames = read(path, index=":")
        for first in range(0, len(frames), chunk):
            originals = frames[first : first + chunk]
            batch = [strip_atoms(a) for a in originals]
            tasks.append(
                Task(
                    uids=[geometry_uid(a) for a in batch],
                    info={
                        "recipe": "file",
                        "structure": path.stem,
                        "source": str(path),
                    },
                    atoms=batch,
                    frame_info=[info_key_value_pairs(a.info) for a in originals],
                )
            )
    return tasks


def run_task(task: Task, reference: Reference) -> tuple[list, list]:
    """Sample and label one task (runs in a worker).

    Returns
    -------
    frames : list of (uid, Atoms, dict)
        Labelled frames (SinglePointCalculator) with their key-value pairs.
    failures : list of (uid, str)
        Frames that could not be labelled, with the error message.
    """
    from asecalc.training import _sampling

    frames, failures = [], []
    try:
        structures = _sampling.sample(task, reference)
    except Exception as err:
        return [], [(uid, f"{type(err).__name__}: {err}") for uid in task.uids]
    for index, (uid, atoms) in enumerate(zip(task.uids, structures, strict=True)):
        try:
            labelled = (
                atoms if atoms.calc is not None else _sampling.label(atoms, reference)
            )
        except Exception as err:
            failures.append((uid, f"{type(err).__name__}: {err}"))
            continue
        kvp = {
            **(task.frame_info[index] if task.frame_info else {}),
            **task.info,
            "uid": uid,
            "sampler": task.sampler,
            "seed": task.seed,
            "frame": index,
            "method": method_name(reference),
        }
        if task.sampler != "label":
            kvp["temperature_K"] = task.temperature_K
        frames.append((uid, labelled, kvp))
    return frames, failures


def _done_uids(output: Path, retry_failed: bool) -> tuple[set[str], Path]:
    from ase.db import connect

    done = set()
    if output.exists():
        done = {row.get("uid") for row in connect(output).select(include_data=False)}
    failure_log = output.with_name(output.name + ".failures.jsonl")
    if failure_log.exists() and not retry_failed:
        done |= {
            json.loads(line)["uid"]
            for line in failure_log.read_text().splitlines()
            if line.strip()
        }
    return done, failure_log


def label_database(
    output: str | Path,
    tasks: Sequence[Task],
    reference: Reference = "xtb",
    executor: Executor | None = None,
    workers: int = 2,
    limit: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> DatagenSummary:
    """Run ``tasks`` through ``executor`` and write labelled frames to ``output``.

    Parameters
    ----------
    output : str or Path
        SQLite ase.db file; created if missing, appended to (resumed) otherwise.
    tasks : sequence of Task
        From :func:`plan_recipe_tasks` or :func:`plan_file_tasks`.
    reference : str or callable
        Calculator spec (``"xtb"``, ``"emt"``, ``"module:Class"``) or a picklable
        zero-argument factory returning an ASE calculator.
    executor : Executor, optional
        Any ``concurrent.futures.Executor`` (Dask and Ray provide one). Default:
        a ``ProcessPoolExecutor`` with ``workers`` spawned processes; ``workers=0``
        runs in this process.
    limit : int, optional
        Stop scheduling tasks once this many new frames are planned (tasks are
        never split, so up to ``frames_per_task - 1`` more may be labelled).
    retry_failed : bool
        Retry frames recorded in ``<output>.failures.jsonl``.
    progress : bool
        Show a tqdm progress bar (frames).
    """
    from ase.db import connect
    from tqdm.auto import tqdm

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    done, failure_log = _done_uids(output, retry_failed)
    summary = DatagenSummary(output=str(output))
    pending, n_new = [], 0
    for task in tasks:
        missing = [uid for uid in task.uids if uid not in done]
        summary.skipped += len(task.uids) - len(missing)
        if not missing:
            continue
        if limit is not None and n_new >= limit:
            summary.not_run += len(missing)
            continue
        pending.append(task)
        n_new += len(missing)
    own = executor is None and workers > 0
    if own:
        import multiprocessing

        executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")
        )
    bar = tqdm(total=n_new, disable=not progress, unit="frame", desc="datagen")
    try:
        db = connect(output)  # no `with`: each write commits at once (resumable)
        if executor is None:
            results = (run_task(task, reference) for task in pending)
        else:
            futures = [executor.submit(run_task, task, reference) for task in pending]
            results = (future.result() for future in as_completed(futures))
        for frames, failures in results:
            _write_results(db, frames, failures, done, failure_log, summary)
            bar.update(len(frames) + len(failures))
    except BaseException:  # e.g. Ctrl-C: keep what is written, do not wait
        if own and executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        if own and executor is not None:
            executor.shutdown()
    finally:
        bar.close()
    counts = (summary.written, summary.skipped, summary.failed, summary.not_run)
    logger.info(
        "datagen %s: %d written, %d present, %d failed, %d not run", output, *counts
    )
    return summary


def _write_results(
    db: Any,
    frames: list,
    failures: list,
    done: set[str],
    failure_log: Path,
    summary: DatagenSummary,
) -> None:
    for uid, atoms, kvp in frames:
        if uid in done:
            continue
        db.write(atoms, key_value_pairs=kvp)
        done.add(uid)
        summary.written += 1
    for uid, error in failures:
        logger.warning("labelling failed for uid %s: %s", uid, error)
        record = {"uid": uid, "error": error}
        with failure_log.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        summary.failures.append(record)
        summary.failed += 1
