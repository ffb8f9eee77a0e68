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

CV values stay in PLUMED units (nm, rad); free energies are returned in eV (ASE
units), converted once from PLUMED's kJ/mol when a file is read.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import units
from numpy.typing import NDArray

from analysis.metad import KJMOL, kT_kJmol

logger = logging.getLogger(__name__)

Range = tuple[float, float]


@dataclass
class PlumedTable:
    """Columns of a PLUMED output file.

    ``fields``: names from ``#! FIELDS``; ``data``: shape (n_rows, n_fields) in
    PLUMED units (ps, nm, rad, kJ/mol); ``periodic``: ``{name: (min, max)}`` from
    ``#! SET min_x/max_x``; ``constants``: every ``#! SET`` as text.
    """

    fields: list[str]
    data: NDArray[np.float64]
    periodic: dict[str, Range]
    constants: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> NDArray[np.float64]:
        if name not in self.fields:
            raise KeyError(f"no column {name!r}; the file has {self.fields}")
        return self.data[:, self.fields.index(name)]


def read_plumed_file(path: str | os.PathLike[str]) -> PlumedTable:
    """Read a COLVAR or HILLS file (restarted files with repeated headers too)."""
    fields: list[str] = []
    consts: dict[str, float] = {}
    text: dict[str, str] = {}
    rows: list[list[float]] = []
    for line in Path(path).read_text().splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "#!" and len(words) > 2 and words[1] == "FIELDS":
            fields = words[2:]
        elif words[0] == "#!" and len(words) > 3 and words[1] == "SET":
            text[words[2]] = words[3]
            value = _plumed_number(words[3])
            if value is not None:
                consts[words[2]] = value
        elif not words[0].startswith("#") and len(words) == len(fields):
            rows.append([float(w) for w in words])
    if not fields or not rows:
        raise ValueError(f"{path} is not a PLUMED COLVAR/HILLS file with data rows")
    periodic = {
        f: (consts[f"min_{f}"], consts[f"max_{f}"])
        for f in fields
        if f"min_{f}" in consts
    }
    return PlumedTable(fields, np.array(rows), periodic, text)


def _plumed_number(text: str) -> float | None:
    """Value of a ``#! SET`` constant (a number, ``pi`` or ``-pi``), else None."""
    try:
        return {"pi": np.pi, "-pi": -np.pi}.get(text) or float(text)
    except ValueError:
        return None


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


def _grid(
    values: list[NDArray[np.float64]],
    pad: list[float],
    periodic: list[Range | None],
    bins: int,
    ranges: list[Range] | None,
) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
    """Bin edges and centres per CV: periodic domain, given range or data ± pad."""
    edges, centres = [], []
    for k, v in enumerate(values):
        lo, hi = (
            ranges[k]
            if ranges
            else (periodic[k] or (v.min() - pad[k], v.max() + pad[k]))
        )
        e = np.linspace(lo, hi, bins + 1)
        edges.append(e)
        centres.append(0.5 * (e[1:] + e[:-1]))
    return edges, centres


def _delta(x: NDArray[np.float64], c: NDArray[np.float64], period: Range | None) -> Any:
    """x[None, :] - c[:, None] with minimum-image wrapping for periodic CVs."""
    d = x[None, :] - c[:, None]
    if period is not None:
        length = period[1] - period[0]
        d -= length * np.round(d / length)
    return d


