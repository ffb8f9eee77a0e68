"""Fit scaling laws to a finished sweep: ``fit.json`` and the PNG plots.

Private: use :func:`asecalc.training.scale.fit_sweep` and
:func:`~asecalc.training.scale.load_results`. Torch-free.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from asecalc.fileio import write_json_atomic

logger = logging.getLogger(__name__)
#: File a finished sweep run writes into its directory.
RESULT = "result.json"


def load_results(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished run's ``result.json`` under ``sweep_dir/runs``."""
    paths = sorted(Path(sweep_dir).glob(f"runs/*/{RESULT}"))
    if not paths:
        raise ValueError(
            f"no finished runs (runs/*/{RESULT}) under {str(sweep_dir)!r}; "
            "run `eformer scale sweep` first"
        )
    return [json.loads(p.read_text()) for p in paths]


def _try(name: str, fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    try:
        return fn(*args, **kwargs), None
    except ValueError as err:
        logger.warning("%s fit skipped: %s", name, err)
        return None, str(err)


def fit_sweep(
    sweep_dir: str | Path,
    metric: str = "val_loss",
    n_bootstrap: int = 200,
    plots: bool = True,
    budgets: list[float] | None = None,
) -> dict[str, Any]:
    """Fit L(C), L(N), L(P) and L(N, P) to a sweep; write ``fit.json`` and PNGs."""
    from analysis import scaling_fit as sf

    out = Path(sweep_dir)
    runs = load_results(out)
    curves = [
        (
            np.array([r["flops"] for r in run["curve"] if metric in r]),
            np.array([r[metric] for r in run["curve"] if metric in r]),
        )
        for run in runs
    ]
    frontier = sf.compute_frontier(curves)
    finals = np.array(
        [
            [run["n_train"], run["n_params"], run["best"].get(metric, np.nan)]
            for run in runs
        ]
    )
    report: dict[str, Any] = {
        "metric": metric,
        "n_runs": len(runs),
        "fits": {},
        "skipped": {},
    }
    fits: dict[str, Any] = {}
    fits["C"], why_c = _try("L(C)", sf.fit_power_law, *frontier, "C", n_bootstrap)
    for col, name in ((0, "N"), (1, "P")):
        xs = np.unique(finals[:, col])
        best = [np.nanmin(finals[finals[:, col] == x, 2]) for x in xs]
        fits[name], why = _try(
            f"L({name})", sf.fit_power_law, xs, best, name, n_bootstrap
        )
        if why:
            report["skipped"][name] = why
    fits["joint"], why_j = _try(
        "L(N,P)", sf.fit_joint, finals[:, 0], finals[:, 1], finals[:, 2], n_bootstrap
    )
    fits["steps"], why_s = _try("L(P, steps)", fit_steps, runs, metric, n_bootstrap)
    for key, why in (("C", why_c), ("joint", why_j), ("steps", why_s)):
        if why:
            report["skipped"][key] = why
    report["fits"] = {k: v.to_dict() for k, v in fits.items() if v is not None}
    if fits["steps"] is not None:
        report["fits"]["steps"]["form"] = "L = E + A / P^alpha + B / S^beta"
        report["fits"]["steps"]["note"] = STEPS_NOTE
    report["frontier"] = {"flops": frontier[0].tolist(), "loss": frontier[1].tolist()}
    report["runs"] = [
        {k: run[k] for k in ("label", "fraction", "n_train", "n_params", "total_flops")}
        | {metric: run["best"].get(metric)}
        for run in runs
    ]
    if fits["joint"] is not None:
        report["allocation"] = _allocation(fits["joint"], runs, budgets)
    if fits["steps"] is not None:
        report["size_choice"] = size_choice(fits["steps"].params, runs, budgets)
    if plots:
        report["plots"] = _plots(out, runs, curves, frontier, finals, fits, metric)
    write_json_atomic(out / "fit.json", report)
    return report


#: What ``fits.steps`` of ``fit.json`` is fitted on.
STEPS_NOTE = (
    "S = optimiser steps; every learning-curve point in the second half "
    "of each run at the sweep's largest training set; used by "
    "`eformer scale adaptive --diasl.growth laws`"
)


def fit_steps(
    runs: list[dict[str, Any]],
    metric: str = "val_loss",
    n_bootstrap: int = 200,
    skip: float = 0.5,
) -> Any:
    """Fit ``L(P, S) = E + A / P^alpha + B / S^beta`` to the sweep's learning curves.

    Parameters
    ----------
    runs : list of dict
        ``result.json`` contents (``curve`` points with ``flops`` and the
        metric, ``flops_per_step``, ``steps``, ``n_params``, ``n_train``).
    metric : str
    n_bootstrap : int
    skip : float
        Fraction of each run's steps left out at its start, where the loss
        follows the learning-rate warm-up and the first fast fall more than
        the law. On rMD17 aspirin (constant-rate pilot at 2e12 FLOPs, sizes of
        51k, 102k and 153k parameters) skipping the first fifth gave
        ``beta = 1.5`` and predicted a force MAE of 47.4 meV/Å for the
        smallest at 1e13 FLOPs (measured: 31.0); skipping the first half
        predicts 31.7 and, for the middle size, 26.5 (measured: 25.6).

    Returns
    -------
    analysis.scaling_fit.JointFit
        With ``S`` in the place of ``N`` (``params``: E, A, alpha, B, beta).

    Raises
    ------
    ValueError
        With fewer than two model sizes at the largest training set (the
        parameter term is then undetermined) or too few points.
    """
    from analysis.scaling_fit import fit_joint

    top = max(r["n_train"] for r in runs)
    steps, params, loss = [], [], []
    for run in (r for r in runs if r["n_train"] == top):
        for point in run["curve"]:
            s = point["flops"] / run["flops_per_step"]
            if metric in point and s >= skip * run["steps"]:
                steps.append(s)
                params.append(run["n_params"])
                loss.append(point[metric])
    if len(set(params)) < 2:
        raise ValueError(
            "L(P, steps) needs runs of at least two model sizes at the largest "
            f"training set ({top} structures)"
        )
    return fit_joint(steps, params, loss, n_bootstrap)


def size_choice(
    law: dict[str, float], runs: list[dict[str, Any]], budgets: list[float] | None
) -> list[dict[str, Any]]:
    """The swept model size ``L(P, steps)`` predicts best at each budget.

    For every run at the sweep's largest training set, the law's loss after
    ``budget / flops_per_step`` steps of that size, trained alone from scratch
    (the metric of the fit). A law fitted on constant-rate curves ranks the
    sizes; a run that anneals its learning rate ends lower (rMD17 aspirin at
    1e13 FLOPs: 3 %; the GFN2-xTB database: 25 %). Default budgets: 1, 10 and
    100 times the largest run's FLOPs.

    Returns
    -------
    list of dict
        Per budget: ``budget_flops``, ``predicted`` (label -> loss) and ``best``
        (the label with the lowest predicted loss).
    """
    from asecalc.training._diasl_laws import StepsLaw

    steps_law = StepsLaw.from_params(law)
    top = max(r["n_train"] for r in runs)
    sizes = {r["label"]: r for r in runs if r["n_train"] == top}
    out = []
    for budget in _budgets(runs, budgets):
        predicted = {
            label: steps_law.loss(r["n_params"], budget / r["flops_per_step"])
            for label, r in sizes.items()
        }
        best = min(predicted, key=predicted.__getitem__)
        out.append({"budget_flops": budget, "predicted": predicted, "best": best})
    return out


def _allocation(
    joint: Any, runs: list[dict[str, Any]], budgets: list[float] | None
) -> dict[str, Any]:
    """Compute-optimal (P, N) at budgets, at the sweep's median epochs per run."""
    from analysis.scaling_fit import compute_optimal_allocation

    k = float(
        np.median(
            [r["flops_per_step"] / (r["n_params"] * r["batch_size"]) for r in runs]
        )
    )
    epochs = float(
        np.median([r["steps"] * r["batch_size"] / r["n_train"] for r in runs])
    )
    return {
        "flops_per_param_structure": k,
        "epochs": epochs,
        "assumption": "C = k * epochs * P * N with the sweep's median epochs",
        "budgets": [
            compute_optimal_allocation(joint, c, k * epochs)
            for c in _budgets(runs, budgets)
        ],
    }


def _budgets(runs: list[dict[str, Any]], budgets: list[float] | None) -> list[float]:
    """``budgets``, or 1, 10 and 100 times the sweep's largest run's FLOPs."""
    top = max(r["total_flops"] for r in runs)
    return budgets or [top, 10 * top, 100 * top]


def _plots(
    out: Path,
    runs: list[dict[str, Any]],
    curves: list[Any],
    frontier: Any,
    finals: np.ndarray,
    fits: dict[str, Any],
    metric: str = "val_loss",
) -> dict[str, str]:
    from analysis import scaling_fit as sf

    paths = {
        "C": sf.plot_power_law(
            out / "loss_vs_compute.png",
            [
                (f"{r['label']} N={r['n_train']}", c, v)
                for r, (c, v) in zip(runs, curves, strict=True)
            ],
            fits["C"],
            "training FLOPs C",
            highlight=frontier,
        )
    }
    for col, name, label in (
        (0, "N", "training structures N"),
        (1, "P", "parameters P"),
    ):
        xs = np.unique(finals[:, col])
        best = [np.nanmin(finals[finals[:, col] == x, 2]) for x in xs]
        paths[name] = sf.plot_power_law(
            out / f"loss_vs_{name}.png",
            [("best over runs", xs, best)],
            fits[name],
            label,
        )
    paths["joint"] = sf.plot_joint(
        out / "loss_joint.png", finals[:, 0], finals[:, 1], finals[:, 2], fits["joint"]
    )
    if fits.get("steps") is not None:
        from analysis._scaling_plots import plot_steps_law

        top = max(r["n_train"] for r in runs)
        paths["steps"] = plot_steps_law(
            out / "loss_vs_steps.png",
            [
                (r["label"], r["n_params"], c / r["flops_per_step"], v)
                for r, (c, v) in zip(runs, curves, strict=True)
                if r["n_train"] == top
            ],
            fits["steps"],
            metric,
        )
    return {k: str(v) for k, v in paths.items()}
