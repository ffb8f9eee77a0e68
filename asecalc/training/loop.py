"""The trainer: AdamW, warm-up + cosine/plateau schedule, EMA, atomic checkpoints.

A run writes into its output directory: ``checkpoint.pt`` (everything needed
to resume exactly: model, optimiser, scheduler, EMA, RNG, data position),
``model.pt`` (best EMA weights by validation loss, a model file for
:class:`~asecalc.EformerCalculator`), ``metrics.csv`` and ``train_config.json``.
Data parallelism: when ``torch.distributed`` is initialised (``torchrun``),
each rank takes its share of every global batch and gradients are averaged.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from asecalc.checkpoint import atomic_torch_save, safe_torch_load, save_model
from asecalc.config import TrainConfig
from asecalc.fileio import write_text_atomic
from asecalc.nn import EformerModel
from asecalc.training.data import GraphDataset
from asecalc.training.loss import ErrorAccumulator, training_loss, weighted_loss

logger = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "eformer-train-checkpoint"
#: Consecutive steps with a non-finite loss or gradient before training stops.
MAX_BAD_STEPS = 10


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def lr_factor(config: TrainConfig, step: int, elapsed: float) -> float:
    """Warm-up then cosine decay to 2 % over the run (steps or wall time, whichever
    is further along); 1 after warm-up for the plateau and constant schedules."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule != "cosine":
        return 1.0
    progress = (step - config.warmup_steps) / max(
        config.max_steps - config.warmup_steps, 1
    )
    if config.max_time_s > 0:
        progress = max(progress, elapsed / config.max_time_s)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class Trainer:
    """Train one model (one ensemble member) on a :class:`GraphDataset`.

    Parameters
    ----------
    model : EformerModel
        Normalisation buffers (reference energies, scale) already set.
    train_set, val_set : GraphDataset
    config : TrainConfig
    output_dir : Path
    metadata : dict
        Provenance stored in the model file.
    bootstrap : bool
        Sample training structures with replacement (ensemble diversity).
    """

    def __init__(
        self,
        model: EformerModel,
        train_set: GraphDataset,
        val_set: GraphDataset | None,
        config: TrainConfig,
        output_dir: str | Path,
        metadata: dict[str, Any] | None = None,
        bootstrap: bool = False,
        progress: bool = True,
    ) -> None:
        self.model = model
        self.train_set, self.val_set = train_set, val_set
        self.config = config
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.metadata = dict(metadata or {})
        self.bootstrap = bootstrap
        self.progress = progress
        self.rank, self.world = _world()
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for name, p in model.named_parameters():
            (no_decay if p.ndim < 2 or "embedding" in name else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": config.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=config.lr,
        )
        if config.schedule not in ("cosine", "plateau", "constant"):
            raise ValueError(
                "schedule must be 'cosine', 'plateau' or 'constant', "
                f"got {config.schedule!r}"
            )
        self.plateau_scale = 1.0
        self.plateau_bad_evals = 0
        self.ema = copy.deepcopy(model) if config.ema_decay > 0 else None
        self.step = 0
        self.bad_steps = 0  # consecutive steps skipped for a non-finite gradient
        self.elapsed = 0.0
        self.best_val = math.inf
        self.history: list[dict[str, Any]] = []
        self.generator = torch.Generator().manual_seed(config.seed)

    # ---- state -----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (tensors and plain values only)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model_config": self.model.config.to_dict(),
            "train_config": self.config.to_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "best_val": self.best_val,
            "history": self.history,
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "plateau": [self.plateau_scale, self.plateau_bad_evals],
            "generator": self.generator.get_state(),
            "torch_rng": torch.random.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not an eformer training checkpoint")
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.plateau_scale, self.plateau_bad_evals = state["plateau"]
        self.generator.set_state(state["generator"])
        torch.random.set_rng_state(state["torch_rng"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.best_val, self.history = float(state["best_val"]), list(state["history"])

    def resume(self) -> bool:
        """Load ``checkpoint.pt`` from the output directory if present."""
        path = self.output_dir / "checkpoint.pt"
        if not path.exists():
            return False
        self.load_state_dict(safe_torch_load(path))
        logger.info("resumed %s at step %d", path, self.step)
        return True

    # ---- batches ---------------------------------------------------------
    def _batch_positions(self, step: int) -> np.ndarray:
        """Dataset positions of this rank's share of global batch ``step``."""
        n = len(self.train_set)
        global_size = self.config.batch_size * self.world
        per_epoch = max(n // global_size, 1)
        epoch, k = divmod(step, per_epoch)
        rng = np.random.default_rng([self.config.seed, epoch])
        order = rng.integers(0, n, n) if self.bootstrap else rng.permutation(n)
        batch = order[(k * global_size) % n : (k * global_size) % n + global_size]
        return batch[self.rank :: self.world]

    def _train_step(self) -> dict[str, float]:
        cfg = self.config
        batch = self.train_set.batch(self._batch_positions(self.step))
        self.model.train()
        loss, parts = training_loss(self.model, batch, cfg)
        lr = cfg.lr * self.plateau_scale * lr_factor(cfg, self.step, self.elapsed)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        if self.world > 1:
            for p in self.model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.world
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        if not torch.isfinite(norm):  # NaN/inf would poison the weights and Adam
            self.optimizer.zero_grad(set_to_none=False)
            self.bad_steps += 1
            if self.bad_steps >= MAX_BAD_STEPS:
                raise RuntimeError(
                    f"{self.bad_steps} consecutive training steps up to step "
                    f"{self.step} had a non-finite loss or gradient; the weights "
                    "are those before them. Lower --train.lr or check the data "
                    "(overlapping atoms, extreme forces)"
                )
            logger.warning(
                "step %d: non-finite loss or gradient, update skipped", self.step
            )
            return {}
        self.bad_steps = 0
        self.optimizer.step()
        self.model.fade_in(1.0 / max(cfg.growth_ramp_steps, 1))  # grown blocks
        if self.ema is not None:
            with torch.no_grad():
                d = cfg.ema_decay
                for pe, p in zip(
                    self.ema.parameters(), self.model.parameters(), strict=True
                ):
                    pe.mul_(d).add_(p.detach(), alpha=1 - d)
                for be, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
                    be.copy_(b)
        return parts

    # ---- evaluation ------------------------------------------------------
    def evaluate(
        self, dataset: GraphDataset, model: EformerModel | None = None
    ) -> dict[str, float]:
        """Error metrics and weighted loss of ``model`` (EMA by default) on data."""
        model = model or self.ema or self.model
        model.eval()
        acc = ErrorAccumulator()
        cfg = self.config
        total, count = 0.0, 0
        for start in range(0, len(dataset), 16):
            batch = dataset.batch(range(start, min(start + 16, len(dataset))))
            want_stress = cfg.stress_weight > 0 and bool(batch["has_stress"].any())
            pred = model(batch, compute_forces=True, compute_stress=want_stress)
            pred = {k: v.detach() for k, v in pred.items()}
            loss, _ = weighted_loss(
                pred,
                batch,
                cfg.energy_weight,
                cfg.forces_weight,
                cfg.stress_weight,
                cfg.loss,
            )
            total += float(loss) * int(batch["n_graphs"])
            count += int(batch["n_graphs"])
            acc.update(pred, batch)
        metrics = acc.metrics()
        metrics["loss"] = total / max(count, 1)
        return metrics

    # ---- main loop -------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Run until ``max_steps`` or ``max_time_s``.

        Returns the best validation metrics.
        """
        from tqdm.auto import tqdm

        cfg = self.config
        bar = tqdm(
            total=cfg.max_steps if cfg.max_steps < 10**9 else None,  # else: time-bound
            initial=self.step,
            disable=not self.progress or self.rank,
            desc="train",
            dynamic_ncols=True,
        )
        running: dict[str, float] = {}
        t0 = time.perf_counter() - self.elapsed
        while self.step < cfg.max_steps:
            parts = self._train_step()
            self.step += 1
            for k, v in parts.items():
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            self.elapsed = time.perf_counter() - t0
            bar.update(1)
            bar.set_postfix(
                {k.replace("loss_", ""): f"{v:.3g}" for k, v in running.items()}
            )
            out_of_time = cfg.max_time_s > 0 and self.elapsed >= cfg.max_time_s
            if (
                self.step % cfg.eval_every == 0
                or self.step == cfg.max_steps
                or out_of_time
            ):
                self._checkpoint(running)
            if out_of_time:
                logger.info(
                    "time budget of %.0f s reached at step %d",
                    cfg.max_time_s,
                    self.step,
                )
                break
        bar.close()
        best = [h for h in self.history if h.get("is_best")]
        return best[-1] if best else (self.history[-1] if self.history else {})

    def _plateau_update(self, loss: float) -> None:
        """Halve the learning rate after 5 validations without improvement."""
        if loss < self.best_val:
            self.plateau_bad_evals = 0
            return
        self.plateau_bad_evals += 1
        if self.plateau_bad_evals >= _plateau_patience():
            self.plateau_scale *= 0.5
            self.plateau_bad_evals = 0
            logger.info(
                "validation plateau: learning rate scale now %.3g", self.plateau_scale
            )

    def _checkpoint(self, running: dict[str, float]) -> None:
        val = (
            self.evaluate(self.val_set)
            if self.val_set is not None and len(self.val_set)
            else {}
        )
        if self.config.schedule == "plateau" and val:
            self._plateau_update(val["loss"])
        record = {
            "step": self.step,
            "time_s": round(self.elapsed, 2),
            "lr": self.optimizer.param_groups[0]["lr"],
            **{f"train_{k}": v for k, v in running.items()},
            **{f"val_{k}": v for k, v in val.items()},
        }
        score = val.get("loss", running.get("loss", math.inf))
        record["is_best"] = bool(score < self.best_val)
        self.history.append(record)
        if self.rank:
            return
        if record["is_best"]:
            self.best_val = score
            meta = {
                **self.metadata,
                "step": self.step,
                "val_metrics": dict(val),
            }
            save_model(
                self.output_dir / "model.pt", self.ema or self.model, metadata=meta
            )
        atomic_torch_save(self.state_dict(), self.output_dir / "checkpoint.pt")
        write_metrics_csv(self.history, self.output_dir / "metrics.csv")
        logger.info("step %d: %s", self.step, _short(record))


def _plateau_patience() -> int:
    return 5


def _short(record: dict[str, Any]) -> str:
    keys = ("train_loss", "val_energy_mae_meV_per_atom", "val_forces_mae_meV_per_A")
    return ", ".join(f"{k}={record[k]:.4g}" for k in keys if k in record)


def write_metrics_csv(history: list[dict[str, Any]], path: Path) -> None:
    """Write the history as CSV atomically (columns = union of keys)."""
    columns: list[str] = []
    for row in history:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(path, buffer.getvalue())
