"""Benchmark structures and timing of energy + forces calls.

Used by ``eformer bench`` and ``benchmarks/anchor_bench.py``. The structures are
deterministic: aspirin (21 atoms, one rMD17 frame shipped in
``asecalc/data/aspirin.xyz``) and periodic water boxes of randomly oriented
rigid molecules on a cubic lattice at 1 g/cm³ (seeded, no overlaps).

Throughput is reported in atom-steps/s: atoms times energy+forces calls per
second of wall time (median call time of ``repeats`` calls after warm-up).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import all_changes
from ase.io import read

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data"
#: Gas-phase water geometry: O–H bond in Å and H–O–H angle in degrees.
WATER_OH = 0.9572
WATER_ANGLE = 104.52
#: Closest allowed distance (Å) between atoms of different molecules.
MIN_INTERMOLECULAR = 1.6
#: ``--sizes`` names -> structures (n_atoms: 21 aspirin, else 3·n_molecules water).
SIZE_ALIASES = {"aspirin": 21, "water64": 192, "water512": 1536}
DEFAULT_SIZES = (21, 192, 1536)


def aspirin() -> Atoms:
    """Aspirin C9H8O4 (21 atoms, non-periodic), rMD17 train-01 frame 0 geometry."""
    atoms = cast(Atoms, read(DATA_DIR / "aspirin.xyz"))
    atoms.info.clear()
    return atoms


def water_molecule() -> np.ndarray:
    """Positions (3, 3) in Å of O, H, H, centred on the O atom, in the xy plane."""
    half = math.radians(WATER_ANGLE) / 2
    return np.array(
        [
            [0.0, 0.0, 0.0],
            [WATER_OH * math.sin(half), WATER_OH * math.cos(half), 0.0],
            [-WATER_OH * math.sin(half), WATER_OH * math.cos(half), 0.0],
        ]
    )


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation matrix (3, 3) (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _min_image_distance(points: np.ndarray, others: np.ndarray, length: float) -> float:
    """Smallest minimum-image distance (Å) between two point sets in a cube."""
    if len(others) == 0:
        return math.inf
    diff = points[:, None, :] - others[None, :, :]
    diff -= length * np.round(diff / length)
    return float(np.sqrt((diff**2).sum(-1)).min())


def water_box(n_molecules: int, density_g_cm3: float = 1.0, seed: int = 0) -> Atoms:
    """Periodic cubic box of randomly oriented water molecules.

    Molecules sit on a simple cubic lattice (with ``ceil(n**(1/3))`` sites per
    edge, filled in order) with seeded random orientations and a small random
    jitter; orientations are redrawn until every intermolecular distance is at
    least :data:`MIN_INTERMOLECULAR` Å.

    Parameters
    ----------
    n_molecules : int
        Number of H2O molecules (3 atoms each).
    density_g_cm3 : float
        Mass density in g/cm³ (sets the box edge).
    seed : int
        Seed of the orientations and jitter.

    Returns
    -------
    ase.Atoms
        ``3 * n_molecules`` atoms, O H H per molecule, ``pbc=True``.
    """
    if n_molecules < 1:
        raise ValueError(f"n_molecules must be >= 1, got {n_molecules}")
    mass_g = n_molecules * 18.01528 / units.mol
    length = (mass_g / density_g_cm3 * 1e24) ** (1 / 3)  # Å
    per_edge = math.ceil(n_molecules ** (1 / 3) - 1e-9)
    spacing = length / per_edge
    rng = np.random.default_rng(seed)
    template = water_molecule()
    placed: list[np.ndarray] = []
    sites = np.array(np.unravel_index(np.arange(n_molecules), (per_edge,) * 3)).T
    for site in sites:
        for _ in range(1000):
            centre = (site + 0.5) * spacing + rng.uniform(-0.1, 0.1, 3) * spacing
            molecule = centre + template @ _random_rotation(rng).T
            others = np.concatenate(placed) if placed else np.empty((0, 3))
            if _min_image_distance(molecule, others, length) >= MIN_INTERMOLECULAR:
                break
        else:
            raise RuntimeError(f"could not place molecule at site {site.tolist()}")
        placed.append(molecule)
    positions = np.concatenate(placed)
    return Atoms("OH2" * n_molecules, positions=positions, cell=[length] * 3, pbc=True)


def structure_for_size(size: int | str) -> tuple[str, Atoms]:
    """Benchmark structure of a ``--sizes`` entry: (label, atoms).

    ``21`` or ``"aspirin"`` gives aspirin; a multiple of 3 gives a water box of
    ``size / 3`` molecules (``"water64"`` = 192 atoms).
    """
    key = str(size).strip().lower()
    n_atoms = SIZE_ALIASES.get(key)
    if n_atoms is None:
        try:
            n_atoms = int(key)
        except ValueError:
            raise ValueError(
                f"size must be an atom count (21 = aspirin, or a multiple of 3 for "
                f"water) or one of {sorted(SIZE_ALIASES)}; got {size!r}"
            ) from None
    if n_atoms == 21:
        return "aspirin", aspirin()
    if n_atoms <= 0 or n_atoms % 3:
        raise ValueError(
            f"size {n_atoms} is neither 21 (aspirin) nor a positive multiple of 3 "
            "(water box); use e.g. --sizes 21,192,1536"
        )
    return f"water{n_atoms // 3}", water_box(n_atoms // 3)


def time_call(
    function: Callable[[], Any], repeats: int = 5, warmup: int = 2
) -> dict[str, Any]:
    """Wall times of ``function()``: ``warmup`` untimed calls, then ``repeats`` timed.

    Returns
    -------
    dict
        ``median_s``, ``min_s``, ``max_s`` (wall seconds per call), ``times_s``
        (list of all timed calls, seconds) and ``median_cpu_s`` (median process
        CPU seconds per call: with one thread, the time on an idle core, much
        less sensitive than wall time to other jobs on a shared machine).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(max(warmup, 0)):
        function()
    times, cpu_times = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - start_cpu)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
        "median_cpu_s": statistics.median(cpu_times),
    }


