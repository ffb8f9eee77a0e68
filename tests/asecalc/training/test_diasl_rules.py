"""DiaSL's marginal-gain window: which validation points the stall test reads."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.scaling_fit import marginal_gain
from asecalc.training._diasl_rules import gain_window
from asecalc.training.diasl import DiaSLConfig


def _curve(flops):
    return [{"flops": float(c), "val_loss": 1.0} for c in flops]


def test_window_spans_the_compute_ratio():
    curve = _curve(100 * np.arange(1, 41))  # a validation every 100 "FLOPs"
    cfg = DiaSLConfig(window=5, min_points=4, window_span=2.0)
    points = gain_window(curve, 0, cfg)
    assert [p["flops"] for p in points] == [float(c) for c in range(2000, 4001, 100)]
    # after an action at point 30 the phase must itself span the ratio first
    assert gain_window(curve, 30, cfg) is None  # 3100 .. 4000: span 1.3
    assert gain_window(curve[:13], 10, cfg) is None  # 3 points < min_points
    later = _curve(100 * np.arange(1, 81))
    assert [p["flops"] for p in gain_window(later, 30, cfg)] == [
        float(c) for c in range(4000, 8001, 100)
    ]


def test_span_one_is_the_fixed_window_of_old():
    curve = _curve(100 * np.arange(1, 41))
    cfg = DiaSLConfig(window=5, min_points=4, window_span=1.0)
    assert gain_window(curve, 0, cfg) == curve[-5:]
    assert gain_window(curve, 37, cfg) is None  # 3 points in the phase
    assert gain_window(curve, 36, cfg) == curve[36:]  # 4 points: fewer than window
    for bad in (0.5, float("nan")):  # refused when the run is set up
        with pytest.raises(ValueError, match="window_span"):
            DiaSLConfig(window_span=bad)


def test_span_window_reads_the_true_elasticity_through_noise():
    """A learning curve L = C^-0.5 with 2 % noise, validated every 100 steps.

    The true elasticity is 0.5 everywhere, far above the 0.1 threshold, so no
    stall should ever be seen. Five consecutive points (the old window) often
    read one; the points of the last factor 2 in compute never do.
    """
    rng = np.random.default_rng(0)
    flops = 3.5e8 * 100 * np.arange(1, 301)
    loss = flops**-0.5 * (1 + 0.02 * rng.standard_normal(len(flops)))
    curve = [{"flops": c, "val_loss": y} for c, y in zip(flops, loss, strict=True)]
    old, new = DiaSLConfig(window_span=1.0), DiaSLConfig(window_span=2.0)

    def readings(cfg):
        out = []
        for end in range(20, len(curve) + 1, 10):
            points = gain_window(curve[:end], 0, cfg)
            gain = marginal_gain(
                [p["flops"] for p in points], [p["val_loss"] for p in points]
            )
            out.append(gain["elasticity"])
        return np.array(out)

    old_reads, new_reads = readings(old), readings(new)
    assert np.sum(old_reads < 0.1) >= 5  # 9 of 29 false stalls: actions on noise
    assert np.all(new_reads > 0.3)
    assert np.median(np.abs(new_reads - 0.5)) < 0.05
