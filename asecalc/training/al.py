"""Active learning with uncertainty (ACRe): explore, select, label, retrain.

Each round ``r`` runs five phases, and the state file ``al_state.json`` is
rewritten atomically after every phase, so a run killed at any point resumes
where it stopped (``ActiveLearning(config).run()`` again):

``train``
    Train model ``r`` (an ensemble of K, or one model with dropout) on every
    label so far: from scratch, or fine-tuned from model ``r - 1``
    (``finetune``, the default). A killed training resumes from its checkpoint.
``evaluate``
    Force errors and uncertainty calibration (Spearman of σ vs true error,
    miscalibration area; PNG) on the labelled validation split, and on an
    optional held-out test set. The loop stops here after the last round or
    when the label budget is spent.
``explore``
    MD over temperatures and metadynamics on CVs with model ``r``
    (:mod:`asecalc.training.al_explore`); frames go to ``candidates.extxyz``.
    The loop stops when the largest σ seen is below ``sigma_converged``.
``select``
    ``per_round`` candidates by uncertainty + diversity, or at random
    (:mod:`asecalc.training.al_select`); written to ``selected.extxyz``.
``label``
    The reference labels them in parallel (any Executor; processes by default)
    via :func:`asecalc.training.datagen.label_database`, each label written to
    ``labels.db`` at once with a geometry uid: a restart never labels twice nor
    loses a label. Provenance keys: ``al_round`` (0 seed, r + 1 chosen by model
    r), ``sigma`` (eV/Å), ``source`` (trajectory), ``step``, ``split``.

Outputs: ``labels.db``, ``al_state.json``, ``al_report.json``/``.png`` (labels,
σ distribution, errors per round), ``round_NNN/`` (model, calibration PNGs,
candidates, selection).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from asecalc.config import TrainConfig
from asecalc.fileio import write_json_atomic
from asecalc.training.al_explore import ExploreSettings, explore, parse_explore
from asecalc.training.al_label import count_rows, percentiles
from asecalc.training.al_select import STRATEGIES, check_selection, select
from asecalc.training.uncertainty import (
    calibration_png,
    evaluate_calibration,
    scalar_metrics,
)

if TYPE_CHECKING:
    from ase import Atoms

logger = logging.getLogger(__name__)

PHASES = ("train", "evaluate", "explore", "select", "label")


@dataclass(frozen=True)
class ALConfig:
    """Settings of an active-learning run (see ``eformer al --help``).

    ``reference`` is a calculator spec (``"xtb"``, ``"emt"``, ``"module:Class"``)
    or a picklable zero-argument factory; ``sigma_converged`` in eV/Å;
    ``label_budget`` counts new labels (seed excluded; default
    ``per_round × rounds``); ``weights`` are the extra acquisition weights
    (attention entropy, geometric outlier, density); ``descriptor`` the FPS one;
    ``balance="source"`` shares each round's picks among the explorations.
    """

    seed_data: str
    output_dir: str = "al-out"
    reference: Any = "xtb"
    explore: tuple[str, ...] = ("md:300,600,900",)
    per_round: int = 50
    rounds: int = 10
    label_budget: int | None = None
    ensemble: int = 4
    uncertainty: str = "ensemble"
    dropout_samples: int = 8
    strategy: str = "uncertainty"
    sigma_converged: float = 0.05
    finetune: bool = True
    val_fraction: float = 0.1
    test_data: str | None = None
    preset: str = "S"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    exploration: ExploreSettings = field(default_factory=ExploreSettings)
    pool_factor: float = 3.0
    weights: tuple[float, ...] = (0.0, 0.0, 0.0)
    sigma_window: tuple[float | str, float | str | None] = (0.0, None)
    descriptor: str = "auto"
    balance: str = "none"
    workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {STRATEGIES}, got {self.strategy!r}"
            )
        if self.uncertainty not in ("ensemble", "dropout"):
            raise ValueError(
                f"uncertainty must be 'ensemble' or 'dropout', got {self.uncertainty!r}"
            )
        if self.uncertainty == "ensemble" and self.ensemble < 2:
            raise ValueError(
                f"ensemble uncertainty needs ensemble >= 2 members, got "
                f"{self.ensemble}; pass --ensemble 4 or --uncertainty dropout"
            )
        if self.per_round < 1 or self.rounds < 0:
            raise ValueError(
                f"expected per_round >= 1 and rounds >= 0, got {self.per_round}, "
                f"{self.rounds}"
            )
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        for spec in self.explore:
            parse_explore(spec)
        check_selection(self.sigma_window, self.descriptor, self.balance)

    @property
    def budget(self) -> int:
        """Maximum number of new labels (seed excluded)."""
        if self.label_budget is None:
            return self.per_round * self.rounds
        return self.label_budget

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (a callable reference appears by name)."""
        from asecalc.training.datagen import method_name

        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(
            reference=method_name(self.reference),
            train=self.train.to_dict(),
            exploration=dataclasses.asdict(self.exploration),
        )
        return data