def time_calculator(
    calc: Any, atoms: Atoms, repeats: int = 5, warmup: int = 2
) -> dict[str, Any]:
    """Time energy + forces of an ASE calculator on ``atoms`` (caching bypassed).

    Each call is ``calc.calculate(atoms, ["energy", "forces"], all_changes)``,
    so the calculator recomputes (its own neighbour-list reuse still applies,
    as in MD). Returns :func:`time_call`'s dict plus ``n_atoms`` and
    ``atom_steps_per_s`` (n_atoms / median call time).
    """
    atoms = atoms.copy()
    atoms.calc = calc

    def call() -> None:
        calc.calculate(atoms, ["energy", "forces"], all_changes)

    result = time_call(call, repeats, warmup)
    result["n_atoms"] = len(atoms)
    result["atom_steps_per_s"] = len(atoms) / result["median_s"]
    return result


def random_model_calculator(
    preset: str = "S",
    elements: tuple[str, ...] = ("H", "C", "N", "O"),
    dtype: str = "float64",
    seed: int = 0,
    **overrides: Any,
) -> Any:
    """EformerCalculator on a random-weight model of a preset (for timing only)."""
    import torch

    from asecalc.calculator import EformerCalculator
    from asecalc.checkpoint import ModelBundle
    from asecalc.config import preset_config
    from asecalc.nn import EformerModel

    config = preset_config(preset, elements=tuple(elements), dtype=dtype, **overrides)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = EformerModel(config)
    finally:
        torch.random.set_rng_state(state)
    bundle = ModelBundle(config, [model], {"purpose": f"random-weight preset {preset}"})
    return EformerCalculator(model=bundle, dtype=dtype)
