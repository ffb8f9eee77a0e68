"""Power-law fits recover known exponents; allocation, frontier, marginal gain."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from analysis.scaling_fit import (
    compute_frontier,
    compute_optimal_allocation,
    fit_joint,
    fit_power_law,
    marginal_gain,
    plot_joint,
    plot_power_law,
)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_power_law_recovers_exponent_within_ci(rng):
    c = np.logspace(10, 15, 14)
    truth = {"A": 2e3, "alpha": 0.28, "E": 0.04}
    loss = (truth["A"] * c ** -truth["alpha"] + truth["E"]) * np.exp(
        rng.normal(0, 0.02, c.size)
    )
    fit = fit_power_law(c, loss, "C", n_bootstrap=150, seed=1)
    lo, hi = fit.ci["alpha"]
    assert lo <= truth["alpha"] <= hi
    assert hi - lo < 0.1  # informative, not a trivially wide interval
    assert abs(fit.params["alpha"] - truth["alpha"]) < 0.03
    assert fit.ci["E"][0] <= truth["E"] <= fit.ci["E"][1]
    assert fit.rms_log_residual < 0.05
    assert fit.to_dict()["ci95"]["alpha"] == [lo, hi]


def test_noise_free_fit_is_exact():
    n = np.array([50, 100, 200, 400, 800, 1600])
    fit = fit_power_law(n, 5.0 * n**-0.6 + 0.1, "N", n_bootstrap=0)
    assert fit.params["alpha"] == pytest.approx(0.6, rel=1e-4)
    assert fit.params["A"] == pytest.approx(5.0, rel=1e-3)
    assert fit.params["E"] == pytest.approx(0.1, rel=1e-3)
    np.testing.assert_allclose(fit.predict(n), 5.0 * n**-0.6 + 0.1, rtol=1e-6)


def test_joint_fit_recovers_both_exponents(rng):
    n, p = (
        v.ravel()
        for v in np.meshgrid([100, 200, 400, 800, 1600], [1e3, 4e3, 1.6e4, 6.4e4])
    )
    truth = {"E": 0.02, "A": 30.0, "alpha": 0.5, "B": 4.0, "beta": 0.35}
    loss = (
        truth["E"]
        + truth["A"] * p ** -truth["alpha"]
        + truth["B"] * n ** -truth["beta"]
    )
    loss = loss * np.exp(rng.normal(0, 0.01, loss.size))
    fit = fit_joint(n, p, loss, n_bootstrap=100, seed=3)
    for name in ("alpha", "beta"):
        lo, hi = fit.ci[name]
        assert lo <= truth[name] <= hi, (name, fit.ci[name])
        assert hi - lo < 0.3
    np.testing.assert_allclose(fit.predict(n, p), loss, rtol=0.05)


def test_allocation_matches_numerical_optimum():
    n, p = (v.ravel() for v in np.meshgrid([100, 300, 1000, 3000], [1e3, 1e4, 1e5]))
    loss = 0.01 + 20 * p**-0.4 + 3 * n**-0.3
    fit = fit_joint(n, p, loss, n_bootstrap=20)
    budget, k = 1e14, 50.0
    alloc = compute_optimal_allocation(fit, budget, k)
    assert alloc["params"] * alloc["structures"] * k == pytest.approx(budget, rel=1e-9)

    def total(log_p):
        pp = np.exp(log_p)
        return float(fit.predict(budget / (k * pp), pp))

    best = minimize_scalar(
        total, bounds=(0, 40), method="bounded", options={"xatol": 1e-8}
    )
    assert np.log(alloc["params"]) == pytest.approx(best.x, abs=1e-3)
    assert alloc["loss"] == pytest.approx(best.fun, rel=1e-6)
    lo, hi = alloc["params_ci95"]
    assert lo <= alloc["params"] <= hi


def test_frontier_is_running_minimum():
    curves = [
        (np.array([1, 2, 4, 8.0]), np.array([5, 3, 2.5, 2.4])),
        (np.array([2, 4, 8, 16.0]), np.array([6, 2.8, 1.9, 1.5])),
    ]
    c, loss = compute_frontier(curves)
    np.testing.assert_array_equal(c, [1, 2, 4, 8, 16])
    np.testing.assert_array_equal(loss, [5, 3, 2.5, 1.9, 1.5])
    assert np.all(np.diff(loss) < 0)


def test_marginal_gain_elasticity():
    c = np.logspace(8, 10, 6)
    a, alpha, e = 100.0, 0.3, 0.5
    gain = marginal_gain(c, a * c**-alpha + e)
    level = a * c[-1] ** -alpha + e
    assert gain["method"] == "power-law"
    assert gain["elasticity"] == pytest.approx(
        alpha * a * c[-1] ** -alpha / level, rel=1e-3
    )
    assert gain["dL_dC"] < 0
    flat = marginal_gain(c[:3], np.array([1.0, 1.0, 1.0]))
    assert flat["method"] == "log-linear"
    assert abs(flat["elasticity"]) < 1e-9


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="at least 4"):
        fit_power_law([1, 2, 3], [3, 2, 1])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2, 3, 4], [1, 0, 1, 1])
    with pytest.raises(ValueError, match="same length"):
        fit_joint([1, 2], [1, 2, 3], [1, 2])


def test_plots_write_png(tmp_path):
    n = np.array([10, 20, 40, 80, 160.0])
    fit = fit_power_law(n, 2 * n**-0.5 + 0.01, "N", n_bootstrap=10)
    path = plot_power_law(tmp_path / "n.png", [("runs", n, fit.predict(n))], fit, "N")
    assert path.stat().st_size > 1000
    nn, pp = np.meshgrid(n, [1e3, 1e4])
    loss = 0.01 + 5 * pp**-0.3 + 2 * nn**-0.5
    joint = fit_joint(nn.ravel(), pp.ravel(), loss.ravel(), n_bootstrap=0)
    assert (
        plot_joint(tmp_path / "j.png", nn.ravel(), pp.ravel(), loss.ravel(), joint)
        .stat()
        .st_size
        > 1000
    )
