"""Checkpoints of DiaSL runs: the trainer's ``checkpoint.pt`` plus the controller.

Private: used by :mod:`asecalc.training.diasl` and
:func:`asecalc.training.adaptive.run_adaptive`. The controller's state goes
into the trainer's checkpoint (:meth:`Trainer.state_dict`, written atomically
by the trainer and by the controller), under ``"diasl"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asecalc.checkpoint import safe_torch_load
from asecalc.config import ModelConfig
from asecalc.training.loop import Trainer

#: The trainer's checkpoint file (see :meth:`Trainer.resume`).
CHECKPOINT = "checkpoint.pt"
STATE_FORMAT = "eformer-diasl-state"


class ControlledTrainer(Trainer):
    """Trainer whose learning-rate multiplier is set by the controller each step.

    Its checkpoints carry the controller's state (``controller_state()``)
    under ``"diasl"``.
    """

    controller_state: Callable[[], dict[str, Any]] | None = None

    def lr_multiplier(self, step: int) -> float:
        """Overridden per segment by the controller."""
        return 1.0

    def _train_step(self) -> dict[str, float]:
        self.plateau_scale = self.lr_multiplier(self.step)
        return super()._train_step()

    def _plateau_update(self, loss: float) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        """Trainer state plus the controller's under ``"diasl"``."""
        state = super().state_dict()
        if self.controller_state is not None:
            state["diasl"] = self.controller_state()
        return state


class ControllerState:
    """The DiaSL controller's checkpoint part (mixed into ``DiaSLController``)."""

    settings: dict[str, Any]
    used: float
    restart_step: int
    growths: int
    phase_start: int
    segment: dict[str, Any] | None
    flops: dict[str, Any]
    curve: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    train_set: Any
    start_config: ModelConfig
    pool: Any
    trainer: Trainer

    def state_dict(self) -> dict[str, Any]:
        """The controller's part of ``checkpoint.pt`` (plain values and tensors)."""
        return {
            "format": STATE_FORMAT,
            "settings": self.settings,
            "used": self.used,
            "restart_step": self.restart_step,
            "growths": self.growths,
            "phase_start": self.phase_start,
            "segment": self.segment,
            "flops": self.flops,
            "curve": self.curve,
            "decisions": self.decisions,
            "positions": list(self.train_set.indices),
            "start_model_config": self.start_config.to_dict(),
            "hook_structures": self.pool.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``checkpoint.pt`` (trainer and ``"diasl"`` parts).

        The controller must have been built with the saved model config (the
        model may have grown), ``positions`` and pool (with the hook's
        structures restored, :meth:`AppendableSource.restore_extra`).
        """
        saved = state.get("diasl") or {}
        if saved.get("format") != STATE_FORMAT:
            raise ValueError("not a DiaSL checkpoint (no 'diasl' state)")
        if list(saved["positions"]) != list(self.train_set.indices):
            raise ValueError(
                "the training positions of the checkpoint differ from the "
                "controller's; build it with the saved positions"
            )
        self.trainer.load_state_dict(state)
        self.used, self.restart_step = float(saved["used"]), int(saved["restart_step"])
        self.growths, self.phase_start = int(saved["growths"]), saved["phase_start"]
        self.segment, self.flops = saved["segment"], dict(saved["flops"])
        self.curve, self.decisions = list(saved["curve"]), list(saved["decisions"])
        self.start_config = ModelConfig.from_dict(saved["start_model_config"])


def read_state(
    output_dir: str | Path, settings: dict[str, Any]
) -> dict[str, Any] | None:
    """The saved DiaSL checkpoint of ``output_dir``, or None if there is none.

    Raises
    ------
    ValueError
        If ``checkpoint.pt`` is not from a DiaSL run, or its settings differ
        from ``settings`` (a different run would be continued).
    """
    path = Path(output_dir) / CHECKPOINT
    if not path.exists():
        return None
    state = safe_torch_load(path)
    saved = state.get("diasl") if isinstance(state, dict) else None
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a checkpoint of `eformer scale adaptive`; "
            "use a new --output-dir"
        )
    before = _plain(saved["settings"])
    if isinstance(before.get("diasl"), dict):  # saved before window_span existed:
        before["diasl"].setdefault("window_span", 1.0)  # the last `window` points
        before["diasl"].setdefault("growth", "stall")  # saved before "laws"
        before["diasl"].setdefault("schedule", "wsd")
    before.setdefault("steps_law", None)
    changed = _differences(before, _plain(settings))
    if changed:
        raise ValueError(
            f"cannot resume the adaptive run in {str(output_dir)!r}: its settings "
            f"differ from this command ({'; '.join(changed)}); re-run with the "
            "saved settings to continue, or use a new --output-dir"
        )
    return state


def _plain(value: Any) -> Any:
    """JSON round trip (tuples -> lists), so saved and new settings compare."""
    return json.loads(json.dumps(value, default=str))


def _differences(saved: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(new, dict):
        return [
            line
            for key in sorted({*saved, *new})
            for line in _differences(saved.get(key), new.get(key), f"{prefix}{key}.")
        ]
    if saved == new:
        return []
    return [f"{prefix.rstrip('.')}: saved {saved!r}, now {new!r}"]
