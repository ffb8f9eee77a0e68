"""Scaling: measured FLOPs, function-preserving growth, resumable sweeps, DiaSL."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.calculators.emt import EMT

from asecalc.cli.main import main
from asecalc.config import TrainConfig, preset_config
from asecalc.training._diasl_checkpoint import ControlledTrainer
from asecalc.training.adaptive import AdaptiveRequest, run_adaptive
from asecalc.training.data import GraphDataset, open_sources
from asecalc.training.diasl import DiaSLConfig, DiaSLController
from asecalc.training.flops import (
    count_parameters,
    count_step_flops,
    measure_step_flops,
)
from asecalc.training.growth import grow_depth, grow_width
from asecalc.training.model_init import new_model
from asecalc.training.scale import measure_run_flops, parse_sizes
from tests.asecalc.training._emt_data import TINY_MODEL, label, write_emt_database

TINY = TINY_MODEL
TINY_SIZE = "xs:S:" + ":".join(f"{k}={v}" for k, v in TINY.items())
FAST = {"batch_size": 4, "lr": 1e-2, "warmup_steps": 2, "ema_decay": 0.0}


@pytest.fixture(scope="module")
def emt_db(tmp_path_factory):
    """28 EMT-labelled structures: rattled molecules and strained Cu cells."""
    path = tmp_path_factory.mktemp("data") / "emt.db"
    return write_emt_database(path, n_molecules=24, n_cells=4)


@pytest.fixture(scope="module")
def tiny(emt_db):
    source = open_sources(emt_db, None, False)
    config = preset_config("S", elements=("H", "C", "N", "O", "Cu"), **TINY)
    model = new_model(config, 0)
    with torch.no_grad():  # non-trivial weights everywhere (readout starts at zero)
        gen = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    dataset = GraphDataset(source, range(len(source)), config.elements, config.cutoff)
    return model, dataset


def test_flops_counted_including_force_double_backward(tiny):
    model, dataset = tiny
    batch = dataset.batch([0, 1, 2, 24])
    energy_only = count_step_flops(model, batch, TrainConfig(forces_weight=0.0))
    with_forces = count_step_flops(model, batch, TrainConfig())
    model.zero_grad(set_to_none=True)
    rng_before = torch.random.get_rng_state()
    assert count_step_flops(model, batch, TrainConfig()) == with_forces  # deterministic
    assert all(p.grad is None for p in model.parameters())  # no side effects
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    # forces by autograd + their parameter gradient (double backward) cost more
    assert with_forces > 1.5 * energy_only > 0
    bigger = count_step_flops(
        model, dataset.batch([0, 1, 2, 24, 3, 4, 5, 25]), TrainConfig()
    )
    assert bigger > with_forces
    grown = count_step_flops(grow_depth(model), batch, TrainConfig())
    assert grown > with_forces
    measured = measure_step_flops(
        model, dataset, TrainConfig(batch_size=4), n_batches=2
    )
    assert measured.n_params == count_parameters(model) > 0
    assert min(measured.per_batch) > 0
    assert measured.per_step > 0
    # the batch FLOPs per edge scaled to the mean structure of the WHOLE set:
    # 24 molecules + 4 Cu cells; a small random probe would miss or over-count
    # the cells, whose edge counts differ most
    sizes = [
        len(dataset.graph(i)["edge_src"]) + len(dataset.graph(i)["positions"])
        for i in range(len(dataset))
    ]
    per_edge = sum(measured.per_batch) / sum(
        sum(sizes[j] for j in batch_indices)
        for batch_indices in _measured_batches(len(dataset), 4, 2, seed=0)
    )
    assert measured.per_step == pytest.approx(per_edge * np.mean(sizes) * 4, rel=1e-9)
    # (28 structures fit any probe; the default must stay "all" for big sets)
    default = inspect.signature(measure_step_flops).parameters["n_probe"].default
    assert default is None


def _measured_batches(n, batch_size, n_batches, seed):
    """The batches measure_step_flops draws (same generator, same order)."""
    rng = np.random.default_rng(seed)
    return [rng.choice(n, size=batch_size, replace=False) for _ in range(n_batches)]


@pytest.mark.parametrize("kind", ["depth", "width", "both"])
def test_growth_preserves_energies_and_forces(tiny, kind):
    model, dataset = tiny
    batch = dataset.batch([0, 1, 2, 24, 25])
    grow = {
        "depth": lambda m: grow_depth(m, 3),
        "width": lambda m: grow_width(m, 2, 3),
        "both": lambda m: grow_width(grow_depth(m, 3), 2, 4),
    }[kind]
    grown = grow(model)
    assert count_parameters(grown) > count_parameters(model)
    before = model(batch, compute_stress=True)
    after = grown(batch, compute_stress=True)
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=1e-10)
    if kind != "width":  # the new block fades in: no gradient at s = 0, then some
        block = grown.layers[-1]
        assert float(block.residual_scale) == 0.0
        grown(batch, create_graph=True)["forces"].pow(2).sum().backward()
        assert block.lin_ff_out.weight.grad.abs().sum() == 0
        grown.zero_grad()
        block.fade_in(0.01)
        assert float(block.residual_scale) == pytest.approx(0.01)
    # ... and the new weights learn: a loss on forces has non-zero gradient there
    loss = grown(batch, create_graph=True)["forces"].pow(2).sum()
    loss.backward()
    if kind != "width":
        assert grown.layers[-1].lin_attn.weight.grad.abs().sum() > 0
        assert grown.layers[-1].lin_ff_out.weight.grad.abs().sum() > 0
    if kind != "depth":
        new_cols = grown.readout.net[-1].weight.grad[:, TINY["readout_hidden"] :]
        assert new_cols.abs().sum() > 0


def test_parse_sizes():
    sizes = parse_sizes("small,xs:M:n_layers=1:cutoff=4.0", {"dtype": "float32"})
    assert sizes["small"] == {"preset": "small", "dtype": "float32"}
    assert sizes["xs"] == {
        "preset": "M",
        "dtype": "float32",
        "n_layers": 1,
        "cutoff": 4.0,
    }
    with pytest.raises(ValueError, match="unknown preset"):
        parse_sizes("huge")


def test_sweep_cli_resumable_and_fit(emt_db, tmp_path, capsys):
    out = tmp_path / "sweep"
    fps, _ = measure_run_flops(
        parse_sizes(TINY_SIZE)["xs"], str(emt_db), TrainConfig(**FAST), 1, 0
    )
    budget = 6.5 * fps["flops_per_step"]
    args = [
        "scale",
        "sweep",
        str(emt_db),
        "--sizes",
        TINY_SIZE,
        "--data-fractions",
        "0.3,1.0",
        "--budget-flops",
        str(budget),
        "--output-dir",
        str(out),
        "--n-evals",
        "3",
        "--flops-batches",
        "1",
        "--val-fraction",
        "0.15",
        "--json",
    ]
    args += [f"--train.{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [r["fraction"] for r in summary["runs"]] == [0.3, 1.0]
    n_train = [r["n_train"] for r in summary["runs"]]
    assert n_train[0] < n_train[1]
    split = summary["split"]
    assert split["n_val"] + n_train[1] == 28
    for run in summary["runs"]:
        result = json.loads(
            (out / "runs" / f"xs_f{run['fraction']}" / "result.json").read_text()
        )
        assert result["total_flops"] <= budget
        assert result["total_flops"] == pytest.approx(
            result["steps"] * result["flops_per_step"]
        )
        assert result["n_params"] > 0
        assert result["curve"][-1]["flops"] <= budget
        assert "val_forces_mae_meV_per_A" in result["best"]
    stamp = (out / "runs" / "xs_f0.3" / "result.json").stat().st_mtime_ns
    assert main(args) == 0  # finished runs are skipped, not retrained
    capsys.readouterr()
    assert (out / "runs" / "xs_f0.3" / "result.json").stat().st_mtime_ns == stamp
    assert main(["scale", "fit", str(out), "--bootstrap", "10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_runs"] == 2
    assert "P" in report["skipped"]  # one size only
    assert "joint" in report["skipped"]
    assert "two model sizes" in report["skipped"]["steps"]  # L(P, steps) too
    assert (out / "fit.json").exists()
    assert (out / "loss_vs_compute.png").stat().st_size > 1000
    assert np.all(np.diff(report["frontier"]["loss"]) < 0)


def test_adaptive_adds_data_from_hook_then_grows(emt_db, tmp_path):
    extra = []
    for i in range(3):
        atoms = molecule("CH4")
        atoms.rattle(0.05, rng=np.random.default_rng(100 + i))
        extra.append(label(atoms, EMT()))
    calls = []

    def hook(n):  # an active-learning loop would label new structures here
        calls.append(n)
        return extra if len(calls) == 1 else []

    start = {"preset": "S", **TINY}
    fps, _ = measure_run_flops(start, str(emt_db), TrainConfig(**FAST), 1, 0)
    budget = 12 * fps["flops_per_step"]
    cfg = DiaSLConfig(
        gain_threshold=1e9,
        window=2,
        min_points=2,
        window_span=1.0,
        gap_threshold=-1e9,
        anneal_fraction=0.1,
        rewarm_steps=2,
        flops_batches=1,
        train_probe=8,
    )
    summary = run_adaptive(
        AdaptiveRequest(
            data=str(emt_db),
            output_dir=str(tmp_path),
            budget_flops=budget,
            start_size=start,
            val_fraction=0.15,
            train=TrainConfig(**FAST, eval_every=2),
            diasl=cfg,
        ),
        data_hook=hook,
    )
    actions = [d["action"] for d in summary["decisions"]]
    assert actions[0] == "add_data"
    assert summary["decisions"][0]["added"] == 3
    assert actions[1] == "grow_depth"
    assert "exhausted" in summary["decisions"][1]["reason"]
    assert all(d["reason"] for d in summary["decisions"])
    assert summary["decisions"][1]["max_energy_change_eV"] < 1e-9
    assert (
        summary["decisions"][1]["n_params"] > summary["decisions"][1]["n_params_before"]
    )
    assert summary["flops_used"] <= budget
    assert summary["n_train"] >= 6 + 3
    saved = json.loads((tmp_path / "adaptive.json").read_text())
    assert saved["decisions"] == json.loads(json.dumps(summary["decisions"]))
    assert (tmp_path / "model.pt").exists()
    assert (tmp_path / "metrics.csv").exists()
    steps = [row["step"] for row in saved["curve"]]
    assert steps == sorted(steps)


def test_bad_budget_is_a_clear_error(emt_db, tmp_path):
    with pytest.raises(ValueError, match="budget_flops must be positive"):
        run_adaptive(
            AdaptiveRequest(
                data=str(emt_db), output_dir=str(tmp_path), budget_flops=0.0
            )
        )


# ---- resumable adaptive runs ------------------------------------------------
#: Acts every 2nd validation: data while the pool lasts (2 slices), then growth.
RESUME_DIASL = DiaSLConfig(
    gain_threshold=1e9,
    window=2,
    min_points=2,
    window_span=1.0,
    gap_threshold=-1e9,
    slice_fraction=0.5,
    anneal_fraction=0.1,
    rewarm_steps=2,
    flops_batches=1,
    train_probe=8,
)
RESUME_ACTIONS = ["add_data", "add_data", "grow_depth", "grow_width"]
#: One adaptive run in a fresh interpreter on one torch thread (to be killed).
CHILD = """
import json, logging, sys, torch
from asecalc.training.adaptive import run_adaptive
from tests.asecalc.training.test_scale import _request
torch.set_num_threads(1)
logging.basicConfig(level=logging.INFO)
run_adaptive(_request(json.loads(sys.argv[1])))
"""


def _request(args, **train):
    """The adaptive run of ``args`` (data, output_dir, budget_flops)."""
    return AdaptiveRequest(
        **args,
        start_size={"preset": "S", **TINY},
        val_fraction=0.15,
        train=TrainConfig(**{**FAST, "ema_decay": 0.9, "eval_every": 2, **train}),
        diasl=RESUME_DIASL,
    )


@pytest.fixture(scope="module")
def adaptive_reference(emt_db, tmp_path_factory):
    """An uninterrupted adaptive run: (arguments, adaptive.json, checkpoint).

    Torch uses one thread (as the child process) until the module's end, so
    the runs of the tests using this are bitwise comparable.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = {"preset": "S", **TINY}
    fps, _ = measure_run_flops(start, str(emt_db), TrainConfig(**FAST), 1, 0)
    out = tmp_path_factory.mktemp("reference")
    args = {"data": str(emt_db), "output_dir": str(out)}
    args["budget_flops"] = 30 * fps["flops_per_step"]
    run_adaptive(_request(args))
    summary = json.loads((out / "adaptive.json").read_text())
    assert [d["action"] for d in summary["decisions"]] == RESUME_ACTIONS
    yield args, summary, torch.load(out / "checkpoint.pt", weights_only=True)
    torch.set_num_threads(threads)


