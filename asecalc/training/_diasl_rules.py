"""The DiaSL decision rule: add data or grow the model, and which growth.

Private: used by :class:`asecalc.training.diasl.DiaSLController`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from asecalc.config import ModelConfig
from asecalc.nn import EformerModel
from asecalc.training._diasl_config import DiaSLConfig
from asecalc.training.data import GraphDataset
from asecalc.training.flops import count_parameters
from asecalc.training.growth import grow_model
from asecalc.training.loop import Trainer


def gain_window(
    curve: list[dict[str, Any]], phase_start: int, config: DiaSLConfig
) -> list[dict[str, Any]] | None:
    """Validation points to measure the marginal gain on, or None if not yet.

    Parameters
    ----------
    curve : list of dict
        Validation points in order, each with ``flops`` (training FLOPs so far).
    phase_start : int
        Index of the first point after the last action (0 before any).
    config : DiaSLConfig
        ``window``, ``min_points`` and ``window_span``.

    Returns
    -------
    list of dict or None
        The points of the current phase with ``C >= C_last / window_span``,
        extended back to at least ``window`` points; None while the phase has
        fewer than ``min_points`` points or spans less than ``window_span``
        in compute.
    """
    phase = curve[phase_start:]
    if len(phase) < config.min_points:
        return None
    last = phase[-1]["flops"]
    if last < config.window_span * phase[0]["flops"]:
        return None
    inside = [p for p in phase if p["flops"] * config.window_span >= last]
    return phase[-max(len(inside), config.window) :]


def growth_kind(
    current: ModelConfig, start: ModelConfig, config: DiaSLConfig, growths: int
) -> str | None:
    """``"depth"`` or ``"width"`` (alternating) within the limits, else None."""
    options = []
    if current.n_layers < config.max_layers:
        options.append("depth")
    if current.radial_hidden * 2 <= start.radial_hidden * config.max_width_factor:
        options.append("width")
    if not options:
        return None
    return options[growths % len(options)]


def choose_action(
    gap: float,
    kind: str | None,
    model: EformerModel,
    n_train: int,
    laws: dict[str, float] | None,
    slice_size: int,
    gap_threshold: float,
) -> tuple[str, str]:
    """``("data" | "grow", reason)`` from the joint law if given, else the gap.

    Parameters
    ----------
    gap : float
        ``(L_val - L_train) / L_val``.
    kind : str or None
        Growth that would be applied (:func:`growth_kind`).
    model : EformerModel
        Current model (its parameter count, and the grown one's).
    n_train : int
        Current training structures.
    laws : dict, optional
        Parameters ``E, A, alpha, B, beta`` of ``L(N, P)``.
    """
    p = count_parameters(model)
    if laws and kind is not None:
        q = laws

        def law(n_: float, p_: float) -> float:
            return q["E"] + q["A"] * p_ ** -q["alpha"] + q["B"] * n_ ** -q["beta"]

        bigger = count_parameters(grow_model(model, kind))
        d_data = law(n_train, p) - law(n_train + slice_size, p)
        d_model = (law(n_train, p) - law(n_train, bigger)) * p / bigger  # per FLOP
        choice = "data" if d_data >= d_model else "grow"
        return choice, (
            f"joint law: ΔL(+{slice_size} structures)={d_data:.4g} vs "
            f"ΔL(P {p}->{bigger}, per FLOP)={d_model:.4g}"
        )
    if kind is None:
        return "data", "model at its growth limit"
    if gap > gap_threshold:
        return "data", f"train/val gap {gap:.2f} > {gap_threshold}: data-limited"
    return (
        "grow",
        f"train/val gap {gap:.2f} <= {gap_threshold}: capacity-limited",
    )


def schedule_factor(config: DiaSLConfig, budget: float, flops: float) -> float:
    """Learning-rate factor after ``flops`` of ``budget`` (``config.schedule``)."""
    start = 0.0 if config.schedule == "cosine" else (1 - config.anneal_fraction)
    start *= budget
    if flops <= start or (config.schedule == "wsd" and config.anneal_fraction <= 0):
        return 1.0
    progress = min((flops - start) / (budget - start), 1.0)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


def probe_loss(
    trainer: Trainer, pool: Any, train_set: GraphDataset, config: DiaSLConfig
) -> float:
    """Training loss on ``config.train_probe`` structures spread over the set."""
    indices = list(train_set.indices)
    k = min(config.train_probe, len(indices))
    picks = np.unique(np.linspace(0, len(indices) - 1, k).round().astype(int))
    probe = GraphDataset(
        pool,
        [indices[i] for i in picks],
        train_set.elements,
        train_set.cutoff,
        train_set.dtype,
    )
    return trainer.evaluate(probe)["loss"]


def carry_optimizer_state(old: Trainer, new: Trainer) -> int:
    """Copy AdamW moments from a model to its grown copy; returns tensors carried.

    Parameters are matched by name. A tensor keeps its moments only if it
    has the same shape and every entry of it has had a gradient
    (``exp_avg_sq > 0``); the others, and new tensors, start Adam afresh.
    Adam's bias correction is one step count per tensor: an entry that never
    had a gradient before growth (the vector outputs of the last block of a
    one-block model, which the scalar readout never reads: 12 % of s1's
    weights) would otherwise take its first gradients with the correction of
    a long-trained tensor, and its steps would be 3-6 times the learning rate
    for hundreds of steps.
    """
    before = dict(old.model.named_parameters())
    carried = 0
    for name, param in new.model.named_parameters():
        state = old.optimizer.state.get(before.get(name))  # type: ignore[arg-type]
        if not state or state["exp_avg_sq"].shape != param.shape:
            continue
        if bool((state["exp_avg_sq"] == 0).any()):
            continue
        new.optimizer.state[param] = {k: v.clone() for k, v in state.items()}
        carried += 1
    return carried


def hand_over(old: Trainer, new: Trainer, kind: str, seed: int) -> None:
    """Move a trainer's state to the trainer of its grown model.

    AdamW moments (:func:`carry_optimizer_state`), the EMA weights (grown the
    same way), step, wall time, history, best validation loss and the RNG.
    """
    carry_optimizer_state(old, new)
    if old.ema is not None and new.ema is not None:
        new.ema.load_state_dict(grow_model(old.ema, kind, seed).state_dict())
    new.step, new.elapsed = old.step, old.elapsed
    new.history, new.best_val = old.history, old.best_val
    new.generator.set_state(old.generator.get_state())


def max_energy_change(
    before: EformerModel, after: EformerModel, dataset: GraphDataset
) -> float:
    """Largest |ΔE| in eV between two models on up to 8 structures (growth check)."""
    batch = dataset.batch(range(min(8, len(dataset))))
    before.eval()
    after.eval()
    e0 = before(batch, compute_forces=False)["energy"].detach()
    e1 = after(batch, compute_forces=False)["energy"].detach()
    return float(np.max(np.abs((e1 - e0).cpu().numpy())))
