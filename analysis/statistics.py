"""Error bars for correlated time series: autocorrelation, blocking, equilibration.

Pure numpy. Used by :mod:`analysis.ti` to put error bars on window averages of
``dU/dλ``; useful for any MD observable sampled at a fixed interval.

References
----------
A. D. Sokal, "Monte Carlo methods in statistical mechanics: foundations and new
algorithms" (1997), automatic windowing of the integrated autocorrelation time.
H. Flyvbjerg and H. G. Petersen, J. Chem. Phys. 91, 461 (1989), block averaging.
J. D. Chodera, J. Chem. Theory Comput. 12, 1799 (2016), equilibration detection
by maximising the number of uncorrelated samples.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from types import ModuleType

import numpy as np
from ase import units
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

__all__ = [
    "SeriesStatistics",
    "analyse_series",
    "block_average_error",
    "detect_equilibration",
    "import_pymbar",
    "integrated_autocorrelation_time",
    "mbar_estimate",
]


def import_pymbar() -> ModuleType | None:
    """Import pymbar quietly (it prints a JAX banner on stdout), or None.

    Its import-time timeseries warning is logged at WARNING; the ``pymbar``
    logger is set to ERROR so ``--json`` output and logs stay clean.
    """
    logging.getLogger("pymbar").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pymbar
            import pymbar.timeseries
        except ImportError:
            return None
    module: ModuleType = pymbar
    return module


def _as_series(x: ArrayLike, name: str = "x") -> NDArray[np.float64]:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D time series, got shape {arr.shape}; pass one "
            "observable sampled at a fixed interval"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values; check the sampling run")
    return arr


def integrated_autocorrelation_time(x: ArrayLike, window_factor: float = 5.0) -> float:
    """Integrated autocorrelation time by Sokal's automatic windowing.

    Parameters
    ----------
    x : array_like, shape (n_samples,)
        Time series sampled at a fixed interval (any unit).
    window_factor : float
        Sokal's ``c``: the sum over the autocorrelation function stops at the
        first lag ``W`` with ``W >= c * tau(W)``.

    Returns
    -------
    float
        ``tau_int = 1/2 + sum_{t=1}^{W} rho(t)`` in units of the sampling
        interval, at least 0.5 (uncorrelated samples). The statistical
        inefficiency is ``g = 2 * tau_int`` and the variance of the mean is
        ``var(x) * g / n_samples``.
    """
    arr = _as_series(x)
    n = arr.size
    if n < 4:
        return 0.5
    centred = arr - arr.mean()
    var = float(centred @ centred) / n
    if var <= 0.0:
        return 0.5
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n] / (n * var)
    tau = 0.5
    for lag in range(1, n):
        tau += float(acf[lag])
        if lag >= window_factor * tau:
            break
    return max(tau, 0.5)


def block_average_error(x: ArrayLike, min_blocks: int = 8) -> float:
    """Standard error of the mean by Flyvbjerg–Petersen blocking.

    The series is halved repeatedly (pairwise averages); the error estimate of
    each level is ``std(blocks) / sqrt(n_blocks - 1)``. The returned value is the
    maximum over levels with at least ``min_blocks`` blocks, a conservative
    reading of the plateau.

    Parameters
    ----------
    x : array_like, shape (n_samples,)
        Time series (any unit).
    min_blocks : int
        Smallest number of blocks a level may have to be used.

    Returns
    -------
    float
        Standard error of the mean, same unit as ``x``.
    """
    arr = _as_series(x)
    if arr.size < 2:
        return float("nan")
    best = float(np.std(arr) / np.sqrt(arr.size - 1))
    blocks = arr
    while blocks.size // 2 >= min_blocks:
        half = blocks.size // 2
        blocks = 0.5 * (blocks[: 2 * half : 2] + blocks[1 : 2 * half : 2])
        best = max(best, float(np.std(blocks) / np.sqrt(blocks.size - 1)))
    return best


def detect_equilibration(x: ArrayLike, n_candidates: int = 50) -> tuple[int, float]:
    """Start of the equilibrated region of a series (Chodera 2016).

    Uses :func:`pymbar.timeseries.detect_equilibration` when pymbar is
    installed, otherwise the same algorithm here: pick the start index ``t0``
    that maximises the number of uncorrelated samples ``(n - t0) / g(t0)``.

    Parameters
    ----------
    x : array_like, shape (n_samples,)
        Time series (any unit).
    n_candidates : int
        Number of evenly spaced ``t0`` candidates tried by the numpy fallback.

    Returns
    -------
    t0 : int
        Index of the first equilibrated sample.
    g : float
        Statistical inefficiency of ``x[t0:]`` (in samples).
    """
    arr = _as_series(x)
    if arr.size < 10 or np.ptp(arr) == 0.0:
        return 0, 1.0
    pymbar = import_pymbar()
    if pymbar is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, g, _ = pymbar.timeseries.detect_equilibration(
                arr, nskip=max(1, arr.size // 200)
            )
        return int(t0), float(g)
    best = (0, 1.0, -1.0)
    for t0 in np.unique(np.linspace(0, arr.size // 2, n_candidates).astype(int)):
        g = 2.0 * integrated_autocorrelation_time(arr[t0:])
        n_eff = (arr.size - t0) / g
        if n_eff > best[2]:
            best = (int(t0), g, n_eff)
    return best[0], best[1]


@dataclass(frozen=True)
class SeriesStatistics:
    """Mean of a correlated series with its error bar.

    Attributes
    ----------
    mean : float
        Mean over ``x[t0:]`` (unit of the series).
    error : float
        Standard error of the mean: the larger of the autocorrelation estimate
        ``sqrt(var * 2 tau / n)`` and the blocking estimate.
    tau : float
        Integrated autocorrelation time in samples.
    n_samples : int
        Samples used (after ``t0``).
    t0 : int
        Samples discarded as equilibration.
    block_error : float
        Blocking estimate alone.
    """

    mean: float
    error: float
    tau: float
    n_samples: int
    t0: int
    block_error: float


def analyse_series(x: ArrayLike, detect: bool = True) -> SeriesStatistics:
    """Mean, error bar and autocorrelation time of one series.

    Parameters
    ----------
    x : array_like, shape (n_samples,)
        Time series after any fixed equilibration cut (any unit).
    detect : bool
        Also drop an initial transient found by :func:`detect_equilibration`.

    Returns
    -------
    SeriesStatistics
    """
    arr = _as_series(x)
    if arr.size < 2:
        raise ValueError(
            f"need at least 2 samples to estimate an error bar, got {arr.size}; "
            "run more steps or sample more often"
        )
    t0 = detect_equilibration(arr)[0] if detect else 0
    used = arr[t0:]
    tau = integrated_autocorrelation_time(used)
    acf_error = float(np.sqrt(np.var(used) * 2.0 * tau / used.size))
    blk = block_average_error(used)
    error = max(acf_error, blk) if np.isfinite(blk) else acf_error
    return SeriesStatistics(
        float(used.mean()), error, tau, int(used.size), int(t0), blk
    )


def mbar_estimate(
    lambdas: ArrayLike, du_samples: list[NDArray[np.float64]], temperature_K: float
) -> tuple[float, float]:
    """MBAR estimate of ``F(λ=1) − F(λ=0)`` from samples of ``U_B − U_A``.

    Parameters
    ----------
    lambdas : array_like, shape (n_lambdas,)
        λ of each sampled window.
    du_samples : list of ndarray, shape (n_samples_k,)
        Uncorrelated samples of ``U_B − U_A`` in eV from each window.
    temperature_K : float

    Returns
    -------
    delta_F_eV, error_eV : float
        NaN if pymbar is not installed.
    """
    pymbar = import_pymbar()
    if pymbar is None:
        logger.warning("pymbar not installed: no MBAR cross-check (pip install pymbar)")
        return float("nan"), float("nan")
    beta = 1.0 / (units.kB * temperature_K)
    sampled = np.asarray(lambdas, dtype=float)
    states = np.unique(np.concatenate([[0.0], sampled, [1.0]]))
    n_k = np.zeros(states.size, dtype=int)
    for lam, du in zip(sampled, du_samples, strict=True):
        n_k[np.searchsorted(states, lam)] += len(du)
    order = np.argsort(sampled, kind="stable")
    du_all = np.concatenate([du_samples[i] for i in order])
    u_kn = beta * states[:, None] * du_all[None, :]  # U_A is common to every state
    mbar = pymbar.MBAR(u_kn, n_k, solver_protocol="robust")
    diff = mbar.compute_free_energy_differences()
    kt = 1.0 / beta
    return float(kt * diff["Delta_f"][0, -1]), float(kt * diff["dDelta_f"][0, -1])