def _assert_same_run(out, reference):
    """All as the reference but wall-clock ``time_s`` (a killed segment's is lost)."""
    _, summary, state = reference
    resumed = json.loads((out / "adaptive.json").read_text())
    for key in ("decisions", "flops_used", "curve", "final_model_config", "n_train"):
        assert resumed[key] == summary[key], key
    final = torch.load(out / "checkpoint.pt", weights_only=True)
    assert final["step"] == state["step"]
    for part in ("model", "ema"):
        for key, value in state[part].items():
            assert torch.equal(final[part][key], value), (part, key)
    for index, moments in state["optimizer"]["state"].items():
        for key, value in moments.items():
            assert torch.equal(final["optimizer"]["state"][index][key], value)


def test_adaptive_resumes_exactly_after_sigkill(adaptive_reference, tmp_path, caplog):
    args = {**adaptive_reference[0], "output_dir": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in child.stderr:
            lines.append(line)
            if sum("DiaSL decision" in x for x in lines) == 3:
                child.send_signal(signal.SIGKILL)  # just grew; saving it, or saved
                break
        assert child.wait(timeout=60) == -signal.SIGKILL, "".join(lines[-20:])
    finally:
        if child.poll() is None:
            child.kill()
        child.stderr.close()
    killed = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert 0 < killed["step"] < adaptive_reference[2]["step"]
    with caplog.at_level(logging.INFO, logger="asecalc.training.adaptive"):
        run_adaptive(_request(args))  # the same command again
    assert "resuming the adaptive run" in caplog.text
    _assert_same_run(tmp_path, adaptive_reference)


class _Interrupted(Exception):
    """Stands in for a kill at a chosen point (the files on disk are what count)."""


@pytest.mark.parametrize(
    ("where", "name", "call", "pending"),
    [
        # mid-segment (15th step), after a growth: the saved state is booked
        pytest.param(ControlledTrainer, "_train_step", 15, False, id="mid-segment"),
        # the trainer saved the end of a segment, the controller had not booked
        # it nor acted (4th decision) yet: the saved model is the grown one
        pytest.param(DiaSLController, "_act", 4, True, id="before-booking"),
    ],
)
def test_adaptive_resumes_exactly_after_interruption(
    adaptive_reference, tmp_path, monkeypatch, where, name, call, pending
):
    original, calls = getattr(where, name), []

    def interrupted(self, *args):
        calls.append(name)
        if len(calls) == call:
            raise _Interrupted
        return original(self, *args)

    args = {**adaptive_reference[0], "output_dir": str(tmp_path)}
    monkeypatch.setattr(where, name, interrupted)
    with pytest.raises(_Interrupted):
        run_adaptive(_request(args))
    monkeypatch.undo()
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert (saved["diasl"]["segment"] is not None) == pending
    assert saved["model_config"]["n_layers"] == TINY["n_layers"] + 1  # grown
    assert len(saved["diasl"]["decisions"]) == 3
    run_adaptive(_request(args))
    _assert_same_run(tmp_path, adaptive_reference)


def test_adaptive_resume_refuses_changed_settings(adaptive_reference):
    args, summary, state = adaptive_reference
    out = Path(args["output_dir"])
    again = run_adaptive(_request(args))  # finished: nothing left to train
    assert json.loads(json.dumps(again["decisions"])) == summary["decisions"]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == state["step"]
    with pytest.raises(ValueError, match=r"settings differ.*train\.lr: saved 0\.01"):
        run_adaptive(_request(args, lr=2e-2))
    with pytest.raises(ValueError, match="budget_flops: saved"):
        run_adaptive(_request({**args, "budget_flops": 2 * args["budget_flops"]}))


def test_adaptive_run_from_before_window_span_resumes_as_it_ran(
    adaptive_reference, tmp_path
):
    """Runs saved before ``window_span`` existed fitted the last ``window`` points."""
    args, summary, state = adaptive_reference
    settings = state["diasl"]["settings"]
    old = {**settings, "diasl": dict(settings["diasl"])}
    del old["diasl"]["window_span"]
    torch.save(
        {**state, "diasl": {**state["diasl"], "settings": old}},
        tmp_path / "checkpoint.pt",
    )
    args = {**args, "output_dir": str(tmp_path)}
    request = _request(args)
    request.diasl = dataclasses.replace(RESUME_DIASL, window_span=2.0)
    with pytest.raises(ValueError, match=r"diasl\.window_span: saved 1\.0, now 2\.0"):
        run_adaptive(request)
    assert run_adaptive(_request(args))["flops_used"] == summary["flops_used"]
