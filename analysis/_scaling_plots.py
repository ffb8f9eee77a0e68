"""PNG plots of scaling data and fits (matplotlib imported lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from analysis._scaling_laws import JointFit, PowerLawFit


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_power_law(
    path: str | Path,
    points: Sequence[tuple[str, ArrayLike, ArrayLike]],
    fit: PowerLawFit | None,
    xlabel: str,
    ylabel: str = "validation loss",
    highlight: tuple[ArrayLike, ArrayLike] | None = None,
) -> Path:
    """Log-log PNG of labelled point series, optional highlighted points and a fit."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for label, xs, ys in points:
        ax.plot(xs, ys, "o-", ms=3, lw=0.8, alpha=0.7, label=label)
    if highlight is not None:
        ax.plot(*highlight, "ks", ms=4, mfc="none", label="frontier")
    if fit is not None:
        allx = np.concatenate([np.ravel(xs) for _, xs, _ in points])
        grid = np.geomspace(allx.min(), allx.max() * 3, 100)
        p = fit.params
        ax.plot(
            grid,
            fit.predict(grid),
            "k--",
            label=(
                f"fit α={p['alpha']:.2f} "
                f"[{fit.ci['alpha'][0]:.2f}, {fit.ci['alpha'][1]:.2f}]"
            ),
        )
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_joint(
    path: str | Path, n: ArrayLike, p: ArrayLike, loss: ArrayLike, fit: JointFit | None
) -> Path:
    """PNG of final loss against training structures, one series per model size."""
    plt = _pyplot()
    n, p, loss = (np.asarray(v, float) for v in (n, p, loss))
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for k, size in enumerate(np.unique(p)):
        sel = p == size
        order = np.argsort(n[sel])
        color = f"C{k % 10}"
        ax.plot(
            n[sel][order], loss[sel][order], "o", color=color, label=f"P={size:.3g}"
        )
        if fit is not None:
            grid = np.geomspace(n.min(), n.max() * 3, 60)
            ax.plot(grid, fit.predict(grid, size), "--", color=color)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="training structures N",
        ylabel="validation loss",
    )
    if fit is not None:
        q = fit.params
        ax.set_title(f"L = E + A/P^{q['alpha']:.2f} + B/N^{q['beta']:.2f}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_steps_law(
    path: str | Path,
    curves: Sequence[tuple[str, float, ArrayLike, ArrayLike]],
    fit: JointFit,
    ylabel: str = "validation loss",
) -> Path:
    """Log-log PNG of learning curves against optimiser steps with ``L(P, S)``.

    ``curves``: ``(label, n_params, steps, loss)`` per run; the fit's ``N`` is
    the number of steps S. Each size's fitted curve is drawn to 10× its steps.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for i, (label, p, steps, loss) in enumerate(curves):
        steps = np.asarray(steps, float)
        ax.plot(steps, loss, "o", ms=3, color=f"C{i}", label=f"{label} (P={p:.3g})")
        grid = np.geomspace(steps.min(), steps.max() * 10, 100)
        ax.plot(grid, fit.predict(grid, np.full_like(grid, p)), "--", color=f"C{i}")
    q = fit.params
    ax.set_title(f"L = E + A/P^{q['alpha']:.2f} + B/S^{q['beta']:.2f}", fontsize=9)
    ax.set(xscale="log", yscale="log", xlabel="optimiser steps S", ylabel=ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
