"""Training loss and error metrics (energy per atom, forces, stress)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from asecalc.config import TrainConfig


def _penalty(diff: torch.Tensor, kind: str, delta: float = 0.01) -> torch.Tensor:
    if kind == "mse":
        return diff.pow(2)
    if kind == "huber":
        return torch.nn.functional.huber_loss(
            diff, torch.zeros_like(diff), reduction="none", delta=delta
        )
    raise ValueError(f"loss must be 'mse' or 'huber', got {kind!r}")


def weighted_loss(
    pred: dict[str, Any],
    batch: dict[str, Any],
    energy_weight: float,
    forces_weight: float,
    stress_weight: float,
    kind: str = "mse",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss = w_E·⟨(ΔE/N)²⟩ + w_F·⟨ΔF²⟩ + w_S·⟨Δσ²⟩ (eV, Å units).

    Returns the scalar loss and its parts (floats) for logging.
    """
    n_atoms = batch["n_atoms"]
    e = _penalty((pred["energy"] - batch["energy_ref"]) / n_atoms, kind).mean()
    total = energy_weight * e
    parts = {"loss_energy": float(e.detach())}
    if forces_weight > 0 and "forces" in pred:
        mask = batch["has_forces"]
        f = _penalty(pred["forces"][mask] - batch["forces_ref"][mask], kind)
        f = f.mean() if f.numel() else pred["forces"].sum() * 0
        total = total + forces_weight * f
        parts["loss_forces"] = float(f.detach())
    if stress_weight > 0 and "stress" in pred:
        mask = batch["has_stress"]
        if mask.any():
            s = _penalty(pred["stress"][mask] - batch["stress_ref"][mask], kind).mean()
            total = total + stress_weight * s
            parts["loss_stress"] = float(s.detach())
    parts["loss"] = float(total.detach())
    return total, parts


def training_loss(
    model: torch.nn.Module, batch: dict[str, Any], config: TrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training objective of ``model`` on ``batch`` (one optimisation step).

    Energies, forces (when weighted) with ``create_graph=True`` so the loss can
    be differentiated through them, stress when weighted and labelled in the
    batch, then :func:`weighted_loss` with ``config``'s weights. The trainer
    and the FLOP counter (:mod:`asecalc.training.flops`) both call this, so the
    counted step is the trained one.
    """
    want_stress = config.stress_weight > 0 and bool(batch["has_stress"].any())
    pred = model(
        batch,
        compute_forces=config.forces_weight > 0,
        compute_stress=want_stress,
        create_graph=True,
    )
    return weighted_loss(
        pred,
        batch,
        config.energy_weight,
        config.forces_weight,
        config.stress_weight,
        config.loss,
    )


class ErrorAccumulator:
    """Running MAE/RMSE of energies (meV/atom), forces (meV/Å) and stress (GPa)."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}

    def _add(self, name: str, diff: torch.Tensor) -> None:
        diff = diff.detach().double().flatten()
        if not diff.numel():
            return
        s = self.sums.setdefault(name, [0.0, 0.0, 0.0])
        s[0] += float(diff.abs().sum())
        s[1] += float(diff.pow(2).sum())
        s[2] += diff.numel()

    def update(self, pred: dict[str, Any], batch: dict[str, Any]) -> None:
        """Add a batch of predictions against its labels."""
        from ase.units import GPa

        self._add(
            "energy", 1000 * (pred["energy"] - batch["energy_ref"]) / batch["n_atoms"]
        )
        self._add("energy_total", 1000 * (pred["energy"] - batch["energy_ref"]))
        if "forces" in pred:
            mask = batch["has_forces"]
            self._add(
                "forces", 1000 * (pred["forces"][mask] - batch["forces_ref"][mask])
            )
        if "stress" in pred:
            mask = batch["has_stress"]
            self._add(
                "stress", (pred["stress"][mask] - batch["stress_ref"][mask]) / GPa
            )

    def metrics(self) -> dict[str, float]:
        """``{energy_mae_meV_per_atom, energy_rmse_meV_per_atom, energy_mae_meV,
        forces_mae_meV_per_A, forces_rmse_meV_per_A, stress_mae_GPa, ...}``."""
        units = {
            "energy": "meV_per_atom",
            "energy_total": "meV",
            "forces": "meV_per_A",
            "stress": "GPa",
        }
        out = {}
        for name, (abs_sum, sq_sum, count) in self.sums.items():
            label = "energy" if name == "energy_total" else name
            out[f"{label}_mae_{units[name]}"] = abs_sum / count
            out[f"{label}_rmse_{units[name]}"] = (sq_sum / count) ** 0.5
        return out
