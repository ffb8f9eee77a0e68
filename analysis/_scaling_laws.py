"""Law forms, log-space least squares and residual bootstrap for scaling fits.

Private: import the public names (:class:`PowerLawFit`, :class:`JointFit`) from
:mod:`analysis.scaling_fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares

Model = Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]]


@dataclass
class PowerLawFit:
    """``L(x) = A · x^-alpha + E`` with 95 % bootstrap intervals.

    Attributes
    ----------
    variable : str
        Name of x (``"C"`` FLOPs, ``"N"`` structures, ``"P"`` parameters).
    params : dict
        ``A``, ``alpha``, ``E`` (E in the unit of the loss).
    ci : dict
        ``name -> (low, high)``, 2.5 and 97.5 percentiles of the bootstrap.
    n_points : int
    rms_log_residual : float
        Root mean square of ``log L - log fit``.
    samples : ndarray, shape (n_bootstrap, 3)
        Bootstrap parameter samples (A, alpha, E).
    """

    variable: str
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    n_points: int
    rms_log_residual: float
    samples: NDArray[np.float64] = field(repr=False)

    def predict(self, x: ArrayLike) -> NDArray[np.float64]:
        """Loss at ``x`` (same unit as the fitted x)."""
        p = self.params
        return p["A"] * np.asarray(x, float) ** -p["alpha"] + p["E"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no bootstrap samples)."""
        return {
            "form": f"L = A * {self.variable}^-alpha + E",
            "variable": self.variable,
            "params": self.params,
            "ci95": {k: list(v) for k, v in self.ci.items()},
            "n_points": self.n_points,
            "rms_log_residual": self.rms_log_residual,
        }


@dataclass
class JointFit:
    """``L(N, P) = E + A / P^alpha + B / N^beta`` with 95 % bootstrap intervals.

    Attributes
    ----------
    params : dict
        ``E``, ``A``, ``alpha``, ``B``, ``beta``.
    ci : dict
        ``name -> (low, high)``.
    n_points : int
    rms_log_residual : float
    samples : ndarray, shape (n_bootstrap, 5)
        Bootstrap samples in the order E, A, alpha, B, beta.
    """

    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    n_points: int
    rms_log_residual: float
    samples: NDArray[np.float64] = field(repr=False)

    def predict(self, n: ArrayLike, p: ArrayLike) -> NDArray[np.float64]:
        """Loss for ``n`` training structures and ``p`` parameters."""
        q = self.params
        return (
            q["E"]
            + q["A"] * np.asarray(p, float) ** -q["alpha"]
            + q["B"] * np.asarray(n, float) ** -q["beta"]
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no bootstrap samples)."""
        return {
            "form": "L = E + A / P^alpha + B / N^beta",
            "params": self.params,
            "ci95": {k: list(v) for k, v in self.ci.items()},
            "n_points": self.n_points,
            "rms_log_residual": self.rms_log_residual,
        }


def check_xy(x: ArrayLike, y: ArrayLike, n_params: int) -> tuple[NDArray, NDArray]:
    """Finite points of ``(x, y)``; raise unless positive and enough to fit."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}"
        )
    keep = np.isfinite(y) & np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
    x, y = x[keep], y[keep]
    if np.any(y <= 0) or np.any(x <= 0):
        raise ValueError(
            "power-law fits need positive x and loss values; got zeros or negatives"
        )
    if len(y) < n_params + 1:
        raise ValueError(
            f"need at least {n_params + 1} finite points to fit {n_params} parameters, "
            f"got {len(y)}; add more runs (sizes/fractions) or evaluation points"
        )
    return x, y


def solve_log_least_squares(
    model: Model,
    x: NDArray,
    log_y: NDArray,
    starts: list[NDArray],
    bounds: tuple[NDArray, NDArray],
) -> NDArray:
    """Best least-squares solution of ``log y = log model(theta, x)`` over starts."""
    best, best_cost = None, np.inf
    for theta0 in starts:
        theta0 = np.clip(theta0, bounds[0] + 1e-12, bounds[1] - 1e-12)
        try:
            res = least_squares(
                lambda t: np.log(model(t, x)) - log_y,
                theta0,
                bounds=bounds,
                method="trf",
                x_scale="jac",
            )
        except (ValueError, FloatingPointError):
            continue
        if np.isfinite(res.cost) and res.cost < best_cost:
            best, best_cost = res.x, res.cost
    if best is None:
        raise ValueError("power-law fit did not converge from any starting point")
    return best


def residual_bootstrap(
    model: Model,
    x: NDArray,
    log_y: NDArray,
    theta: NDArray,
    bounds: tuple[NDArray, NDArray],
    n_bootstrap: int,
    seed: int,
) -> NDArray:
    """Refits to the fitted curve plus resampled log residuals.

    Returns
    -------
    ndarray, shape (n_converged, n_theta)
        Solutions in ``theta`` space; resamples that do not converge are dropped.
    """
    fitted = np.log(model(theta, x))
    resid = log_y - fitted
    resid = resid - resid.mean()
    rng = np.random.default_rng(seed)
    out = []
    with np.errstate(all="ignore"):
        for _ in range(n_bootstrap):
            y_star = fitted + rng.choice(resid, size=len(resid), replace=True)
            try:
                out.append(solve_log_least_squares(model, x, y_star, [theta], bounds))
            except ValueError:
                continue
    return np.array(out).reshape(-1, len(theta))


def power_model(theta: NDArray, x: NDArray) -> NDArray:
    """``A' exp(-alpha x) + E`` with ``theta = (log A', alpha, E)``, x = log(x / x0)."""
    log_a, alpha, e = theta
    return np.exp(log_a - alpha * x) + e


def percentile_intervals(
    names: Sequence[str], samples: NDArray, best: NDArray
) -> dict[str, tuple[float, float]]:
    """``name -> (2.5, 97.5) percentiles`` of the samples (``best`` if < 2)."""
    if len(samples) < 2:
        return {n: (float(b), float(b)) for n, b in zip(names, best, strict=True)}
    lo, hi = np.percentile(samples, [2.5, 97.5], axis=0)
    return {n: (float(a), float(b)) for n, a, b in zip(names, lo, hi, strict=True)}
