"""Training tests.

Learning, exact resume after SIGKILL, ensembles, fine-tuning, errors and DDP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import ase.db
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from asecalc import EformerCalculator
from asecalc.checkpoint import load_model, safe_torch_load
from asecalc.cli.main import main
from asecalc.config import TrainConfig
from asecalc.training.run import TrainRequest, train_model
from tests.asecalc.training._emt_data import TINY_MODEL, label, write_emt_database

SMALL = TINY_MODEL
SMALL_FLAGS = [f"--model.{k.replace('_', '-')}={v}" for k, v in SMALL.items()]


@pytest.fixture(scope="module")
def emt_db(tmp_path_factory):
    """40 EMT-labelled structures: rattled molecules and strained Cu cells."""
    path = tmp_path_factory.mktemp("data") / "emt.db"
    return write_emt_database(path, n_molecules=30, n_cells=10, key_value_pairs=True)


def _request(db, out, **train):
    base = {
        "max_steps": 40,
        "eval_every": 10,
        "batch_size": 4,
        "val_fraction": 0.2,
        "warmup_steps": 5,
        "lr": 1e-2,
    }
    base.update(train)
    return TrainRequest(
        data=str(db),
        output_dir=str(out),
        model_overrides=SMALL,
        train=TrainConfig(**base),
        progress=False,
    )


def test_training_learns_and_writes_outputs(emt_db, tmp_path):
    summary = train_model(_request(emt_db, tmp_path, max_steps=60, stress_weight=100.0))
    history = json.loads((tmp_path / "summary.json").read_text())["members"]
    assert summary["elements"] == ["H", "C", "N", "O", "Cu"]
    metrics = (tmp_path / "metrics.csv").read_text().splitlines()
    first = dict(zip(metrics[0].split(","), metrics[1].split(","), strict=True))
    last = history[0]
    assert last["val_forces_mae_meV_per_A"] < float(first["val_forces_mae_meV_per_A"])
    for name in (
        "model.pt",
        "checkpoint.pt",
        "config.json",
        "learning_curve.png",
        "parity.png",
    ):
        assert (tmp_path / name).exists(), name
    calc = EformerCalculator(model=tmp_path / "model.pt")
    atoms = molecule("H2O")
    atoms.calc = calc
    assert np.isfinite(atoms.get_forces()).all()


def test_resume_after_sigkill_is_exact(emt_db, tmp_path):
    args = [
        str(emt_db),
        "--max-steps",
        "24",
        "--train.eval-every",
        "4",
        "--train.batch-size",
        "4",
        "--train.warmup-steps",
        "2",
        "--no-progress",
        *SMALL_FLAGS,
    ]
    assert main(["train", *args, "--output-dir", str(tmp_path / "full")]) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asecalc.cli.main",
            "train",
            *args,
            "--output-dir",
            str(killed),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    step = 0
    while time.time() < deadline and proc.poll() is None:
        if (killed / "checkpoint.pt").exists():
            step = safe_torch_load(killed / "checkpoint.pt")["step"]
            if step >= 8:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 8 <= step < 24, f"run was not killed mid-way (step {step})"
    assert main(["train", *args, "--output-dir", str(killed), "--resume"]) == 0
    a = safe_torch_load(tmp_path / "full" / "checkpoint.pt")
    b = safe_torch_load(killed / "checkpoint.pt")
    assert a["step"] == b["step"] == 24
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=1e-12)


def test_ensemble_in_one_file(emt_db, tmp_path):
    train_model(_ensemble(_request(emt_db, tmp_path, max_steps=10), 2))
    bundle = load_model(tmp_path / "model.pt")
    assert len(bundle.members) == 2
    calc = EformerCalculator(model=tmp_path / "model.pt")
    atoms = molecule("CH4")
    atoms.calc = calc
    atoms.get_forces()
    assert calc.get_energy_std() > 0


def _ensemble(req, k):
    req.ensemble = k
    req.bootstrap = True
    return req


def test_finetune_extends_elements_function_preserving(tiny_model_path, tmp_path):
    from asecalc.graph import atoms_to_graph
    from asecalc.training.model_init import extend_elements

    base = load_model(tiny_model_path).members[0]
    extended = extend_elements(base, ["H", "O", "Al"], seed=0)
    assert "Al" in extended.config.elements
    water = molecule("H2O")
    e_old = base(atoms_to_graph(water, base.config.elements, base.config.cutoff))[
        "energy"
    ]
    e_new = extended(atoms_to_graph(water, extended.config.elements, 4.0))["energy"]
    torch.testing.assert_close(e_old, e_new)


def test_finetune_unknown_element_needs_flag(tiny_model_path, tmp_path):
    db_path = tmp_path / "al.db"
    with ase.db.connect(db_path) as db:
        for a in (3.9, 4.0, 4.1):
            db.write(label(bulk("Al", "fcc", a=a), EMT()))
    req = _request(db_path, tmp_path / "ft", max_steps=4)
    req.init = str(tiny_model_path)
    with pytest.raises(ValueError, match=r"Al.*--extend-elements"):
        train_model(req)
    req.extend_elements = True
    summary = train_model(req)
    assert "Al" in summary["elements"]


def test_bad_data_errors(tmp_path):
    db_path = tmp_path / "bad.db"
    with ase.db.connect(db_path) as db:
        for _ in range(2):
            atoms = molecule("H2O")
            atoms.calc = SinglePointCalculator(atoms, energy=-1.0)
            row_id = db.write(atoms, tag="noforces")
        nan = molecule("H2O")
        nan_forces = np.zeros((3, 3))
        nan_forces[1, 2] = np.nan
        nan.calc = SinglePointCalculator(nan, energy=-1.0, forces=nan_forces)
        db.write(nan, tag="badlabel")
    with pytest.raises(
        ValueError, match=r"bad.db:id=\d: no forces label.*--energy-only"
    ):
        train_model(_select(_request(db_path, tmp_path / "a"), "tag=noforces"))
    assert row_id == 2
    with pytest.raises(ValueError, match="NaN"):
        train_model(_select(_request(db_path, tmp_path / "b"), "tag=badlabel"))
    with pytest.raises(ValueError, match="no structures"):
        train_model(_select(_request(db_path, tmp_path / "c"), "tag=missing"))


def _select(req, query):
    req.select = query
    return req


def test_eval_stress_in_batches_mixing_molecules_and_cells(emt_db, tiny_model_path):
    """Stress errors count every labelled cell, also in a batch with molecules."""
    from asecalc.checkpoint import load_model
    from asecalc.training.evaluate import evaluate_model

    bundle = load_model(tiny_model_path)
    mixed = evaluate_model(bundle, emt_db, by="molecule", batch_size=40)
    single = evaluate_model(bundle, emt_db, by="molecule", batch_size=1)
    for key in ("stress_mae_GPa", "forces_mae_meV_per_A", "energy_mae_meV_per_atom"):
        assert mixed["overall"][key] == pytest.approx(single["overall"][key], rel=1e-9)
    assert mixed["by_molecule"]["Cu"]["stress_mae_GPa"] == pytest.approx(
        single["by_molecule"]["Cu"]["stress_mae_GPa"], rel=1e-9
    )
    assert "stress_mae_GPa" not in mixed["by_molecule"]["CH4"]


def test_eval_cli_json(emt_db, tmp_path, tiny_model_path, capsys):
    assert (
        main(
            [
                "eval",
                str(tiny_model_path),
                str(emt_db),
                "--by",
                "molecule",
                "--json",
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 40
    assert result["overall"]["forces_mae_meV_per_A"] > 0
    assert set(result["by_molecule"]) == {"H2O", "CH4", "H3N", "Cu"}
    assert "stress_mae_GPa" in result["by_molecule"]["Cu"]
    assert (tmp_path / "parity.png").exists()


@pytest.mark.slow
def test_data_parallel_two_processes(emt_db, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "-m",
        "asecalc.cli.main",
        "train",
        str(emt_db),
        "--max-steps",
        "6",
        "--train.eval-every",
        "3",
        "--no-progress",
        "--output-dir",
        str(tmp_path),
        *SMALL_FLAGS,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = safe_torch_load(tmp_path / "checkpoint.pt")
    assert state["step"] == 6
    assert EformerCalculator(model=tmp_path / "model.pt").config.elements[-1] == "Cu"


@pytest.mark.parametrize(
    ("flags", "max_steps", "max_time_s"),
    [
        ([], TrainConfig().max_steps, 0.0),
        (["--time-budget", "2"], 10**12, 120.0),  # the budget alone decides
        (["--train.max-time-s", "60"], 10**12, 60.0),
        (["--time-budget", "2", "--max-steps", "50"], 50, 120.0),  # first wins
    ],
)
def test_cli_time_budget_lifts_the_default_step_limit(flags, max_steps, max_time_s):
    from asecalc.cli.main import build_parser
    from asecalc.cli.train import request_from_args

    args = build_parser().parse_args(["train", "data.db", *flags])
    train = request_from_args(args).train
    assert (train.max_steps, train.max_time_s) == (max_steps, max_time_s)


def _nan_loss_at(monkeypatch, bad_calls):
    """Make the training loss NaN on the given (0-based) calls."""
    import asecalc.training.loop as loop

    real, calls = loop.training_loss, []

    def patched(model, batch, cfg):
        loss, parts = real(model, batch, cfg)
        calls.append(len(calls))
        if bad_calls(len(calls) - 1):
            loss = loss * float("nan")
        return loss, parts

    monkeypatch.setattr(loop, "training_loss", patched)
    return calls


def test_non_finite_step_is_skipped_not_learned(emt_db, tmp_path, monkeypatch, caplog):
    _nan_loss_at(monkeypatch, lambda call: call == 3)
    with caplog.at_level("WARNING", logger="asecalc.training.loop"):
        train_model(_request(emt_db, tmp_path, max_steps=12))
    assert "step 3: non-finite loss or gradient, update skipped" in caplog.text
    model = load_model(tmp_path / "model.pt")
    assert all(torch.isfinite(p).all() for p in model.members[0].parameters())


def test_persistent_non_finite_loss_stops_with_a_clear_error(
    emt_db, tmp_path, monkeypatch
):
    from asecalc.training.loop import MAX_BAD_STEPS

    calls = _nan_loss_at(monkeypatch, lambda call: call >= 2)
    with pytest.raises(RuntimeError, match=r"consecutive training steps.*non-finite"):
        train_model(_request(emt_db, tmp_path, max_steps=40))
    assert len(calls) == 2 + MAX_BAD_STEPS
