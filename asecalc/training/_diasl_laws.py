"""Laws-guided growth: when does growing the model pay, by the fitted ``L(P, S)``?

Private: used by :class:`asecalc.training.diasl.DiaSLController` with
``DiaSLConfig.growth = "laws"``. Torch-free.

The law is ``L(P, S) = E + A / P^alpha + B / S^beta`` in parameters P and
optimiser steps S, fitted by ``eformer scale fit`` on every learning-curve
point of a sweep (``fit.json`` → ``fits.steps``). A model of P parameters at
loss L is placed on the law at its *equivalent steps* ``S_eq(P, L)``, the steps
a model of that size needs to reach L; a function-preserving growth keeps L, so
the grown model (P') starts at ``S_eq(P', L)``, and every FLOP after it buys
``1 / fps'`` steps instead of ``1 / fps``. With R FLOPs left, growing after a
further Δ FLOPs ends at

    ``L_final(Δ) = L(P', S_eq(P', L(P, S_eq(P, L) + Δ/fps)) + (R − Δ)/fps')``.

The controller grows when the best Δ (on a grid over [0, R]) falls before the
next validation and beats not growing, ``L(P, S_eq(P, L) + R/fps)``, by more
than :data:`MARGIN`. This is the compute-optimal frontier of the sweep's
curves followed by one model: the small model while it is cheaper per loss,
the grown one from where its curve, shifted to start at the current loss,
ends lower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Relative final-loss gain the law must predict before a growth is made.
MARGIN = 0.01


def fit_params(laws: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """Parameters of fit ``name`` (``"joint"``, ``"steps"``) of a ``fit.json`` dict."""
    return (laws or {}).get("fits", {}).get(name, {}).get("params")


@dataclass(frozen=True)
class StepsLaw:
    """``L(P, S) = E + A / P^alpha + B / S^beta`` (``fit.json`` → ``fits.steps``)."""

    E: float
    A: float
    alpha: float
    B: float
    beta: float

    @classmethod
    def from_fit(cls, laws: dict[str, Any] | None) -> StepsLaw | None:
        """The law of a ``fit.json`` dict, or None if it has none."""
        params = fit_params(laws, "steps")
        return cls.from_params(params) if params else None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> StepsLaw:
        """The law of a fit's ``params`` dict (E, A, alpha, B, beta)."""
        return cls(**{k: float(params[k]) for k in ("E", "A", "alpha", "B", "beta")})

    def floor(self, p: float) -> float:
        """Loss a model of ``p`` parameters approaches with unlimited steps."""
        return self.E + self.A * p**-self.alpha

    def loss(self, p: float, steps: float) -> float:
        """Predicted loss after ``steps`` optimiser steps at ``p`` parameters."""
        return self.floor(p) + self.B * max(steps, 1e-300) ** -self.beta

    def steps_to(self, p: float, loss: float) -> float:
        """Equivalent steps ``S_eq``: steps for a ``p``-parameter model to reach
        ``loss`` (``inf`` at or below its floor)."""
        excess = loss - self.floor(p)
        if excess <= 0 or self.beta <= 0:
            return math.inf
        return (excess / self.B) ** (-1.0 / self.beta)


def recent_loss(phase: list[dict[str, Any]], metric: str, k: int = 3) -> float:
    """Geometric mean of the last ``k`` validations of ``metric``: less noisy
    than the last one alone."""
    return float(np.exp(np.mean(np.log([r[metric] for r in phase[-k:]]))))


def growth_plan(
    law: StepsLaw,
    loss_now: float,
    current: dict[str, float],
    grown: dict[str, float],
    remaining_flops: float,
    check_steps: int,
    n_grid: int = 400,
) -> dict[str, Any]:
    """Predicted final losses of growing now, later, or never.

    Parameters
    ----------
    law : StepsLaw
    loss_now : float
        Current validation loss (the law's metric).
    current, grown : dict
        ``n_params`` and ``flops_per_step`` (training FLOPs per optimiser
        step) of the current model and of the grown one.
    remaining_flops : float
        FLOPs left in the budget.
    check_steps : int
        Steps to the next validation (growth is decided only at validations).
    n_grid : int
        Candidate growth times, evenly spaced over ``[0, remaining_flops]``.

    Returns
    -------
    dict
        ``grow`` (bool: now is the best time and it pays), ``final_never``,
        ``final_now``, ``final_best``, ``best_delay_flops`` and ``reason``.
    """
    p, fps = float(current["n_params"]), float(current["flops_per_step"])
    p_next, fps_next = float(grown["n_params"]), float(grown["flops_per_step"])
    s_eq = law.steps_to(p, loss_now)

    def staying(flops: float) -> float:  # the current model after ``flops`` more
        return law.loss(p, s_eq + flops / fps) if math.isfinite(s_eq) else loss_now

    never = staying(remaining_flops)
    delays = np.linspace(0.0, remaining_flops, n_grid)
    finals = np.empty_like(delays)
    for i, delay in enumerate(delays):
        at_growth = staying(delay)
        start = law.steps_to(p_next, at_growth)
        left = (remaining_flops - delay) / fps_next
        ok = math.isfinite(start)
        finals[i] = law.loss(p_next, start + left) if ok else at_growth
    best = int(np.argmin(finals))
    now, final_best = float(finals[0]), float(finals[best])
    delay = float(delays[best])
    grow = delay < check_steps * fps and final_best < (1 - MARGIN) * never
    reason = (
        f"L(P, steps) law: never grow -> {never:.4g}, grow now -> {now:.4g}, "
        f"best in {delay:.3g} FLOPs -> {final_best:.4g} "
        f"(P {p:.0f} -> {p_next:.0f}, loss now {loss_now:.4g})"
    )
    return {
        "grow": bool(grow),
        "final_never": float(never),
        "final_now": now,
        "final_best": final_best,
        "best_delay_flops": delay,
        "reason": reason,
    }
