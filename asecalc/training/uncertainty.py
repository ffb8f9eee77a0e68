"""Uncertainty of model predictions and its calibration on labelled data.

Per-atom force uncertainty ``sigma_i`` (eV/Å) is the ensemble (or MC-dropout)
standard deviation of the force on atom ``i``, RMS over x, y, z (as
:class:`~asecalc.EformerCalculator` returns it in ``forces_std``); per-structure
uncertainty is its maximum over atoms. Calibration is measured on structures
with reference forces:

* **Spearman rank correlation** of ``sigma_i`` with the true force error
  ``|F_i - F_i^ref|`` (does a larger σ flag a larger error?);
* **miscalibration area** (Tran et al., Mach. Learn.: Sci. Technol. 1, 025006
  (2020); uncertainty-toolbox): the mean absolute gap between the expected and
  observed fraction of force-component residuals inside the central Gaussian
  interval of width given by σ, over confidence levels 0..1. 0 is perfect,
  0.5 the worst possible.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

logger = logging.getLogger(__name__)


def predict_with_uncertainty(
    calc: Any, images: Sequence[Atoms]
) -> list[dict[str, Any]]:
    """Energies, forces and their uncertainties for many structures.

    Parameters
    ----------
    calc : EformerCalculator
        With ``uncertainty`` set (ensemble with K > 1 members, or MC dropout).
    images : sequence of ase.Atoms

    Returns
    -------
    list of dict
        Per image: ``energy`` (eV), ``forces`` (n_atoms, 3) eV/Å, ``energy_std``
        (eV), ``forces_std`` (n_atoms,) eV/Å.
    """
    if getattr(calc, "uncertainty", None) is None:
        raise ValueError(
            "expected a calculator with uncertainty (EformerCalculator with an "
            "ensemble model or uncertainty='dropout'), got one without; train with "
            "--ensemble K (K > 1) or use a model with dropout > 0"
        )
    return calc.calculate_batch(list(images), ("energy", "forces"))


def spearman(sigma: np.ndarray, error: np.ndarray) -> float:
    """Spearman rank correlation of uncertainty and error (NaN if undefined).

    Parameters
    ----------
    sigma, error : ndarray, shape (n,)
        Predicted uncertainty and observed error in the same unit (eV/Å).
    """
    from scipy.stats import spearmanr

    sigma, error = np.asarray(sigma, float).ravel(), np.asarray(error, float).ravel()
    if len(sigma) < 3 or np.ptp(sigma) == 0 or np.ptp(error) == 0:
        return float("nan")
    return float(spearmanr(sigma, error).statistic)


def calibration_curve(
    residuals: np.ndarray, sigma: np.ndarray, n_levels: int = 99
) -> tuple[np.ndarray, np.ndarray]:
    """Expected vs observed fraction of residuals in central Gaussian intervals.

    Parameters
    ----------
    residuals : ndarray, shape (n,)
        Prediction minus reference (eV/Å), one per force component.
    sigma : ndarray, shape (n,)
        Predicted standard deviation of each residual (eV/Å).
    n_levels : int
        Confidence levels evenly spaced in (0, 1), plus the end points 0 and 1.

    Returns
    -------
    expected, observed : ndarray, shape (n_levels + 2,)
    """
    from scipy.stats import norm

    residuals, sigma = (
        np.asarray(residuals, float).ravel(),
        np.asarray(sigma, float).ravel(),
    )
    if residuals.shape != sigma.shape or not len(residuals):
        raise ValueError(
            f"expected residuals and sigma of equal non-zero length, got "
            f"{residuals.shape} and {sigma.shape}"
        )
    z = np.abs(residuals) / np.maximum(sigma, 1e-12)
    expected = np.linspace(0.0, 1.0, n_levels + 2)
    bounds = norm.ppf(0.5 + 0.5 * expected[1:-1])
    observed = np.concatenate(
        [[0.0], (z[None, :] <= bounds[:, None]).mean(axis=1), [1.0]]
    )
    return expected, observed


def miscalibration_area(residuals: np.ndarray, sigma: np.ndarray) -> float:
    """Area between the calibration curve and the diagonal (0 perfect, 0.5 worst)."""
    expected, observed = calibration_curve(residuals, sigma)
    return float(np.trapezoid(np.abs(observed - expected), expected))


def evaluate_calibration(calc: Any, images: Sequence[Atoms]) -> dict[str, Any]:
    """Force errors and uncertainty calibration of ``calc`` on labelled structures.

    Parameters
    ----------
    calc : EformerCalculator
        With uncertainty (see :func:`predict_with_uncertainty`).
    images : sequence of ase.Atoms
        Each with reference forces in ``atoms.calc`` (e.g. ase.db rows).

    Returns
    -------
    dict
        ``n_structures``; ``forces_mae`` and ``forces_rmse`` (eV/Å, over
        components); ``spearman`` (per-atom σ vs |ΔF_i|); ``spearman_structure``
        (max σ vs max |ΔF_i| per structure); ``miscalibration_area``; and arrays
        ``sigma_atoms``, ``error_atoms`` (n_atoms_total,) eV/Å,
        ``residuals``/``sigma_components`` (3 n_atoms_total,) eV/Å.
    """
    images = list(images)
    if not images:
        raise ValueError("expected at least one labelled structure, got none")
    reference = [np.asarray(a.get_forces(), float) for a in images]
    predicted = predict_with_uncertainty(calc, images)
    residual = np.concatenate(
        [p["forces"] - f for p, f in zip(predicted, reference, strict=True)]
    )
    sigma_atoms = np.concatenate([p["forces_std"] for p in predicted])
    error_atoms = np.linalg.norm(residual, axis=1)
    sigma_max = [float(p["forces_std"].max()) for p in predicted]
    error_max = [
        float(np.linalg.norm(p["forces"] - f, axis=1).max())
        for p, f in zip(predicted, reference, strict=True)
    ]
    return {
        "n_structures": len(images),
        "forces_mae": float(np.abs(residual).mean()),
        "forces_rmse": float(np.sqrt((residual**2).mean())),
        "spearman": spearman(sigma_atoms, error_atoms),
        "spearman_structure": spearman(np.array(sigma_max), np.array(error_max)),
        "miscalibration_area": miscalibration_area(
            residual.ravel(), np.repeat(sigma_atoms, 3)
        ),
        "sigma_atoms": sigma_atoms,
        "error_atoms": error_atoms,
        "residuals": residual.ravel(),
        "sigma_components": np.repeat(sigma_atoms, 3),
    }


def scalar_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able scalar entries of an :func:`evaluate_calibration` report."""
    return {k: v for k, v in report.items() if not isinstance(v, np.ndarray)}


def calibration_png(report: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Draw σ vs true error (per atom) and the calibration curve to a PNG.

    The file is written atomically (temporary file, then rename).
    """
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    ax1.loglog(report["sigma_atoms"], report["error_atoms"], ".", alpha=0.4, ms=3)
    lo = max(min(report["sigma_atoms"].min(), report["error_atoms"].min()), 1e-4)
    hi = max(report["sigma_atoms"].max(), report["error_atoms"].max())
    ax1.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax1.set_xlabel("predicted σ_i (eV/Å)")
    ax1.set_ylabel("true |ΔF_i| (eV/Å)")
    ax1.set_title(f"Spearman ρ = {report['spearman']:.2f}")
    expected, observed = calibration_curve(
        report["residuals"], report["sigma_components"]
    )
    ax2.plot(expected, observed, label="model")
    ax2.fill_between(expected, expected, observed, alpha=0.2)
    ax2.plot([0, 1], [0, 1], "k--", lw=0.8, label="ideal")
    ax2.set_xlabel("expected fraction in interval")
    ax2.set_ylabel("observed fraction")
    ax2.set_title(f"miscalibration area = {report['miscalibration_area']:.3f}")
    ax2.legend()
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.13, top=0.86, wspace=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
