"""Power-law scaling fits of loss against compute, data and parameters.

Pure numpy/scipy (matplotlib lazily for plots), used by
:mod:`asecalc.training.scale` and the tutorials. The forms are those of the
neural scaling-law literature [1]_ [2]_:

* ``L(x) = A · x^-α + E`` for one variable x (compute C in FLOPs, training
  structures N or parameters P), :func:`fit_power_law`;
* ``L(N, P) = E + A / P^α + B / N^β``, :func:`fit_joint`, and the
  compute-optimal split of a budget it implies, :func:`compute_optimal_allocation`.

Fits minimise squared residuals of ``log L`` (losses span decades) with
``scipy.optimize.least_squares`` from several starts; 95 % confidence
intervals come from a residual bootstrap (resampled log residuals added to the
fitted curve, refitted). :func:`marginal_gain` turns a recent stretch of a
learning curve into ``-d ln L / d ln C``, the fractional loss reduction per
fractional increase of compute, which the DiaSL controller thresholds.

References
----------
.. [1] J. Kaplan et al., "Scaling laws for neural language models",
   arXiv:2001.08361 (2020).
.. [2] J. Hoffmann et al., "Training compute-optimal large language models",
   arXiv:2203.15556 (2022).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis._scaling_laws import (
    JointFit,
    PowerLawFit,
    check_xy,
    percentile_intervals,
    power_model,
    residual_bootstrap,
    solve_log_least_squares,
)
from analysis._scaling_plots import plot_joint, plot_power_law

logger = logging.getLogger(__name__)

__all__ = [
    "JointFit",
    "PowerLawFit",
    "compute_frontier",
    "compute_optimal_allocation",
    "fit_joint",
    "fit_power_law",
    "marginal_gain",
    "plot_joint",
    "plot_power_law",
]


def fit_power_law(
    x: ArrayLike,
    loss: ArrayLike,
    variable: str = "x",
    n_bootstrap: int = 200,
    seed: int = 0,
) -> PowerLawFit:
    """Fit ``L = A · x^-alpha + E`` (alpha in [0, 5], 0 <= E <= min L).

    Parameters
    ----------
    x : array_like, shape (n_points,)
        Positive abscissae (FLOPs, structures or parameters).
    loss : array_like, shape (n_points,)
        Positive losses (any unit; E comes out in the same unit).
    variable : str
        Name stored with the fit.
    n_bootstrap : int
        Residual-bootstrap resamples for the 95 % intervals (0 disables).
    seed : int

    Examples
    --------
    >>> x = np.logspace(10, 14, 9)
    >>> fit = fit_power_law(x, 3e3 * x**-0.3 + 0.05, "C", n_bootstrap=0)
    >>> round(fit.params["alpha"], 3)
    0.3
    """
    x, y = check_xy(x, loss, 3)
    x0 = float(np.exp(np.log(x).mean()))
    lx, ly = np.log(x / x0), np.log(y)
    ymin = float(y.min())
    bounds = (np.array([-np.inf, 0.0, 0.0]), np.array([np.inf, 5.0, ymin]))
    starts = [
        np.array([np.log(max(float(np.exp(ly).mean()) - e, 1e-12 * ymin)), a, e])
        for a in (0.1, 0.5, 1.5)
        for e in (0.0, 0.5 * ymin, 0.95 * ymin)
    ]
    theta = solve_log_least_squares(power_model, lx, ly, starts, bounds)
    samples = residual_bootstrap(power_model, lx, ly, theta, bounds, n_bootstrap, seed)

    def natural(t: NDArray) -> NDArray:  # (log A', alpha, E) -> (A, alpha, E)
        t = np.atleast_2d(t)
        return np.column_stack([np.exp(t[:, 0]) * x0 ** t[:, 1], t[:, 1], t[:, 2]])

    best = natural(theta)[0]
    nat = natural(samples) if len(samples) else np.empty((0, 3))
    names = ("A", "alpha", "E")
    rms = float(np.sqrt(np.mean((np.log(power_model(theta, lx)) - ly) ** 2)))
    return PowerLawFit(
        variable,
        dict(zip(names, map(float, best), strict=True)),
        percentile_intervals(names, nat, best),
        len(y),
        rms,
        nat,
    )


def fit_joint(
    n: ArrayLike, p: ArrayLike, loss: ArrayLike, n_bootstrap: int = 200, seed: int = 0
) -> JointFit:
    """Fit ``L(N, P) = E + A / P^alpha + B / N^beta`` (exponents in [0, 3]).

    Parameters
    ----------
    n : array_like, shape (n_points,)
        Training structures of each run.
    p : array_like, shape (n_points,)
        Parameters of each run's model.
    loss : array_like, shape (n_points,)
        Final (best) validation loss of each run.
    """
    n, p = np.ravel(np.asarray(n, float)), np.ravel(np.asarray(p, float))
    if n.shape != p.shape:
        raise ValueError(
            f"n and p must have the same length, got {n.size} and {p.size}"
        )
    xy = np.column_stack([n, p])
    xy, y = check_xy(xy, loss, 5)
    n0, p0 = (float(np.exp(np.log(xy[:, k]).mean())) for k in (0, 1))
    lx = np.column_stack([np.log(xy[:, 0] / n0), np.log(xy[:, 1] / p0)])
    ly, ymin = np.log(y), float(y.min())

    def model(t: NDArray, v: NDArray) -> NDArray:
        e, log_a, alpha, log_b, beta = t
        return e + np.exp(log_a - alpha * v[:, 1]) + np.exp(log_b - beta * v[:, 0])

    bounds = (
        np.array([0.0, -np.inf, 0.0, -np.inf, 0.0]),
        np.array([ymin, np.inf, 3.0, np.inf, 3.0]),
    )
    half = np.log(0.5 * float(y.mean()))
    starts = [
        np.array([e, half, a, half, b])
        for e in (0.0, 0.5 * ymin)
        for a in (0.2, 0.8)
        for b in (0.2, 0.8)
    ]
    theta = solve_log_least_squares(model, lx, ly, starts, bounds)
    samples = residual_bootstrap(model, lx, ly, theta, bounds, n_bootstrap, seed)

    def natural(t: NDArray) -> NDArray:
        t = np.atleast_2d(t)
        return np.column_stack(
            [
                t[:, 0],
                np.exp(t[:, 1]) * p0 ** t[:, 2],
                t[:, 2],
                np.exp(t[:, 3]) * n0 ** t[:, 4],
                t[:, 4],
            ]
        )

    best = natural(theta)[0]
    nat = natural(samples) if len(samples) else np.empty((0, 5))
    names = ("E", "A", "alpha", "B", "beta")
    rms = float(np.sqrt(np.mean((np.log(model(theta, lx)) - ly) ** 2)))
    return JointFit(
        dict(zip(names, map(float, best), strict=True)),
        percentile_intervals(names, nat, best),
        len(y),
        rms,
        nat,
    )


def compute_optimal_allocation(
    fit: JointFit, compute_flops: float, flops_per_param_structure: float
) -> dict[str, Any]:
    """Compute-optimal parameters and data for a budget, with 95 % intervals.

    Minimises ``A/P^alpha + B/N^beta`` subject to ``C = k · P · N`` (k =
    ``flops_per_param_structure``, the FLOPs per parameter per training
    structure over the whole run, i.e. including the number of epochs):
    ``P* = G (C/k)^(beta/(alpha+beta))``, ``N* = C / (k P*)``,
    ``G = (alpha A / (beta B))^(1/(alpha+beta))`` (Hoffmann et al. 2022, eq. 4).

    Returns
    -------
    dict
        ``compute_flops``, ``params`` and ``structures`` (optimum), their
        ``*_ci95`` from the bootstrap samples, and the predicted ``loss``.
    """
    if compute_flops <= 0 or flops_per_param_structure <= 0:
        raise ValueError(
            "compute_flops and flops_per_param_structure must be positive, got "
            f"{compute_flops} and {flops_per_param_structure}"
        )

    def optimum(
        e: float, a: float, alpha: float, b: float, beta: float
    ) -> tuple[float, float]:
        if alpha <= 0 or beta <= 0:
            return np.nan, np.nan
        ratio = compute_flops / flops_per_param_structure
        g = (alpha * a / (beta * b)) ** (1.0 / (alpha + beta))
        p_opt = g * ratio ** (beta / (alpha + beta))
        if not np.isfinite(p_opt) or p_opt <= 0:
            return np.nan, np.nan
        return p_opt, ratio / p_opt

    q = fit.params
    p_opt, n_opt = optimum(q["E"], q["A"], q["alpha"], q["B"], q["beta"])
    finite = bool(np.isfinite(p_opt))
    out: dict[str, Any] = {
        "compute_flops": compute_flops,
        "params": float(p_opt) if finite else None,
        "structures": float(n_opt) if finite else None,
        "loss": float(fit.predict(n_opt, p_opt)) if finite else None,
    }
    if len(fit.samples) > 1:
        with np.errstate(all="ignore"):
            opts = np.array([optimum(*s) for s in fit.samples])
        opts = opts[np.all(np.isfinite(opts), axis=1)]
        if len(opts) > 1:
            lo, hi = np.percentile(opts, [2.5, 97.5], axis=0)
            out["params_ci95"] = [float(lo[0]), float(hi[0])]
            out["structures_ci95"] = [float(lo[1]), float(hi[1])]
    return out


def compute_frontier(
    curves: Sequence[tuple[ArrayLike, ArrayLike]],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Lower envelope of learning curves: the best loss reached with at most C FLOPs.

    Parameters
    ----------
    curves : sequence of (flops, loss) pairs of arrays

    Returns
    -------
    flops, loss : ndarray, shape (n_frontier,)
        Points at which the running minimum of the loss (over C) decreases.
    """
    pts = [
        (float(c), float(v))
        for cs, ls in curves
        for c, v in zip(np.ravel(cs), np.ravel(ls), strict=True)
        if np.isfinite(v) and c > 0
    ]
    pts.sort()
    out_c, out_l, best = [], [], np.inf
    for c, v in pts:
        if v < best:
            best = v
            out_c.append(c)
            out_l.append(v)
    return np.array(out_c), np.array(out_l)


