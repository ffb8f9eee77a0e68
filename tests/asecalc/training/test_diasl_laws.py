"""Laws-guided DiaSL growth: the L(P, steps) law, its fit, the plan, and a run."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from asecalc.checkpoint import load_model
from asecalc.config import TrainConfig, preset_config
from asecalc.training._diasl_config import DiaSLConfig
from asecalc.training._diasl_laws import StepsLaw, growth_plan
from asecalc.training._diasl_rules import hand_over, schedule_factor
from asecalc.training._scale_fit import fit_steps, size_choice
from asecalc.training.adaptive import AdaptiveRequest, run_adaptive
from asecalc.training.data import GraphDataset, open_sources
from asecalc.training.flops import count_parameters
from asecalc.training.growth import grow_model
from asecalc.training.loop import Trainer, lr_factor
from asecalc.training.model_init import new_model
from tests.asecalc.training._emt_data import TINY_MODEL, write_emt_database

FAST = {"batch_size": 4, "lr": 1e-2, "warmup_steps": 2, "ema_decay": 0.0}
#: A law like rMD17 aspirin's (force MAE in meV/Å against parameters and steps).
LAW = StepsLaw(E=1.9, A=2.3e6, alpha=1.07, B=4.9e3, beta=0.62)
SMALL = {"n_params": 51_537, "flops_per_step": 3.52e8}
BIG = {"n_params": 102_433, "flops_per_step": 7.26e8}


def test_steps_law_places_a_loss_at_its_equivalent_steps():
    p = SMALL["n_params"]
    for steps in (10.0, 1e3, 1e5):
        assert LAW.steps_to(p, LAW.loss(p, steps)) == pytest.approx(steps, rel=1e-9)
    assert LAW.steps_to(p, LAW.floor(p)) == math.inf  # never reached
    assert LAW.floor(BIG["n_params"]) < LAW.floor(p)


def _follow(law, budget, check_steps, start=SMALL, grown=BIG):
    """Train on the law itself, asking growth_plan at every validation."""
    size, steps, used, grew_at = start, 1.0, 0.0, None
    while used < budget:
        dt = min(check_steps, (budget - used) / size["flops_per_step"])
        steps, used = steps + dt, used + dt * size["flops_per_step"]
        loss = law.loss(size["n_params"], steps)
        if grew_at is None and used < budget:
            plan = growth_plan(law, loss, size, grown, budget - used, check_steps)
            if plan["grow"]:
                size, grew_at = grown, used
                steps = law.steps_to(size["n_params"], loss)
    return law.loss(size["n_params"], steps), grew_at


@pytest.mark.parametrize("budget", [3e12, 1e13, 3e13])
def test_following_the_plan_beats_both_fixed_sizes_on_the_law(budget):
    small = LAW.loss(SMALL["n_params"], budget / SMALL["flops_per_step"])
    big = LAW.loss(BIG["n_params"], budget / BIG["flops_per_step"])
    final, grew_at = _follow(LAW, budget, 100)
    assert grew_at is not None
    assert 0 < grew_at < budget
    assert final < min(small, big)
    # growing at any other time on a coarse grid does no better than the plan
    for t in np.linspace(0.02, 0.98, 25) * budget:
        s_eq = LAW.steps_to(BIG["n_params"], LAW.loss(SMALL["n_params"], t / 3.52e8))
        other = LAW.loss(BIG["n_params"], s_eq + (budget - t) / BIG["flops_per_step"])
        assert final <= other * (1 + 1e-3)


def test_no_growth_when_the_bigger_model_reaches_no_lower_loss():
    flat = StepsLaw(E=1.9, A=2.3e6, alpha=0.0, B=4.9e3, beta=0.62)  # P does not help
    final, grew_at = _follow(flat, 1e13, 100)
    assert grew_at is None
    assert final == pytest.approx(flat.loss(1, 1 + 1e13 / SMALL["flops_per_step"]))


def test_tiny_budget_left_means_no_growth():
    loss = LAW.loss(SMALL["n_params"], 2e4)
    plan = growth_plan(LAW, loss, SMALL, BIG, 1e9, 100)  # three steps left
    assert not plan["grow"]
    assert "never grow" in plan["reason"]


def _synthetic_runs(law, sizes, noise, rng):
    runs = []
    for p, fps in sizes:  # equal FLOPs per run, as in a sweep
        steps = int(2e13 / fps)
        flops = np.linspace(0.05, 1.0, 20) * steps * fps
        loss = [law.loss(p, s) for s in flops / fps] * np.exp(
            noise * rng.standard_normal(20)
        )
        runs.append(
            {
                "n_train": 900,
                "n_params": p,
                "flops_per_step": fps,
                "steps": steps,
                "curve": [
                    {"flops": float(c), "val_loss": float(v)}
                    for c, v in zip(flops, loss, strict=True)
                ],
            }
        )
    return runs


def test_fit_steps_recovers_known_exponents():
    rng = np.random.default_rng(0)
    law = StepsLaw(E=0.5, A=3e3, alpha=0.8, B=200.0, beta=0.5)
    sizes = [(2e4, 2e8), (5e4, 4e8), (1.2e5, 9e8)]
    fit = fit_steps(_synthetic_runs(law, sizes, 0.005, rng), n_bootstrap=30)
    assert fit.params["alpha"] == pytest.approx(0.8, rel=0.15)
    assert fit.params["beta"] == pytest.approx(0.5, rel=0.15)
    lo, hi = fit.ci["beta"]
    assert lo <= fit.params["beta"] <= hi
    one = _synthetic_runs(law, sizes[:1], 0.005, rng)
    with pytest.raises(ValueError, match="at least two model sizes"):
        fit_steps(one)


def test_size_choice_follows_the_law_from_small_to_large_budgets():
    law = StepsLaw(E=0.5, A=3e3, alpha=0.8, B=200.0, beta=0.5)
    sizes = [(2e4, 2e8), (5e4, 4e8), (1.2e5, 9e8)]
    runs = _synthetic_runs(law, sizes, 0.0, np.random.default_rng(0))
    for run, label in zip(runs, ("xs", "s", "m"), strict=True):
        run.update(label=label, total_flops=2e13)
    small, large = size_choice(law.__dict__, runs, [1e11, 1e16])
    for choice, budget in ((small, 1e11), (large, 1e16)):
        for run in runs:
            expected = law.loss(run["n_params"], budget / run["flops_per_step"])
            assert choice["predicted"][run["label"]] == pytest.approx(expected)
    # little compute: the cheap model's steps win; much compute: capacity wins
    assert small["best"] == "xs"
    assert large["best"] == "m"
    default = size_choice(law.__dict__, runs, None)
    assert [c["budget_flops"] for c in default] == [2e13, 2e14, 2e15]


def test_schedules():
    wsd, cos = DiaSLConfig(anneal_fraction=0.2), DiaSLConfig(schedule="cosine")
    assert schedule_factor(wsd, 100.0, 79.0) == 1.0
    assert schedule_factor(wsd, 100.0, 90.0) == pytest.approx(0.51)
    assert schedule_factor(cos, 100.0, 0.0) == 1.0
    assert schedule_factor(cos, 100.0, 50.0) == pytest.approx(0.51)
    assert schedule_factor(cos, 100.0, 100.0) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="schedule must be one of wsd, cosine"):
        DiaSLConfig(schedule="linear")
    with pytest.raises(ValueError, match="growth must be one of stall, laws"):
        DiaSLConfig(growth="always")
    # the pilot sweep of a laws run trains at a constant rate after warm-up
    const = TrainConfig(schedule="constant", warmup_steps=2, max_steps=10)
    assert [lr_factor(const, k, 0.0) for k in (0, 1, 5, 9)] == [0.5, 1.0, 1.0, 1.0]
    assert lr_factor(TrainConfig(warmup_steps=2, max_steps=10), 9, 0.0) < 0.1


@pytest.fixture(scope="module")
def emt_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "emt.db"
    return write_emt_database(path, n_molecules=24, n_cells=4)


@pytest.mark.parametrize("kind", ["depth", "width"])
def test_growth_carries_the_adam_moments(emt_db, tmp_path, kind):
    source = open_sources(emt_db, None, False)
    config = preset_config("S", elements=("H", "C", "N", "O", "Cu"), **TINY_MODEL)
    data = GraphDataset(source, range(20), config.elements, config.cutoff)
    val = GraphDataset(source, range(20, 28), config.elements, config.cutoff)
    train = TrainConfig(**FAST, max_steps=3, eval_every=3)
    old = Trainer(
        new_model(config, 0), data, val, train, tmp_path / "a", progress=False
    )
    old.train()
    new = Trainer(grow_model(old.model, kind, 1), data, val, train, tmp_path / "b")
    hand_over(old, new, kind, 1)
    before, carried, fresh = dict(old.model.named_parameters()), 0, 0
    for name, param in new.model.named_parameters():
        state = new.optimizer.state.get(param)
        old_state = old.optimizer.state.get(before.get(name))
        if state:  # carried whole: same shape, every entry had a gradient
            assert torch.equal(state["exp_avg_sq"], old_state["exp_avg_sq"]), name
            assert bool((state["exp_avg_sq"] > 0).all())
            carried += 1
        elif old_state:  # entries without a gradient, or widened: Adam afresh
            lost = old_state["exp_avg_sq"]
            assert lost.shape != param.shape or bool((lost == 0).any()), name
            fresh += 1
    assert carried > 10
    assert fresh > 0  # the one-block model's vector outputs never had a gradient
    assert new.step == old.step == 3


def test_a_grown_block_fades_in_and_a_model_file_keeps_its_scale(emt_db, tmp_path):
    source = open_sources(emt_db, None, False)
    config = preset_config("S", elements=("H", "C", "N", "O", "Cu"), **TINY_MODEL)
    data = GraphDataset(source, range(20), config.elements, config.cutoff)
    val = GraphDataset(source, range(20, 28), config.elements, config.cutoff)
    fast = {**FAST, "ema_decay": 0.9}
    train = TrainConfig(**fast, max_steps=2, eval_every=2, growth_ramp_steps=4)
    grown = grow_model(new_model(config, 0), "depth", 1)
    trainer = Trainer(grown, data, val, train, tmp_path / "run", progress=False)
    trainer.train()  # 2 of the 4 fade-in steps
    assert float(trainer.model.layers[-1].residual_scale) == pytest.approx(0.5)
    assert float(trainer.ema.layers[-1].residual_scale) == pytest.approx(0.5)
    assert float(trainer.model.layers[0].residual_scale) == 1.0
    # the best model, written mid-fade, is the same function when loaded
    bundle = load_model(tmp_path / "run" / "model.pt")
    assert float(bundle.members[0].layers[-1].residual_scale) == pytest.approx(0.5)
    batch = val.batch(range(4))
    expected = trainer.ema(batch, compute_forces=False)["energy"]
    got = bundle.members[0](batch, compute_forces=False)["energy"]
    torch.testing.assert_close(got, expected.detach())
    trainer.config = dataclasses.replace(train, max_steps=6)
    trainer.train()
    assert float(trainer.model.layers[-1].residual_scale) == 1.0


def test_adaptive_grows_when_the_law_says_and_refuses_without_it(emt_db, tmp_path):
    start = {"preset": "S", **TINY_MODEL}
    config = preset_config("S", elements=("H", "C", "N", "O", "Cu"), **TINY_MODEL)
    p = count_parameters(new_model(config, 0))
    # Any loss lies below the start size's floor and far above the grown one's:
    # growing at the first chance is the plan.
    law = {"E": 0.0, "A": 1e6 * p**50.0, "alpha": 50.0, "B": 1e-3, "beta": 0.5}
    laws = tmp_path / "fit.json"
    fit = {"fits": {"steps": {"params": law}}}
    laws.write_text(json.dumps({"metric": "val_loss", **fit}))
    cfg = DiaSLConfig(
        growth="laws",
        schedule="cosine",
        min_points=2,
        max_layers=2,
        max_width_factor=1,
        anneal_fraction=0.1,
        rewarm_steps=2,
        flops_batches=1,
    )
    request = AdaptiveRequest(
        data=str(emt_db),
        output_dir=str(tmp_path / "run"),
        budget_flops=1.0,
        start_size=start,
        val_fraction=0.15,
        train=TrainConfig(**FAST, eval_every=2),
        diasl=cfg,
    )
    with pytest.raises(ValueError, match=r"growth='laws' needs --laws"):
        run_adaptive(request)
    laws.write_text(json.dumps({"metric": "val_forces_rmse_meV_per_A", **fit}))
    request.laws = str(laws)
    with pytest.raises(ValueError, match="fitted on 'val_forces_rmse_meV_per_A'"):
        run_adaptive(request)  # a law in a unit the controller does not record
    laws.write_text(json.dumps({"metric": "val_loss", **fit}))
    from asecalc.training.scale import measure_run_flops

    fps, _ = measure_run_flops(start, str(emt_db), TrainConfig(**FAST), 1, 0)
    request.budget_flops = 14 * fps["flops_per_step"]
    request.laws = str(laws)
    request.output_dir = str(tmp_path / "run2")
    summary = run_adaptive(request)
    (decision,) = summary["decisions"]  # depth once, then at its limit
    assert decision["action"] == "grow_depth"
    assert decision["reason"].startswith("L(P, steps) law")
    assert decision["max_energy_change_eV"] < 1e-9
    assert decision["law"]["final_best"] < decision["law"]["final_never"]
    assert summary["final_model_config"]["n_layers"] == 2
    assert summary["flops_used"] <= request.budget_flops