class ActiveLearning:
    """The resumable active-learning loop.

    Parameters
    ----------
    config : ALConfig
    executor : concurrent.futures.Executor, optional
        Runs the labelling tasks (e.g. Dask ``Client.get_executor()``); default a
        process pool of ``config.workers`` (0: in this process).
    after_phase : callable, optional
        ``after_phase(round, phase)`` called once a phase is saved (monitoring,
        tests that interrupt the run between phases).

    Examples
    --------
    >>> from asecalc.training.al import ALConfig, ActiveLearning  # doctest: +SKIP
    >>> report = ActiveLearning(ALConfig("seed.db", "al1", reference="emt")).run()
    """

    def __init__(
        self,
        config: ALConfig,
        executor: Executor | None = None,
        after_phase: Callable[[int, str], None] | None = None,
    ) -> None:
        self.config = config
        self.executor = executor
        self.after_phase = after_phase
        self.out = Path(config.output_dir)
        self.labels = self.out / "labels.db"
        self.state_path = self.out / "al_state.json"
        self._calc: tuple[int, Any] | None = None

    def run(self) -> dict[str, Any]:
        """Run (or resume) the loop to the end; return the report dict."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out / "al_config.json", self.config.to_dict())
        state = self._load_state()
        if state["phase"] is None:
            from asecalc.training.al_label import add_seed

            add_seed(self.config, self.labels, self.executor)
            self._save(state, 0, "seed")
        while not state["done"]:
            r, phase = _next_phase(state)
            state["rounds"].extend(
                {"round": k} for k in range(len(state["rounds"]), r + 1)
            )
            getattr(self, f"_{phase}")(r, state, state["rounds"][r])
            self._save(state, r, phase)
        logger.info("active learning finished: %s", state["stop_reason"])
        return self.report(state, plot=False)

    def _load_state(self) -> dict[str, Any]:
        import json

        if self.state_path.exists():
            state = json.loads(self.state_path.read_text())
            logger.info("resuming after round %d %s", state["round"], state["phase"])
            last, reason = state["rounds"][-1:], state["stop_reason"]
            if state["done"] and reason.startswith(("round", "label")):
                state["done"] = (  # go on if more rounds or labels are asked
                    last[0]["round"] >= self.config.rounds
                    or last[0]["n_new_labels"] >= self.config.budget
                )
            elif state["done"] and reason.startswith("converged"):
                sigma = last[0]["explore"]["sigma_max"]
                state["done"] = sigma < self.config.sigma_converged
            return state
        return {
            "round": 0,
            "phase": None,
            "done": False,
            "stop_reason": "",
            "rounds": [],
        }

    def _save(self, state: dict[str, Any], r: int, phase: str) -> None:
        state["round"], state["phase"] = r, phase
        write_json_atomic(self.state_path, state)
        self.report(state, plot=phase in ("evaluate", "explore") or state["done"])
        if self.after_phase is not None:
            self.after_phase(r, phase)

    def _stop(self, state: dict[str, Any], reason: str) -> None:
        state["done"], state["stop_reason"] = True, reason

    def round_dir(self, r: int) -> Path:
        """Directory of round ``r`` outputs."""
        return self.out / f"round_{r:03d}"

    def model_path(self, r: int) -> Path:
        """Model file trained in round ``r``."""
        return self.round_dir(r) / "train" / "model.pt"

    def calculator(self, r: int) -> Any:
        """The model of round ``r`` with uncertainty."""
        from asecalc.calculator import EformerCalculator

        if self._calc is None or self._calc[0] != r:
            calc = EformerCalculator(
                model=self.model_path(r),
                uncertainty=self.config.uncertainty,
                n_dropout_samples=self.config.dropout_samples,
            )
            self._calc = (r, calc)
        self._calc[1].reset()
        return self._calc[1]

    def _train(self, r: int, state: dict[str, Any], record: dict[str, Any]) -> None:
        from asecalc.training.run import TrainRequest, train_model

        cfg = self.config
        overrides = dict(cfg.model_overrides)
        if cfg.uncertainty == "dropout":
            overrides.setdefault("dropout", 0.1)
        has_val = count_rows(self.labels, "split=val") > 0
        train = dataclasses.replace(cfg.train, seed=cfg.train.seed + r)
        req = TrainRequest(
            data=str(self.labels),
            select="split=train",
            output_dir=str(self.round_dir(r) / "train"),
            val_data=str(self.labels) if has_val else None,
            val_select="split=val" if has_val else None,
            preset=cfg.preset,
            model_overrides=overrides,
            train=train,
            ensemble=cfg.ensemble if cfg.uncertainty == "ensemble" else 1,
            init=str(self.model_path(r - 1)) if cfg.finetune and r > 0 else None,
            resume=True,
            progress=False,
            plots=False,
            includes_base_data=True,
        )
        train_model(req)
        record["n_labels"] = count_rows(self.labels)
        record["n_new_labels"] = count_rows(self.labels, "al_round>0")

    def _evaluate(self, r: int, state: dict[str, Any], record: dict[str, Any]) -> None:
        from asecalc.training.al_label import read_labelled

        calc = self.calculator(r)
        sets = {"val": read_labelled(self.labels, "split=val")}
        if self.config.test_data:
            sets["test"] = read_labelled(self.config.test_data)
        for name, images in sets.items():
            if not images:
                continue
            report = evaluate_calibration(calc, images)
            record[name] = scalar_metrics(report)
            calibration_png(
                report,
                self.round_dir(r) / f"calibration_{name}.png",
                f"round {r}, {name}: {len(images)} structures",
            )
        spent = record["n_new_labels"]
        if r >= self.config.rounds:
            self._stop(state, f"round limit reached ({self.config.rounds} rounds)")
        elif spent >= self.config.budget:
            self._stop(state, f"label budget spent ({spent} of {self.config.budget})")

    def _explore(self, r: int, state: dict[str, Any], record: dict[str, Any]) -> None:
        from asecalc.training.al_label import read_labelled, write_frames

        cfg = self.config
        rng = np.random.default_rng([cfg.seed, r, 1])
        starts = read_labelled(self.labels, "split=train")
        starts = [starts[i] for i in rng.permutation(len(starts))]
        trajs = explore(
            starts,
            self.calculator(r),
            [parse_explore(s) for s in cfg.explore],
            cfg.exploration,
            self.round_dir(r) / "explore",
            seed=cfg.seed + 1000 * r,
        )
        frames = [frame for t in trajs for frame in t.frames]
        write_frames(self.round_dir(r) / "candidates.extxyz", frames)
        sigma = np.array([f.info["sigma_max"] for f in frames])
        max_sigma = max(t.sigma_max for t in trajs)
        record["explore"] = {
            "n_trajectories": len(trajs),
            "n_stopped": sum(t.stopped for t in trajs),
            "n_steps": sum(t.n_steps for t in trajs),
            "n_candidates": len(frames),
            "sigma_max": max_sigma,
            "sigma_percentiles": percentiles(sigma),
        }
        if max_sigma < cfg.sigma_converged:
            why = f"converged: max σ {max_sigma:.4f} < {cfg.sigma_converged} eV/Å"
            self._stop(state, why)
        elif not frames:
            why = "no candidates: every trajectory stopped before its first frame"
            self._stop(state, why + "; lower the interval or raise sigma_stop")

    def _select(self, r: int, state: dict[str, Any], record: dict[str, Any]) -> None:
        from ase.io import read

        from asecalc.training.al_label import read_labelled, write_frames

        cfg = self.config
        candidates = cast(
            "list[Atoms]", read(self.round_dir(r) / "candidates.extxyz", index=":")
        )
        n = min(cfg.per_round, cfg.budget - record["n_new_labels"])
        calc = self.calculator(r) if cfg.strategy == "uncertainty" else None
        labelled = read_labelled(self.labels, "split=train") if calc is not None else []
        rng = np.random.default_rng([cfg.seed, r, 2])
        args: tuple[Any, ...] = (cfg.pool_factor, cfg.weights, cfg.sigma_window)
        args += (cfg.descriptor, cfg.balance)
        chosen = select(candidates, n, cfg.strategy, rng, calc, labelled, *args)
        picked = [candidates[i] for i in chosen]
        val = set(
            np.random.default_rng([cfg.seed, r, 3])
            .permutation(len(picked))[: round(cfg.val_fraction * len(picked))]
            .tolist()
        )
        for k, atoms in enumerate(picked):
            atoms.info["split"] = "val" if k in val else "train"
        write_frames(self.round_dir(r) / "selected.extxyz", picked)
        record["selected"] = {
            "n": len(picked),
            "strategy": cfg.strategy,
            "sigma_percentiles": percentiles(
                np.array([a.info["sigma_max"] for a in picked])
            ),
        }

    def _label(self, r: int, state: dict[str, Any], record: dict[str, Any]) -> None:
        from asecalc.training.al_label import label_selected

        selected = self.round_dir(r) / "selected.extxyz"
        done = label_selected(selected, self.labels, r + 1, self.config, self.executor)
        record["labelled"] = {"written": done.written, "failed": done.failed}
        record["labelled"]["already_present"] = done.skipped

    def report(self, state: dict[str, Any] | None = None, plot: bool = True) -> dict:
        """Write ``al_report.json`` (and ``al_report.png``); return the report."""
        from asecalc.training.al_label import write_report

        state = state if state is not None else self._load_state()
        return write_report(self.out, self.config.to_dict(), state, plot)


def _next_phase(state: dict[str, Any]) -> tuple[int, str]:
    r, phase = state["round"], state["phase"]
    if phase == "seed":
        return 0, "train"
    if phase == "label":
        return r + 1, "train"
    return r, PHASES[PHASES.index(phase) + 1]