def marginal_gain(flops: ArrayLike, loss: ArrayLike) -> dict[str, Any]:
    """Marginal gain of compute at the last point of a (recent) learning curve.

    Fits ``L = A C^-alpha + E`` to the points (falls back to a straight line
    in log-log space when fewer than 4 points or the fit fails) and returns
    ``elasticity = -d ln L / d ln C`` (0.1 means 10 % more compute would lower
    the loss by about 1 %) and ``dL_dC`` in loss units per FLOP.
    """
    c, y = np.asarray(flops, float), np.asarray(loss, float)
    if len(c) < 2 or np.any(c <= 0) or np.any(y <= 0):
        raise ValueError(f"need >= 2 positive (flops, loss) points, got {len(c)}")
    c_last = float(c[-1])
    method = "power-law"
    try:
        fit = fit_power_law(c, y, "C", n_bootstrap=0)
        a, alpha, e = fit.params["A"], fit.params["alpha"], fit.params["E"]
        d_loss = -alpha * a * c_last ** (-alpha - 1)
        level = a * c_last**-alpha + e
    except ValueError:
        method = "log-linear"
        slope, intercept = np.polyfit(np.log(c), np.log(y), 1)
        level = float(np.exp(intercept) * c_last**slope)
        d_loss = slope * level / c_last
    return {
        "elasticity": float(-d_loss * c_last / level),
        "dL_dC": float(d_loss),
        "flops": c_last,
        "method": method,
        "n_points": len(c),
    }
