"""DiaSL: diagnose-and-scale training that lets measured scaling decide what to grow.

The controller trains in segments of ``eval_every`` steps and counts FLOPs
(:mod:`asecalc.training.flops`). After each validation it fits
``L = A C^-α + E`` (:func:`analysis.scaling_fit.marginal_gain`) to the
validation losses of the last factor ``window_span`` in compute
(:func:`~._diasl_rules.gain_window`); when the elasticity
``-d ln L / d ln C`` falls below ``gain_threshold`` it either

* **adds data** from a hook (any callable ``hook(n) -> list of int | list of
  Atoms``: positions in the training pool, or labelled structures, e.g. from an
  active-learning loop; default :class:`~asecalc.training.growth.NextSlice`,
  the next slice of the database), when the train/validation gap says the
  model overfits or the fitted joint law ``L(N, P)`` predicts more from data; or
* **grows the model**, function-preservingly: a new attention block that
  fades in from the identity over ``growth_ramp_steps``
  (:func:`~asecalc.training.growth.grow_depth`), or wider radial and readout
  MLPs whose new units have zero outgoing weights
  (:func:`~asecalc.training.growth.grow_width`).

With ``DiaSLConfig.growth = "laws"`` the model grows instead at the validation
where the sweep's fitted ``L(P, steps)`` (``--laws``) predicts the lowest final
loss for growing then (:mod:`~._diasl_laws`), and stalls only add data.

Every decision is logged with its reason in ``adaptive.json``. The learning rate
re-warms after each action and decays (cosine) over the last ``anneal_fraction``
(``schedule="wsd"``) or over the whole budget (``"cosine"``).

Resumable: the controller's state (FLOPs spent, decisions, curve, training
positions, the hook's structures, the segment in progress) is saved in the
trainer's ``checkpoint.pt`` under ``"diasl"``, beside the (possibly grown)
model, optimiser, EMA and RNG states: one atomic file, written by the trainer
at the end of each segment (segment not yet booked) and again after booking it
and acting, so a killed run resumes (:meth:`DiaSLController.load_state_dict`)
exactly where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ase import Atoms

from asecalc.checkpoint import atomic_torch_save
from asecalc.config import TrainConfig
from asecalc.fileio import write_json_atomic
from asecalc.nn import EformerModel
from asecalc.training._diasl_checkpoint import (
    CHECKPOINT,
    ControlledTrainer,
    ControllerState,
)
from asecalc.training._diasl_config import DiaSLConfig
from asecalc.training._diasl_laws import StepsLaw, fit_params, growth_plan, recent_loss
from asecalc.training._diasl_rules import (
    choose_action,
    gain_window,
    growth_kind,
    hand_over,
    max_energy_change,
    probe_loss,
    schedule_factor,
)
from asecalc.training.data import GraphDataset
from asecalc.training.flops import measure_step_flops
from asecalc.training.growth import (
    AppendableSource,
    DataHook,
    NextSlice,
    grow_model,
)

logger = logging.getLogger(__name__)
#: Validation metrics of each curve point (what a law's metric may be).
CURVE_METRICS = ("val_loss", "val_forces_mae_meV_per_A", "val_energy_mae_meV_per_atom")


class DiaSLController(ControllerState):
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
    slice_size : int
        Structures asked of the hook per data action.
    settings : dict, optional
        Saved with the state (``run_adaptive`` compares them on resume).
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
        settings: dict[str, Any] | None = None,
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
        self.laws = fit_params(laws, "joint")
        self.steps_law = StepsLaw.from_fit(laws)
        if config.growth == "laws" and self.steps_law is None:
            raise ValueError(
                "growth='laws' needs --laws: a fit.json of `eformer scale fit` "
                "with the L(P, steps) law (fits.steps); re-fit the sweep"
            )
        self.law_metric = (laws or {}).get("metric", "val_loss")
        if config.growth == "laws" and self.law_metric not in CURVE_METRICS:
            raise ValueError(
                f"the L(P, steps) law was fitted on {self.law_metric!r}, which "
                f"the controller does not record; re-fit with --metric one of "
                f"{', '.join(CURVE_METRICS)}"
            )
        self.next_size: dict[str, Any] | None = None  # grown model's P and FLOPs/step
        self.slice_size, self.settings = slice_size, dict(settings or {})
        self.start_config = mc
        self.trainer = self._make_trainer(model)
        self.used, self.restart_step, self.growths = 0.0, 0, 0
        self.phase_start = 0  # curve index of the first point after the last action
        #: Segment trained but not yet booked: step0, steps, used0, fps.
        self.segment: dict[str, Any] | None = None
        self.curve: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []
        self.flops: dict[str, Any] = {}  # measured in run() unless restored

    def _make_trainer(self, model: EformerModel) -> ControlledTrainer:
        trainer = ControlledTrainer(
            model,
            self.train_set,
            self.val_set,
            self.train_config,
            self.output_dir,
            {"diasl": True},
            progress=False,
        )
        trainer.controller_state = self.state_dict
        return trainer

    def _save(self) -> None:
        atomic_torch_save(self.trainer.state_dict(), self.output_dir / CHECKPOINT)

    def _measure(self) -> dict[str, Any]:
        return measure_step_flops(
            self.trainer.model,
            self.train_set,
            self.train_config,
            self.config.flops_batches,
            seed=len(self.decisions),
        ).to_dict()

    def _lr(self, step0: int, used0: float, fps: float) -> Callable[[int], float]:
        cfg = self.config

        def multiplier(step: int) -> float:
            warm = min(1.0, (step - self.restart_step + 1) / max(cfg.rewarm_steps, 1))
            return warm * schedule_factor(
                cfg, self.budget, used0 + (step - step0) * fps
            )

        return multiplier

    def run(self) -> dict[str, Any]:
        """Train until the budget is spent; return the summary (``adaptive.json``).

        Continues a restored state: first books a segment that was trained but
        not booked when the run stopped.
        """
        if not self.flops:
            self.flops = self._measure()
        if self.segment is not None:
            self._train_segment()
            self._book_segment()
        while self._start_segment():
            self._train_segment()
            self._book_segment()
        return self._write()

    def _start_segment(self) -> bool:
        """Plan the next ``eval_every`` steps (fewer at the end); False when spent."""
        fps = self.flops["flops_per_step"]
        steps = min(self.train_config.eval_every, int((self.budget - self.used) // fps))
        if steps < 1:
            return False
        self.segment = {
            "step0": self.trainer.step,
            "steps": steps,
            "used0": self.used,
            "fps": fps,
        }
        return True

    def _train_segment(self) -> None:
        """Train to the end of the segment (the trainer checkpoints there)."""
        seg, t = self.segment, self.trainer
        assert seg is not None
        t.lr_multiplier = self._lr(  # type: ignore[method-assign]
            seg["step0"], seg["used0"], seg["fps"]
        )
        t.config = TrainConfig.from_dict(
            {**self.train_config.to_dict(), "max_steps": seg["step0"] + seg["steps"]}
        )
        t.train()

    def _book_segment(self) -> None:
        """Count its FLOPs, record the validation, maybe act; then checkpoint."""
        seg, cfg = self.segment, self.config
        assert seg is not None
        self.used, self.segment = seg["used0"] + seg["steps"] * seg["fps"], None
        self._record(self.trainer.history[-1])
        recent = gain_window(self.curve, self.phase_start, cfg)
        may_act = self.used < (1 - cfg.anneal_fraction) * self.budget
        if may_act and cfg.growth == "laws" and self._law_growth():
            recent = None
        if may_act and recent:
            from analysis.scaling_fit import marginal_gain

            gain = marginal_gain(
                [r["flops"] for r in recent], [r["val_loss"] for r in recent]
            )
            self.curve[-1]["elasticity"] = gain["elasticity"]
            if gain["elasticity"] < cfg.gain_threshold:
                self._act(gain)
                self.phase_start = len(self.curve)
        self._save()

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

    def _law_growth(self) -> bool:
        """Grow now if the L(P, steps) law says now is the best time; True if grown."""
        phase = self.curve[self.phase_start :]
        kind = growth_kind(
            self.trainer.model.config, self.start_config, self.config, self.growths
        )
        if kind is None or len(phase) < self.config.min_points:
            return False
        assert self.steps_law is not None
        if self.next_size is None or self.next_size["kind"] != kind:
            grown = grow_model(self.trainer.model, kind, 0)
            flops = measure_step_flops(
                grown, self.train_set, self.train_config, self.config.flops_batches
            )
            self.next_size = {"kind": kind, **flops.to_dict()}
        loss_now = recent_loss(phase, self.law_metric)
        remaining, check = self.budget - self.used, self.train_config.eval_every
        plan = growth_plan(
            self.steps_law, loss_now, self.flops, self.next_size, remaining, check
        )
        self.curve[-1]["law_final_never"] = plan["final_never"]
        self.curve[-1]["law_final_best"] = plan["final_best"]
        if not plan["grow"]:
            return False
        record = {"step": self.trainer.step, "flops": self.used, "val_loss": loss_now}
        record.update(reason=plan["reason"], law=plan, action=f"grow_{kind}")
        record.update(self._grow(kind))
        self._log_decision(record)
        self.phase_start, self.next_size = len(self.curve), None
        return True

    def _act(self, gain: dict[str, Any]) -> None:
        val = self.curve[-1]["val_loss"]
        train = probe_loss(self.trainer, self.pool, self.train_set, self.config)
        gap = (val - train) / val
        kind: str | None = None  # with growth="laws" the law grows; stalls add data
        choice, reason = "data", "gain stalled; growth is left to the L(P, steps) law"
        if self.config.growth == "stall":
            kind = growth_kind(
                self.trainer.model.config, self.start_config, self.config, self.growths
            )
            choice, reason = choose_action(
                gap,
                kind,
                self.trainer.model,
                len(self.train_set),
                self.laws,
                self.slice_size,
                self.config.gap_threshold,
            )
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
                if self.config.growth == "laws":
                    record["action"] = "none (no data left)"
        if choice == "grow" and kind is not None:
            record.update(action=f"grow_{kind}", **self._grow(kind))
        self._log_decision(record)

    def _log_decision(self, record: dict[str, Any]) -> None:
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

        model = grow_model(old.model, kind, seed)
        trainer = self._make_trainer(model)
        hand_over(old, trainer, kind, seed)
        change = max_energy_change(
            old.ema or old.model, trainer.ema or trainer.model, self.val_set
        )
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
