"""Helpers of :mod:`analysis.nve`: degrees of freedom, minimum distance, plot, files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms, units
from ase.io import Trajectory
from ase.neighborlist import neighbor_list
from scipy.spatial.distance import pdist

from asecalc.fileio import atomic_write

if TYPE_CHECKING:
    from analysis.nve import DriftReport

logger = logging.getLogger(__name__)

#: Pairs farther apart than this (Å) are not searched for the minimum distance.
DISTANCE_SEARCH_CUTOFF = 4.0
#: Periodic systems up to this size use all minimum-image distances.
SMALL_SYSTEM = 200


def check_arguments(
    temperature_K: float, timestep: float, n_steps: int, equilibration_steps: int
) -> None:
    """Raise ValueError for arguments of :func:`~analysis.nve.run_nve` out of range."""
    if timestep <= 0:
        raise ValueError(
            f"timestep must be positive in ASE time units, got {timestep}; "
            "write e.g. timestep=0.5 * units.fs"
        )
    if timestep > 10 * units.fs:
        raise ValueError(
            f"timestep={timestep} ASE units is {timestep / units.fs:.0f} fs: far too "
            "long. Did you pass femtoseconds? Write timestep=0.5 * units.fs"
        )
    if n_steps < 2 or equilibration_steps < 0:
        raise ValueError(
            f"need n_steps >= 2 and equilibration_steps >= 0, got n_steps={n_steps}, "
            f"equilibration_steps={equilibration_steps}"
        )
    if temperature_K < 0:
        raise ValueError(f"temperature_K must be >= 0 K, got {temperature_K}")


def degrees_of_freedom(atoms: Atoms) -> int:
    """Return 3N minus translations, minus rotations for non-periodic systems."""
    removed = 3
    if not any(atoms.pbc) and len(atoms) > 2:
        removed += 3
    return max(3 * len(atoms) - removed, 1)


def minimum_distance(atoms: Atoms, cutoff: float = DISTANCE_SEARCH_CUTOFF) -> float:
    """Return the shortest interatomic distance in Å (inf if none below ``cutoff``).

    Periodic images count (the structure's ``pbc`` is respected). Small systems
    use all minimum-image distances; large ones a neighbour list to ``cutoff``.
    """
    if len(atoms) < 2 and not any(atoms.pbc):
        return float("inf")
    if not any(atoms.pbc):
        return float(pdist(atoms.get_positions()).min())
    if len(atoms) <= SMALL_SYSTEM:
        distances = atoms.get_all_distances(mic=True)
        distances[np.diag_indices_from(distances)] = np.inf
        if len(atoms) > 1 and distances.min() < cutoff:
            return float(distances.min())
    distances = neighbor_list("d", atoms, cutoff)
    return float(distances.min()) if len(distances) else float("inf")


def plot_energies(report: DriftReport, path: str | Path) -> Path:
    """Plot total, potential and kinetic energy against time to a PNG.

    Energies are shown in meV/atom relative to their first value, the total with
    its linear fit.

    Parameters
    ----------
    report : DriftReport
        Result of :func:`run_nve` (its time series are used).
    path : str or Path
        Output PNG file.

    Returns
    -------
    path : Path
        The written file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    scale = 1000.0 / report.n_atoms  # eV -> meV/atom
    t = report.time_ps
    series = {
        "total": report.potential_energy + report.kinetic_energy,
        "potential": report.potential_energy,
        "kinetic": report.kinetic_energy,
    }
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(6, 6))
    for ax, (name, energy) in zip(axes, series.items(), strict=True):
        ax.plot(t, (energy - energy[0]) * scale, lw=0.8)
        ax.set_ylabel(f"ΔE {name}\n(meV/atom)")
    axes[0].plot(
        t,
        report.drift_meV_per_atom_per_ps * (t - t.mean())
        + ((series["total"] - series["total"][0]) * scale).mean(),
        "k--",
        lw=0.8,
        label=f"drift {report.drift_meV_per_atom_per_ps:.3g} meV/atom/ps",
    )
    axes[0].legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("time (ps)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return path


def truncate_trajectory(path: Path, n_frames: int) -> None:
    """Keep the first ``n_frames`` frames of the trajectory ``path`` (atomically).

    Raises ValueError if it holds fewer (removed or damaged since the checkpoint).
    """
    with Trajectory(path) as reader:
        n_found = len(reader)
        if n_found < n_frames:
            raise ValueError(
                f"{path} holds {n_found} frames but the checkpoint was written after "
                f"frame {n_frames}: the trajectory was removed or damaged; restore it "
                "or start a new run in another output_dir"
            )
        if n_found == n_frames:
            return

        def copy(tmp: str) -> None:
            with Trajectory(tmp, "w") as writer:
                for index in range(n_frames):
                    writer.write(reader[index])

        atomic_write(path, copy)
    logger.info(
        "dropped %d frames of %s written after the checkpoint", n_found - n_frames, path
    )
