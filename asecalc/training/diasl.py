"""DiaSL: diagnose-and-scale training that lets measured scaling decide what to grow.

The controller trains in segments of ``eval_every`` steps and counts FLOPs
(:mod:`asecalc.training.flops`). After each validation it fits
``L = A C^-α + E`` to the recent validation losses
(:func:`analysis.scaling_fit.marginal_gain`); when the elasticity
``-d ln L / d ln C`` falls below ``gain_threshold`` it either

* **adds data** from a hook (any callable ``hook(n) -> list of int | list of
  Atoms``: positions in the training pool, or labelled structures, e.g. from an
  active-learning loop; default :class:`~asecalc.training.growth.NextSlice`, the next
  slice of the
  database), when the train/validation gap says the model overfits or the
  fitted joint law ``L(N, P)`` predicts more from data; or
* **grows the model**, function-preservingly: a new attention block whose
  output projections are zero, so the residual block is the identity
  (:func:`~asecalc.training.growth.grow_depth`), or wider radial and readout
  MLPs whose new units have zero outgoing weights
  (:func:`~asecalc.training.growth.grow_width`).

Every decision is logged with its reason in ``adaptive.json``. The learning
rate re-warms after each action and decays (cosine) over the last
``anneal_fraction`` of the budget; training stops when the budget is spent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from asecalc.cli._common import write_json_atomic
from asecalc.config import TrainConfig
from asecalc.nn import EformerModel
from asecalc.training._diasl_config import DiaSLConfig
from asecalc.training.data import GraphDataset
from asecalc.training.flops import count_parameters, measure_step_flops
from asecalc.training.growth import (
    AppendableSource,
    DataHook,
    NextSlice,
    grow_depth,
    grow_width,
)
from asecalc.training.loop import Trainer

logger = logging.getLogger(__name__)


class _ControlledTrainer(Trainer):
    """Trainer whose learning-rate multiplier is set by the controller each step."""

    def lr_multiplier(self, step: int) -> float:
        """Overridden per segment by :class:`DiaSLController`."""
        return 1.0

    def _train_step(self) -> dict[str, float]:
        self.plateau_scale = self.lr_multiplier(self.step)
        return super()._train_step()

    def _plateau_update(self, loss: float) -> None:
        return None


class DiaSLController:
    """Train under a FLOP budget, adding data or growing the model when gains stall.

    Parameters
    ----------
    model : EformerModel
        Start model (normalisation set).
    pool : AppendableSource
        Training pool; ``positions`` of it are trained on.
    positions : list of int
    val_set : GraphDataset
    train : TrainConfig
        ``lr``, ``batch_size``, ``eval_every``, loss weights, ``ema_decay`` are used.
    config : DiaSLConfig
    budget_flops : float
    output_dir : Path
    data_hook : callable, optional
        ``hook(n)``; default :class:`NextSlice` over the rest of the pool.
    laws : dict, optional
        ``fit.json`` of ``eformer scale fit`` (its joint L(N, P) is used).
    """

    def __init__(
        self,
        model: EformerModel,
        pool: AppendableSource,
        positions: list[int],
        val_set: GraphDataset,
        train: TrainConfig,
        config: DiaSLConfig,
        budget_flops: float,
        output_dir: str | Path,
        data_hook: DataHook | None = None,
        laws: dict[str, Any] | None = None,
        slice_size: int = 16,
    ) -> None:
        self.train_config = TrainConfig.from_dict(
            {**train.to_dict(), "schedule": "plateau", "warmup_steps": 0}
        )
        self.config, self.budget = config, float(budget_flops)
        self.output_dir = Path(output_dir)
        self.pool, self.val_set = pool, val_set
        mc = model.config
        self.train_set = GraphDataset(
            pool, positions, mc.elements, mc.cutoff, next(model.parameters()).dtype
        )
        self.hook = data_hook or NextSlice(len(pool), max(positions) + 1)
        self.laws = (laws or {}).get("fits", {}).get("joint", {}).get("params")
        self.slice_size = slice_size
        self.start_config = mc
        self.trainer = self._make_trainer(model)
        self.used, self.restart_step, self.growths = 0.0, 0, 0
        self.curve: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []
        self.flops = self._measure()

    def _make_trainer(self, model: EformerModel) -> _ControlledTrainer:
        return _ControlledTrainer(
            model,
            self.train_set,
            self.val_set,
            self.train_config,
            self.output_dir,
            {"diasl": True},
            progress=False,
        )

    def _measure(self) -> dict[str, Any]:
        return measure_step_flops(
            self.trainer.model,
            self.train_set,
            self.train_config,
            self.config.flops_batches,
            seed=len(self.decisions),
        ).to_dict()

    def _lr(self, step0: int, fps: float) -> Callable[[int], float]:
        used0, cfg = self.used, self.config
        start = (1 - cfg.anneal_fraction) * self.budget

        def multiplier(step: int) -> float:
            warm = min(1.0, (step - self.restart_step + 1) / max(cfg.rewarm_steps, 1))
            c = used0 + (step - step0) * fps
            if c <= start or cfg.anneal_fraction <= 0:
                return warm
            progress = min((c - start) / (self.budget - start), 1.0)
            return warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

        return multiplier

    def run(self) -> dict[str, Any]:
        """Train until the budget is spent; return the summary (``adaptive.json``)."""
        cfg, t = self.config, self.trainer
        phase_start = 0
        while True:
            fps = self.flops["flops_per_step"]
            steps = min(
                self.train_config.eval_every, int((self.budget - self.used) // fps)
            )
            if steps < 1:
                break
            t = self.trainer
            t.lr_multiplier = self._lr(t.step, fps)  # type: ignore[method-assign]
            t.config = TrainConfig.from_dict(
                {**self.train_config.to_dict(), "max_steps": t.step + steps}
            )
            t.train()
            self.used += steps * fps
            self._record(t.history[-1])
            recent = self.curve[max(phase_start, len(self.curve) - cfg.window) :]
            if (
                self.used < (1 - cfg.anneal_fraction) * self.budget
                and len(self.curve) - phase_start >= cfg.min_points
            ):
                from analysis.scaling_fit import marginal_gain

                gain = marginal_gain(
                    [r["flops"] for r in recent], [r["val_loss"] for r in recent]
                )
                self.curve[-1]["elasticity"] = gain["elasticity"]
                if gain["elasticity"] < cfg.gain_threshold:
                    self._act(gain)
                    phase_start = len(self.curve)
        return self._write()

    def _record(self, row: dict[str, Any]) -> None:
        self.curve.append(
            {
                "step": row["step"],
                "flops": self.used,
                "val_loss": row["val_loss"],
                "val_forces_mae_meV_per_A": row.get("val_forces_mae_meV_per_A"),
                "val_energy_mae_meV_per_atom": row.get("val_energy_mae_meV_per_atom"),
                "n_train": len(self.train_set),
                "n_params": self.flops["n_params"],
            }
        )

    def _train_loss(self) -> float:
        probe = GraphDataset(
            self.pool,
            self.train_set.indices[: self.config.train_probe],
            self.train_set.elements,
            self.train_set.cutoff,
            self.train_set.dtype,
        )
        return self.trainer.evaluate(probe)["loss"]

    def _growth_kind(self) -> str | None:
        model_cfg, start = self.trainer.model.config, self.start_config
        options = []
        if model_cfg.n_layers < self.config.max_layers:
            options.append("depth")
        if (
            model_cfg.radial_hidden * 2
            <= start.radial_hidden * self.config.max_width_factor
        ):
            options.append("width")
        if not options:
            return None
        return options[self.growths % len(options)]

    def _choose(self, gap: float, kind: str | None) -> tuple[str, str]:
        """``("data" | "grow", reason)`` from the laws if given, else the gap."""
        n, p = len(self.train_set), self.flops["n_params"]
        if self.laws and kind is not None:
            q = self.laws

            def law(n_: float, p_: float) -> float:
                return q["E"] + q["A"] * p_ ** -q["alpha"] + q["B"] * n_ ** -q["beta"]

            bigger = count_parameters(
                grow_depth(self.trainer.model)
                if kind == "depth"
                else grow_width(self.trainer.model)
            )
            d_data = law(n, p) - law(n + self.slice_size, p)
            d_model = (law(n, p) - law(n, bigger)) * p / bigger  # per FLOP of a step
            choice = "data" if d_data >= d_model else "grow"
            return choice, (
                f"joint law: ΔL(+{self.slice_size} structures)={d_data:.4g} vs "
                f"ΔL(P {p}->{bigger}, per FLOP)={d_model:.4g}"
            )
        if kind is None:
            return "data", "model at its growth limit"
        if gap > self.config.gap_threshold:
            return (
                "data",
                f"train/val gap {gap:.2f} > {self.config.gap_threshold}: data-limited",
            )
        return (
            "grow",
            f"train/val gap {gap:.2f} <= {self.config.gap_threshold}: capacity-limited",
        )

    def _act(self, gain: dict[str, Any]) -> None:
        val = self.curve[-1]["val_loss"]
        train = self._train_loss()
        gap = (val - train) / val
        kind = self._growth_kind()
        choice, reason = self._choose(gap, kind)
        record: dict[str, Any] = {
            "step": self.trainer.step,
            "flops": self.used,
            "elasticity": gain["elasticity"],
            "val_loss": val,
            "train_loss": train,
            "gap": gap,
            "reason": reason,
        }
        if choice == "data":
            added = self._add_data()
            if added:
                record.update(
                    action="add_data", added=added, n_train=len(self.train_set)
                )
            elif kind is not None:
                choice, record["reason"] = "grow", reason + "; data hook exhausted"
            else:
                record["action"] = "none (no data left, model at its limit)"
        if choice == "grow" and kind is not None:
            record.update(action=f"grow_{kind}", **self._grow(kind))
        self.decisions.append(record)
        logger.info(
            "DiaSL decision at %.3g FLOPs: %s (%s)",
            self.used,
            record.get("action"),
            record["reason"],
        )
        self.restart_step = self.trainer.step
        self._write()

    def _add_data(self) -> int:
        new = list(self.hook(self.slice_size))
        positions = [
            int(i) if not isinstance(i, Atoms) else self.pool.append(i) for i in new
        ]
        self.train_set.indices.extend(positions)  # cached graphs keep their positions
        return len(positions)

    def _grow(self, kind: str) -> dict[str, Any]:
        old = self.trainer
        seed = self.train_config.seed + 1 + self.growths

        def grow(m: EformerModel) -> EformerModel:
            return grow_depth(m, seed) if kind == "depth" else grow_width(m, 2, seed)

        model = grow(old.model)
        trainer = self._make_trainer(model)
        if old.ema is not None and trainer.ema is not None:
            trainer.ema.load_state_dict(grow(old.ema).state_dict())
        change = _max_energy_change(
            old.ema or old.model, trainer.ema or trainer.model, self.val_set
        )
        trainer.step, trainer.elapsed = old.step, old.elapsed
        trainer.history, trainer.best_val = old.history, old.best_val
        trainer.generator.set_state(old.generator.get_state())
        self.trainer, self.growths = trainer, self.growths + 1
        before = self.flops["n_params"]
        self.flops = self._measure()
        return {
            "n_params_before": before,
            "n_params": self.flops["n_params"],
            "flops_per_step": self.flops["flops_per_step"],
            "max_energy_change_eV": change,
            "model": model.config.to_dict(),
        }

    def _write(self) -> dict[str, Any]:
        best = [h for h in self.trainer.history if h.get("is_best")]
        summary = {
            "budget_flops": self.budget,
            "flops_used": self.used,
            "model": str(self.output_dir / "model.pt"),
            "best": best[-1] if best else {},
            "decisions": self.decisions,
            "curve": self.curve,
            "final_model_config": self.trainer.model.config.to_dict(),
            "n_train": len(self.train_set),
        }
        write_json_atomic(self.output_dir / "adaptive.json", summary)
        return summary


def _max_energy_change(
    before: EformerModel, after: EformerModel, dataset: GraphDataset
) -> float:
    """Largest |ΔE| in eV between two models on up to 8 structures (growth check)."""
    batch = dataset.batch(range(min(8, len(dataset))))
    before.eval()
    after.eval()
    e0 = before(batch, compute_forces=False)["energy"].detach()
    e1 = after(batch, compute_forces=False)["energy"].detach()
    return float(np.max(np.abs((e1 - e0).cpu().numpy())))