def hills_bias(
    hills: PlumedTable, cv_names: list[str], points: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Σ of the HILLS kernels at ``points`` of shape (n_points, n_cvs); kJ/mol.

    Uses PLUMED's kernel: for ``kerneltype stretched-gaussian`` (PLUMED ≥ 2.8) the
    Gaussian is cut at d²/2 = 6.25 and shifted/stretched to reach zero there.
    """
    stretched = hills.constants.get("kerneltype") == "stretched-gaussian"
    shift = np.exp(-6.25)
    total = np.zeros(len(points))
    for start in range(0, len(points), 1000):
        chunk = points[start : start + 1000]
        d2 = np.zeros((len(hills.data), len(chunk)))
        for k, name in enumerate(cv_names):
            d = _delta(chunk[:, k], hills[name], hills.periodic.get(name))
            d2 += (d / hills[f"sigma_{name}"][:, None]) ** 2
        g = np.exp(-0.5 * d2)
        if stretched:
            g = np.where(d2 < 12.5, (g - shift) / (1.0 - shift), 0.0)
        total[start : start + 1000] = hills["height"] @ g
    return total


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
    """Free energy -Σ hills from a (well-tempered) HILLS file; see module docstring.

    Parameters
    ----------
    cv_names : list of str, optional
        1 or 2 CVs (default: every CV with a ``sigma_`` column).
    ranges : list of (float, float), optional
        Grid range per CV in CV units (default: periodic domain or hills ± 3σ).
    n_hills : int, optional
        Use only the first ``n_hills`` hills (convergence checks).
    """
    table = hills if isinstance(hills, PlumedTable) else read_plumed_file(hills)
    names = _cv_names(table, cv_names)
    periodic = [table.periodic.get(n) for n in names]
    values = [table[n][:n_hills] for n in names]
    pad = [3 * float(table[f"sigma_{n}"].max()) for n in names]
    _, axes = _grid(values, pad, periodic, bins, ranges)
    used = PlumedTable(
        table.fields, table.data[:n_hills], table.periodic, table.constants
    )
    points = np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    f = -hills_bias(used, names, points).reshape([len(a) for a in axes])
    return FreeEnergySurface(
        tuple(names), tuple(axes), (f - f.min()) * KJMOL, temperature_K, tuple(periodic)
    )


def final_bias(
    hills: PlumedTable, cv_names: list[str], samples: NDArray[np.float64]
) -> Any:
    """Bias V(s) in kJ/mol of all ``hills`` at ``samples`` (n_samples, n_cvs)."""
    gamma = hills["biasf"][0] if "biasf" in hills.fields else np.inf
    scale = 1.0 if np.isinf(gamma) else (gamma - 1.0) / gamma  # undo γ/(γ-1) of HILLS
    return scale * hills_bias(hills, cv_names, samples)


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
    standard error of the block histograms, σ_F = kT σ_P / P.
    """
    table = colvar if isinstance(colvar, PlumedTable) else read_plumed_file(colvar)
    names = cv_names or [f for f in table.fields[1:] if "." not in f]
    if not 1 <= len(names) <= 2:
        raise ValueError(f"expected 1 or 2 CVs, got {names}; pass cv_names=[...]")
    first = int(discard_fraction * len(table.data))
    samples = np.stack([table[n][first:] for n in names], axis=1)
    kt = kT_kJmol(temperature_K)
    if "metad.rbias" in table.fields:
        logw = table["metad.rbias"][first:] / kt
    elif hills is not None:
        h = hills if isinstance(hills, PlumedTable) else read_plumed_file(hills)
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
    edges, axes = _grid(list(samples.T), [0.0] * len(names), periodic, bins, ranges)
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


# ------------------------------------------------------------ minima and barriers
def _neighbours(
    index: tuple[int, ...], shape: tuple[int, ...], wrap: list[bool]
) -> Any:
    for axis in range(len(shape)):
        for step in (-1, 1):
            j = list(index)
            j[axis] += step
            if wrap[axis]:
                j[axis] %= shape[axis]
            elif not 0 <= j[axis] < shape[axis]:
                continue
            yield tuple(j)


def find_minima(
    fes: FreeEnergySurface, min_depth_kT: float = 1.0
) -> tuple[list[tuple[int, ...]], dict[tuple[int, int], tuple[int, ...]]]:
    """Basins of ``fes`` and the lowest saddle between every pair of them.

    Grid points are flooded in order of increasing free energy (watershed with
    union-find; periodic CVs wrap). A basin shallower than ``min_depth_kT`` below
    the saddle joining it to a deeper basin is merged into that basin.

    Returns
    -------
    minima : list of tuple of int
        Grid indices of the minima, lowest free energy first.
    saddles : dict
        ``{(i, j): grid index}`` of the lowest saddle between minima i < j.
    """
    f = fes.free_energy
    shape, wrap = f.shape, [p is not None for p in fes.periodic]
    order = [np.unravel_index(k, shape) for k in np.argsort(f, axis=None)]
    parent: dict[tuple[int, ...], tuple[int, ...]] = {}
    members: dict[tuple[int, ...], list[tuple[int, ...]]] = {}  # root -> its minima
    saddles: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[int, ...]] = {}

    def root(p: tuple[int, ...]) -> tuple[int, ...]:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for p in order:
        if not np.isfinite(f[p]):
            continue
        parent[p] = p
        members[p] = [p]
        for q in _neighbours(p, shape, wrap):
            if q not in parent or root(p) == root(q):
                continue
            a, b = sorted(
                (root(p), root(q)), key=lambda r: f[r]
            )  # roots are lowest points
            if f[p] - f[b] < min_depth_kT * fes.kT:  # b too shallow to count as a basin
                members[b] = [m for m in members[b] if m != b]
            for m in members[a]:
                for n in members[b]:
                    saddles.setdefault((m, n), p)
            parent[b] = a
            members[a] = members[a] + members.pop(b)
    minima = sorted({m for ms in members.values() for m in ms}, key=lambda m: f[m])
    pairs = {}
    for i, m in enumerate(minima):
        for j, n in enumerate(minima[i + 1 :], start=i + 1):
            pairs[(i, j)] = saddles.get((m, n)) or saddles.get((n, m))
    return minima, {k: v for k, v in pairs.items() if v is not None}


def summarize(fes: FreeEnergySurface, min_depth_kT: float = 1.0) -> dict[str, Any]:
    """JSON-able minima and barriers (kJ/mol, eV and kT) of ``fes``."""
    minima, saddles = find_minima(fes, min_depth_kT)
    kt = fes.kT

    def energies(value_eV: float) -> dict[str, float]:
        return {"kJmol": value_eV / KJMOL, "eV": value_eV, "kT": value_eV / kt}

    def where(index: tuple[int, ...]) -> dict[str, float]:
        return {
            n: float(ax[i])
            for n, ax, i in zip(fes.cv_names, fes.axes, index, strict=True)
        }

    f = fes.free_energy
    return {
        "method": fes.method,
        "temperature_K": fes.temperature_K,
        "cv_names": list(fes.cv_names),
        "kT": energies(kt),
        "minima": [
            {
                "index": k,
                "cv": where(m),
                "free_energy": energies(float(f[m])),
                "error": None if fes.error is None else energies(float(fes.error[m])),
            }
            for k, m in enumerate(minima)
        ],
        "barriers": [
            {
                "from": i,
                "to": j,
                "saddle_cv": where(s),
                "forward": energies(float(f[s] - f[minima[i]])),
                "backward": energies(float(f[s] - f[minima[j]])),
            }
            for (i, j), s in saddles.items()
        ],
    }


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
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
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
