"""Free-energy surfaces from PLUMED HILLS and COLVAR files (1D and 2D).

Two estimators, both in numpy (no PLUMED needed to analyse a finished run):

* :func:`fes_from_hills` sums the deposited Gaussians on a grid, F(s) = -Σ hills.
  For well-tempered runs PLUMED writes HILLS heights already multiplied by
  γ/(γ-1) (first hill of HEIGHT=1, BIASFACTOR=8 is written as 8/7), so the sum
  *is* the well-tempered estimate -F = V·γ/(γ-1), exactly as ``plumed sum_hills``
  computes it (Barducci, Bussi, Parrinello, PRL 100, 020603 (2008)).
* :func:`fes_from_colvar` reweights COLVAR samples with w = exp(V_r/kT), using
  ``metad.rbias`` = V - c(t) when printed (Tiwary & Parrinello, JPCB 119, 736
  (2015)), else the final bias from HILLS; error bars come from block analysis
  (independent contiguous blocks of the trajectory).

Multiple walkers (:func:`analysis.metad.run_walkers`) share one bias, so their
estimate is minus the sum of the hills of all ``HILLS.<i>`` (each already scaled
by γ/(γ-1)); pass the run directory, read with :func:`read_hills` and
:func:`read_colvars` (all walkers, rows sorted by time).

CV values stay in PLUMED units (nm, rad); free energies are returned in eV (ASE
units), converted once from PLUMED's kJ/mol when a file is read.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import units
from numpy.typing import NDArray

from analysis._fes_minima import find_minima, summarize
from analysis._fes_tools import (
    PlumedTable,
    Range,
    colvar_files,
    final_bias,
    hills_bias,
    hills_files,
    make_grid,
    read_colvars,
    read_hills,
    read_plumed_file,
)
from analysis.metad import KJMOL, kT_kJmol
from asecalc.fileio import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    "FreeEnergySurface",
    "PlumedTable",
    "Range",
    "colvar_files",
    "fes_from_colvar",
    "fes_from_hills",
    "final_bias",
    "find_minima",
    "format_fes",
    "hills_bias",
    "hills_files",
    "plot_fes",
    "read_colvars",
    "read_hills",
    "read_plumed_file",
    "summarize",
]


@dataclass
class FreeEnergySurface:
    """A free energy on a grid of 1 or 2 CVs.

    ``axes``: bin centres per CV, each shape (n_bins,), in CV units (nm, rad).
    ``free_energy``: shape (n_bins,) or (n_bins_1, n_bins_2), eV, minimum 0, NaN
    where unsampled. ``error``: one standard error, eV, same shape, or None.
    ``periodic``: (min, max) domain per periodic CV, else None. ``method``:
    ``"hills"`` or ``"reweight"``.
    """

    cv_names: tuple[str, ...]
    axes: tuple[NDArray[np.float64], ...]
    free_energy: NDArray[np.float64]
    temperature_K: float
    periodic: tuple[Range | None, ...]
    error: NDArray[np.float64] | None = None
    method: str = "hills"

    @property
    def kT(self) -> float:
        """k_B T in eV."""
        return float(units.kB * self.temperature_K)


def _cv_names(table: PlumedTable, cv_names: list[str] | None) -> list[str]:
    names = cv_names or [f[6:] for f in table.fields if f.startswith("sigma_")]
    if not 1 <= len(names) <= 2:
        raise ValueError(f"expected 1 or 2 CVs, got {names}; pass cv_names=[...]")
    return names


def fes_from_hills(
    hills: str | os.PathLike[str] | PlumedTable,
    temperature_K: float,
    cv_names: list[str] | None = None,
    bins: int = 100,
    ranges: list[Range] | None = None,
    n_hills: int | None = None,
) -> FreeEnergySurface:
    """Free energy -Σ hills from a (well-tempered) run; see module docstring.

    Parameters
    ----------
    hills : path or PlumedTable
        A HILLS file, or a run directory with HILLS or the ``HILLS.<i>`` of
        multiple walkers (all summed, :func:`read_hills`).
    cv_names : list of str, optional
        1 or 2 CVs (default: every CV with a ``sigma_`` column).
    ranges : list of (float, float), optional
        Grid range per CV in CV units (default: periodic domain or hills ± 3σ).
    n_hills : int, optional
        Use only the first ``n_hills`` hills in time (convergence checks). With
        several walkers these are the hills all walkers deposited up to one
        simulation time (about ``n_hills / n_walkers`` each); a PlumedTable is
        used in its own row order.
    """
    table = hills if isinstance(hills, PlumedTable) else read_hills(hills)
    names = _cv_names(table, cv_names)
    periodic = [table.periodic.get(n) for n in names]
    values = [table[n][:n_hills] for n in names]
    pad = [3 * float(table[f"sigma_{n}"].max()) for n in names]
    _, axes = make_grid(values, pad, periodic, bins, ranges)
    used = PlumedTable(
        table.fields, table.data[:n_hills], table.periodic, table.constants
    )
    points = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    f = -hills_bias(used, names, points).reshape([len(a) for a in axes])
    return FreeEnergySurface(
        tuple(names), tuple(axes), (f - f.min()) * KJMOL, temperature_K, tuple(periodic)
    )


def fes_from_colvar(
    colvar: str | os.PathLike[str] | PlumedTable,
    temperature_K: float,
    cv_names: list[str] | None = None,
    hills: str | os.PathLike[str] | PlumedTable | None = None,
    bins: int = 50,
    ranges: list[Range] | None = None,
    n_blocks: int = 5,
    discard_fraction: float = 0.2,
) -> FreeEnergySurface:
    """Reweighted free energy with block-analysis error bars.

    Weights are exp(V_r/kT) with V_r = ``metad.rbias`` if printed, else the final
    bias from ``hills`` (first ``discard_fraction`` of the samples is dropped).
    The samples are split into ``n_blocks`` contiguous blocks; the error is the
    standard error of the block histograms, σ_F = kT σ_P / P. ``colvar`` and
    ``hills`` may be run directories (multiple walkers: every
    ``walker_<i>/COLVAR`` and ``HILLS.<i>``, samples sorted by time, so the
    discarded fraction and each block cover the same times of every walker).
    """
    table = colvar if isinstance(colvar, PlumedTable) else read_colvars(colvar)
    names = cv_names or [f for f in table.fields[1:] if "." not in f]
    if not 1 <= len(names) <= 2:
        raise ValueError(f"expected 1 or 2 CVs, got {names}; pass cv_names=[...]")
    first = int(discard_fraction * len(table.data))
    samples = np.stack([table[n][first:] for n in names], axis=1)
    kt = kT_kJmol(temperature_K)
    if "metad.rbias" in table.fields:
        logw = table["metad.rbias"][first:] / kt
    elif hills is not None:
        h = hills if isinstance(hills, PlumedTable) else read_hills(hills)
        logw = final_bias(h, names, samples) / kt
    else:
        raise ValueError("COLVAR has no metad.rbias column: pass hills= to reweight")
    if n_blocks < 2 or len(samples) < 10 * n_blocks:
        raise ValueError(
            f"expected n_blocks >= 2 and >= 10 samples per block, "
            f"got {n_blocks} blocks for {len(samples)} samples"
        )
    weights = np.exp(logw - logw.max())
    periodic = [table.periodic.get(n) for n in names]
    edges, axes = make_grid(list(samples.T), [0.0] * len(names), periodic, bins, ranges)
    blocks = np.array_split(np.arange(len(samples)), n_blocks)
    probs = np.array(
        [
            np.histogramdd(samples[b], bins=edges, weights=weights[b])[0]
            / weights[b].sum()
            for b in blocks
        ]
    )
    mean = probs.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(mean > 0, -kt * np.log(mean), np.nan)
        err = kt * probs.std(axis=0, ddof=1) / np.sqrt(n_blocks) / mean
    f -= np.nanmin(f)
    return FreeEnergySurface(
        tuple(names),
        tuple(axes),
        f * KJMOL,
        temperature_K,
        tuple(periodic),
        error=np.where(np.isfinite(f), err, np.nan) * KJMOL,
        method="reweight",
    )


def plot_fes(
    fes: FreeEnergySurface, path: str | os.PathLike[str], min_depth_kT: float = 1.0
) -> Path:
    """Save a PNG of ``fes`` in kJ/mol (line with error band, or filled contours)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = fes.free_energy / KJMOL
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    minima, _ = find_minima(fes, min_depth_kT)
    if len(fes.axes) == 1:
        x = fes.axes[0]
        ax.plot(x, f, color="C0")
        if fes.error is not None:
            err = fes.error / KJMOL
            ax.fill_between(x, f - err, f + err, color="C0", alpha=0.3, label="±1 s.e.")
            ax.legend()
        ax.plot([x[m[0]] for m in minima], [f[m] for m in minima], "o", color="C3")
        ax.set_ylabel("free energy (kJ/mol)")
    else:
        x, y = fes.axes
        cs = ax.contourf(x, y, f.T, levels=20, cmap="viridis")
        fig.colorbar(cs, label="free energy (kJ/mol)")
        for k, m in enumerate(minima):
            ax.annotate(str(k), (x[m[0]], y[m[1]]), color="w", ha="center", va="center")
        ax.set_ylabel(fes.cv_names[1])
    ax.set_xlabel(fes.cv_names[0])
    ax.set_title(f"{fes.method} free energy, T = {fes.temperature_K:g} K")
    path = Path(path)
    atomic_write(
        path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    )
    plt.close(fig)
    return path


def format_fes(fes: FreeEnergySurface) -> str:
    """The surface as a text table: CV columns, F and its error in kJ/mol."""
    grids = np.meshgrid(*fes.axes, indexing="ij")
    err = fes.error if fes.error is not None else np.full(fes.free_energy.shape, np.nan)
    cols = [g.ravel() for g in grids] + [
        fes.free_energy.ravel() / KJMOL,
        err.ravel() / KJMOL,
    ]
    header = " ".join([*fes.cv_names, "free_energy_kJmol", "error_kJmol"])
    return (
        "\n".join(
            [
                f"#! FIELDS {header}",
                *(" ".join(f"{v:.6g}" for v in row) for row in np.column_stack(cols)),
            ]
        )
        + "\n"
    )
