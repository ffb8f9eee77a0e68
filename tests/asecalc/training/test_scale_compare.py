"""`eformer scale compare`: fixed sizes against DiaSL, judged on validation and test."""

from __future__ import annotations

import json

import ase.db
import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.emt import EMT

from asecalc.checkpoint import load_model
from asecalc.cli.main import main
from asecalc.config import TrainConfig
from asecalc.training.evaluate import evaluate_model
from asecalc.training.scale import measure_run_flops, parse_sizes
from tests.asecalc.training._emt_data import TINY_MODEL, label, write_emt_database

TINY_SIZE = "xs:S:" + ":".join(f"{k}={v}" for k, v in TINY_MODEL.items())
FAST = {"batch_size": 4, "lr": 1e-2, "warmup_steps": 2, "ema_decay": 0.0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(training db, test db): the test molecules are rattled with another seed."""
    root = tmp_path_factory.mktemp("compare")
    train = write_emt_database(root / "train.db", n_molecules=20, n_cells=0)
    rng = np.random.default_rng(123)
    with ase.db.connect(root / "test.db") as db:
        for name in ["H2O", "CH4", "NH3"] * 2:
            atoms = molecule(name)
            atoms.rattle(0.08, rng=rng)
            db.write(label(atoms, EMT()))
    return train, root / "test.db"


def _args(train, out, budget, *extra):
    args = [
        "scale",
        "compare",
        str(train),
        "--budget-flops",
        str(budget),
        "--fixed-sizes",
        TINY_SIZE,
        "--start-size",
        TINY_SIZE,
        "--output-dir",
        str(out),
        "--val-fraction",
        "0.2",
        "--flops-batches",
        "1",
        "--diasl.flops-batches",
        "1",
        "--diasl.train-probe",
        "8",
        "--diasl.rewarm-steps",
        "2",
        "--json",
        *extra,
    ]
    return args + [f"--train.{k.replace('_', '-')}={v}" for k, v in FAST.items()]


def test_compare_tests_every_model_on_unseen_data(data, tmp_path, capsys):
    train, test = data
    fps, _ = measure_run_flops(
        parse_sizes(TINY_SIZE)["xs"], str(train), TrainConfig(**FAST), 1, 0
    )
    out = tmp_path / "cmp"
    assert main(_args(train, out, 8 * fps["flops_per_step"], "--test", str(test))) == 0
    summary = json.loads(capsys.readouterr().out)
    verdict = summary["test"]
    assert set(verdict["fixed"]) == {"xs"}
    assert verdict["fixed"]["xs"]["n"] == verdict["adaptive"]["n"] == 6
    # the numbers are those of the saved best models on the test set
    again = evaluate_model(load_model(out / "adaptive" / "model.pt"), str(test))
    assert verdict["adaptive"]["forces_mae_meV_per_A"] == pytest.approx(
        again["overall"]["forces_mae_meV_per_A"], rel=1e-9
    )
    fixed = verdict["fixed"]["xs"]["forces_mae_meV_per_A"]
    assert verdict["adaptive_wins"] == (
        verdict["adaptive"]["forces_mae_meV_per_A"] < fixed
    )
    assert verdict["best_fixed"] == "xs"
    assert json.loads((out / "compare.json").read_text())["test"] == verdict


def test_compare_refuses_a_missing_test_set_before_training(data, tmp_path, capsys):
    train, _ = data
    out = tmp_path / "cmp"
    assert main(_args(train, out, 1e9, "--test", str(tmp_path / "nowhere.db"))) != 0
    assert "test set" in capsys.readouterr().err
    assert not (out / "fixed").exists()
