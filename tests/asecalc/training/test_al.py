"""Active learning: uncertainty calibration, exploration, selection, resumable loop."""

from __future__ import annotations

import json

import ase.db
import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from asecalc import EformerCalculator
from asecalc.config import TrainConfig
from asecalc.training.al import ActiveLearning, ALConfig
from asecalc.training.al_explore import (
    ExploreSettings,
    ExploreSpec,
    explore,
    parse_explore,
)
from asecalc.training.al_features import model_features, resolve_descriptor
from asecalc.training.al_fork import fork_run
from asecalc.training.al_select import (
    acquisition_scores,
    farthest_point_sampling,
    pool_density,
    select,
)
from asecalc.training.uncertainty import (
    calibration_png,
    evaluate_calibration,
    miscalibration_area,
    spearman,
)
from tests.asecalc.training._emt_data import TINY_MODEL

SMALL = TINY_MODEL


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one torch thread avoids OpenMP wake-up costs on a busy machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def ensemble_path(tmp_path_factory):
    """A saved 2-member ensemble of tiny random models (H, C, N, O)."""
    from asecalc.checkpoint import save_model
    from asecalc.config import ModelConfig
    from asecalc.training.model_init import new_model

    config = ModelConfig(elements=("H", "C", "N", "O"), **SMALL)
    path = tmp_path_factory.mktemp("models") / "ensemble.pt"
    save_model(path, [new_model(config, seed) for seed in (0, 1)])
    return path


def _labelled(formula, rng, rattle=0.05):
    atoms = molecule(formula)
    atoms.rattle(rattle, rng=rng)
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def test_parse_explore_specs_and_errors():
    assert parse_explore("md:300,600").temperatures_K == (300.0, 600.0)
    spec = parse_explore("metad:phi=torsion:4,6,8,14+psi=torsion:6,8,14,16@500")
    assert spec == ExploreSpec(
        "metad", (500.0,), ("phi=torsion:4,6,8,14", "psi=torsion:6,8,14,16")
    )
    for bad in ("mc:300", "md:-5", "metad:", "metad:torsion:1,2"):
        with pytest.raises(ValueError, match=r"expected|must|torsion"):
            parse_explore(bad)


def test_calibration_metrics_on_synthetic_gaussians(rng):
    sigma = rng.uniform(0.01, 1.0, 20000)
    residuals = rng.normal(0.0, sigma)
    assert miscalibration_area(residuals, sigma) < 0.02
    assert miscalibration_area(residuals, sigma / 5) > 0.3  # overconfident
    assert spearman(sigma, np.abs(residuals)) > 0.4
    assert abs(spearman(rng.permutation(sigma), np.abs(residuals))) < 0.05


def test_farthest_point_sampling_and_scores():
    points = np.array([[0, 0], [0.1, 0], [0, 0.1], [5, 5], [5.1, 5], [-4, 6]], float)
    picked = farthest_point_sampling(points, 3, first=0)
    assert picked[0] == 0  # one point per cluster
    assert {0, 5} < set(picked)
    assert set(picked) & {3, 4}
    # points near a reference (already labelled) set are picked last
    picked = farthest_point_sampling(points, 2, reference=np.array([[0.0, 0.0]]))
    assert not {0, 1, 2} & set(picked)
    scores = acquisition_scores(
        np.array([0.1, 0.3, 0.2]),
        np.array([3.0, 1.0, 2.0]),
        np.array([1.0, 1.0, 0.5]),
        weights=(1.0, 1.0),
    )
    np.testing.assert_allclose(scores, [1.0, 1.5, 2.0])  # ties broken by order


def test_density_term_prefers_uncertain_frames_that_stand_for_many(ensemble_path, rng):
    points = np.array([[0, 0], [0.1, 0], [0, 0.1], [0.1, 0.1], [3, 3]], float)
    rho = pool_density(points)
    assert rho.shape == (5,)
    assert rho.argmin() == 4  # the outlier
    assert rho[:4].min() > 2 * rho[4]
    np.testing.assert_allclose(pool_density(points[:1]), [1.0])
    sigma = np.array([0.1, 0.2, 0.3, 0.4, 0.5])  # the outlier is the most uncertain
    assert acquisition_scores(sigma).argmax() == 4
    scores = acquisition_scores(sigma, weights=(0.0, 0.0, 1.0), density=rho)
    assert scores.argmax() == 3  # the most uncertain frame of the cluster
    np.testing.assert_allclose(  # a two-weight tuple means no density term
        acquisition_scores(sigma, weights=(0.0, 0.0), density=rho),
        acquisition_scores(sigma),
    )
    # through select(): a strongly distorted CH4 is the most uncertain candidate,
    # six mildly displaced ones share a neighbourhood in the descriptor space
    calc = EformerCalculator(model=ensemble_path)
    candidates = [_labelled("CH4", rng, 0.01) for _ in range(6)]
    candidates.append(_labelled("CH4", rng, 0.25))
    for k, atoms in enumerate(candidates):
        atoms.info["sigma_max"] = 0.1 + 0.01 * k
    assert select(candidates, 1, "uncertainty", rng, calc, pool_factor=1.0) == [6]
    picked = select(
        candidates, 1, "uncertainty", rng, calc, pool_factor=1.0, weights=(0, 0, 2)
    )
    assert picked != [6]


def test_selection_uncertainty_and_random(ensemble_path, rng):
    calc = EformerCalculator(model=ensemble_path)
    candidates = [_labelled("CH4", rng, 0.02 * (k + 1)) for k in range(8)]
    for k, atoms in enumerate(candidates):
        atoms.info["sigma_max"] = float(k)
    features = model_features(calc, candidates)
    assert features["descriptors"].shape == (8, 2 * SMALL["n_scalars"])
    assert np.isfinite(features["attention_entropy"]).all()
    assert (features["attention_entropy"] > 0).all()
    chosen = select(candidates, 3, "uncertainty", rng, calc, pool_factor=1.0)
    assert sorted(chosen) == [5, 6, 7]  # pool = the 3 most uncertain
    chosen = select(candidates, 3, "uncertainty", rng, calc, labelled=candidates[:2])
    assert len(set(chosen)) == 3
    assert set(chosen) <= set(range(8))
    a = select(candidates, 4, "random", np.random.default_rng(1))
    assert a == select(candidates, 4, "random", np.random.default_rng(1))
    assert len(set(a)) == 4
    with pytest.raises(ValueError, match="strategy"):
        select(candidates, 2, "greedy", rng, calc)


def test_per_atom_descriptor_is_permutation_invariant(ensemble_path, rng):
    calc = EformerCalculator(model=ensemble_path)
    images = [_labelled("CH3OH", rng, 0.05) for _ in range(3)]
    swapped = images[0][[0, 1, 5, 4, 3, 2]]  # C, O, then the four H reversed
    atoms = model_features(calc, [*images, swapped], descriptor="atoms")
    pooled = model_features(calc, images, descriptor="pooled")["descriptors"]
    desc = atoms["descriptors"]
    assert desc.shape == (4, 6 * SMALL["n_scalars"])
    assert pooled.shape == (3, 2 * SMALL["n_scalars"])
    np.testing.assert_allclose(desc[3], desc[0], atol=1e-12)
    assert np.linalg.norm(desc[1] - desc[0]) > 1e-6  # different geometry
    assert resolve_descriptor("auto", images, [swapped]) == "atoms"
    assert resolve_descriptor("auto", images, [molecule("NH3")]) == "pooled"
    with pytest.raises(ValueError, match="one composition"):
        model_features(calc, [*images, molecule("NH3")], descriptor="atoms")
    with pytest.raises(ValueError, match="descriptor must be"):
        resolve_descriptor("soap", images)
    for atoms in images:
        atoms.info["sigma_max"] = 0.1
    picked = select(images, 2, "uncertainty", rng, calc, descriptor="atoms")
    assert len(set(picked)) == 2


def test_sigma_window_limits_both_strategies(ensemble_path, rng):
    from asecalc.cli.al import parse_sigma_window

    calc = EformerCalculator(model=ensemble_path)
    candidates = []
    for k, sigma in enumerate(np.linspace(0.0, 1.0, 21)):
        atoms = molecule(["CH4", "NH3", "H2O"][k % 3])
        atoms.rattle(0.05, rng=rng)
        atoms.info["sigma_max"] = float(sigma)
        candidates.append(atoms)
    window = (0.2, 0.6)
    for strategy in ("uncertainty", "random"):
        chosen = select(candidates, 5, strategy, rng, calc, sigma_window=window)
        sigmas = [candidates[i].info["sigma_max"] for i in chosen]
        assert len(chosen) == 5
        assert all(0.2 <= s <= 0.6 for s in sigmas), (strategy, sigmas)
    # fewer inside than asked: take what is there (0.9, 0.95, 1.0)
    assert len(select(candidates, 5, "random", rng, sigma_window=(0.9, None))) == 3
    with pytest.raises(ValueError, match="sigma window"):
        select(candidates, 5, "random", rng, sigma_window=(0.5, 0.1))
    # relative bounds: percentiles of the candidates' σ (0, 0.05, ..., 1.0)
    chosen = select(candidates, 21, "random", rng, sigma_window=(0.0, "p50"))
    assert [candidates[i].info["sigma_max"] for i in chosen] == pytest.approx(
        np.linspace(0.0, 0.5, 11)
    )
    chosen = select(candidates, 21, "random", rng, sigma_window=("p80", None))
    assert len(chosen) == 5  # 0.8 ... 1.0
    with pytest.raises(ValueError, match="percentiles"):
        select(candidates, 5, "random", rng, sigma_window=(0.0, "p101"))
    with pytest.raises(ValueError, match="sigma window"):
        select(candidates, 5, "random", rng, sigma_window=("p90", "p10"))
    assert parse_sigma_window("0.05,0.3") == (0.05, 0.3)
    assert parse_sigma_window("0.05,") == (0.05, None)
    assert parse_sigma_window(",p90") == (0.0, "p90")
    assert parse_sigma_window("p10, p95") == ("p10", "p95")
    for bad in ("0.3", "0.3,0.1", ",q90", "p95,p5"):
        with pytest.raises(ValueError, match="sigma-window"):
            parse_sigma_window(bad)


def test_balance_shares_picks_among_sources(ensemble_path, rng):
    from asecalc.training.al_select import share_out

    assert share_out(10, {"a": 20, "b": 20, "c": 20}) == {"a": 4, "b": 3, "c": 3}
    assert share_out(10, {"a": 1, "b": 20, "c": 2}) == {"a": 1, "b": 7, "c": 2}
    assert share_out(50, {"a": 3, "b": 4}) == {"a": 3, "b": 4}
    calc = EformerCalculator(model=ensemble_path)
    candidates = []
    for k in range(30):  # a hot trajectory with every high σ, two cool ones
        source = ("md@900K#0", "md@300K#0", "metad@300K")[k % 3]
        atoms = molecule(["CH4", "NH3", "H2O"][k % 3])
        atoms.rattle(0.05, rng=rng)
        atoms.info.update(sigma_max=1.0 + k if k % 3 == 0 else 0.01 * k, source=source)
        candidates.append(atoms)
    plain = select(candidates, 6, "uncertainty", rng, calc, pool_factor=1.0)
    assert {candidates[i].info["source"] for i in plain} == {"md@900K#0"}
    for strategy in ("uncertainty", "random"):
        chosen = select(
            candidates, 6, strategy, rng, calc, pool_factor=1.0, balance="source"
        )
        sources = [candidates[i].info["source"] for i in chosen]
        assert len(set(chosen)) == 6
        assert {s: sources.count(s) for s in sources} == {
            "md@900K#0": 2,
            "md@300K#0": 2,
            "metad@300K": 2,
        }
    # within a source, the most uncertain are picked
    chosen = select(
        candidates, 6, "uncertainty", rng, calc, pool_factor=1.0, balance="source"
    )
    cool = sorted(i for i in chosen if candidates[i].info["source"] == "md@300K#0")
    assert cool == [25, 28]
    with pytest.raises(ValueError, match="balance"):
        select(candidates, 6, "random", rng, balance="temperature")


def test_exploration_stops_when_sigma_exceeds_threshold(ensemble_path, tmp_path, rng):
    calc = EformerCalculator(model=ensemble_path)
    starts = [molecule("CH4")]
    settings = ExploreSettings(
        n_steps=24, interval=4, timestep=1.0 * units.fs, sigma_stop=1e9
    )
    (full,) = explore(starts, calc, [parse_explore("md:1500")], settings, tmp_path)
    assert not full.stopped
    assert full.n_steps == 24
    assert len(full.frames) == 6
    sigmas = np.array([f.info["sigma_max"] for f in full.frames])
    np.testing.assert_allclose(
        [f.arrays["forces_std"].max() for f in full.frames], sigmas
    )
    threshold = float(np.sort(sigmas)[2]) + 1e-9  # exceeded within the run
    capped = ExploreSettings(
        n_steps=24, interval=4, timestep=1.0 * units.fs, sigma_stop=threshold
    )
    (short,) = explore(starts, calc, [parse_explore("md:1500")], capped, tmp_path)
    assert short.stopped
    assert short.sigma_max > threshold
    assert short.n_steps < 24
    assert all(f.info["sigma_max"] <= threshold for f in short.frames)
    assert all(f.info["step"] < short.n_steps for f in short.frames)


def test_first_member_drives_and_the_ensemble_checks_every_interval(
    ensemble_path, tmp_path
):
    """driver='first' is plain Langevin on member 1; σ comes from the full ensemble."""
    from ase.md.langevin import Langevin

    from asecalc.checkpoint import load_model, save_model

    calc = EformerCalculator(model=ensemble_path)
    settings = ExploreSettings(
        n_steps=12, interval=4, timestep=1.0 * units.fs, sigma_stop=1e9
    )
    (traj,) = explore(
        [molecule("CH4")], calc, [parse_explore("md:900")], settings, tmp_path
    )
    member = tmp_path / "member0.pt"
    save_model(member, load_model(ensemble_path).members[:1])
    atoms = molecule("CH4")
    atoms.calc = EformerCalculator(model=member)
    try:  # ase >= 3.29
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:
        from ase.md.velocitydistribution import (
            MaxwellBoltzmannDistribution as thermalize_momenta,
        )
    thermalize_momenta(atoms, temperature_K=900, rng=np.random.default_rng(0))
    dyn = Langevin(
        atoms,
        settings.timestep,
        temperature_K=900,
        friction=settings.friction,
        fixcm=False,
        rng=np.random.default_rng(1),
    )
    for frame in traj.frames:
        dyn.run(4)
        np.testing.assert_allclose(frame.positions, atoms.positions, atol=1e-10)
        np.testing.assert_allclose(
            frame.arrays["forces_std"], calc.get_forces_std(atoms.copy()), atol=1e-12
        )
    assert len(traj.frames) == 3
    mean = ExploreSettings(
        n_steps=12, interval=4, timestep=1.0 * units.fs, sigma_stop=1e9, driver="mean"
    )
    (other,) = explore(
        [molecule("CH4")], calc, [parse_explore("md:900")], mean, tmp_path
    )
    assert not np.allclose(other.frames[-1].positions, traj.frames[-1].positions)
    with pytest.raises(ValueError, match="driver"):
        ExploreSettings(driver="median")


@pytest.mark.plumed
def test_metadynamics_exploration(ensemble_path, tmp_path):
    pytest.importorskip("plumed")
    calc = EformerCalculator(model=ensemble_path)
    settings = ExploreSettings(n_steps=20, interval=5, sigma_stop=1e9, metad_pace=4)
    spec = parse_explore("metad:torsion:2,0,1,5@400")
    (traj,) = explore([molecule("C2H6")], calc, [spec], settings, tmp_path)
    assert len(traj.frames) == 4
    assert traj.frames[0].info["source"].startswith("metad")
    hills = (tmp_path / "traj000" / "HILLS").read_text().splitlines()
    assert sum(not line.startswith("#") for line in hills) >= 4  # 20 steps / pace 4


def test_evaluate_calibration_on_labelled_data(ensemble_path, tmp_path, rng):
    calc = EformerCalculator(model=ensemble_path)
    images = [_labelled(f, rng) for f in ("CH4", "NH3", "H2O", "CH4")]
    report = evaluate_calibration(calc, images)
    assert report["n_structures"] == 4
    assert report["sigma_atoms"].shape == (17,)
    assert (report["sigma_atoms"] > 0).all()
    assert 0 <= report["miscalibration_area"] <= 0.5
    assert report["forces_mae"] > 0
    assert np.isfinite(report["spearman"])
    calibration_png(report, tmp_path / "cal.png")
    assert (tmp_path / "cal.png").stat().st_size > 1000


class _Interrupted(BaseException):
    """Stands for a kill: not an Exception, so nothing catches it."""


class _DyingEMT(EMT):
    calls = 0

    def calculate(self, *args, **kwargs):
        type(self).calls += 1
        if type(self).calls == 2:
            raise _Interrupted("killed while labelling")
        super().calculate(*args, **kwargs)


def _dying_emt():
    """Reference factory: EMT that is 'killed' at its second labelling call."""
    return _DyingEMT()


def test_loop_resumes_after_interruptions_without_relabelling_and_forks(tmp_path, rng):
    seed = tmp_path / "seed.db"
    with ase.db.connect(seed) as db:
        for k in range(10):
            db.write(_labelled(["CH4", "NH3", "H2O"][k % 3], rng))
    out = tmp_path / "al"
    base = {
        "seed_data": str(seed),
        "output_dir": str(out),
        "explore": ("md:300,1200",),
        "per_round": 3,
        "rounds": 2,
        "ensemble": 1,
        "uncertainty": "dropout",
        "dropout_samples": 3,
        "sigma_converged": 0.0,
        "val_fraction": 0.2,
        "model_overrides": SMALL,
        "workers": 0,
        "train": TrainConfig(
            max_steps=12, eval_every=6, batch_size=4, warmup_steps=2, lr=1e-2
        ),
        "exploration": ExploreSettings(n_steps=20, interval=4, sigma_stop=50.0),
    }

    def stop_after_select(r, phase):
        if (r, phase) == (0, "select"):
            raise _Interrupted("killed between phases")

    with pytest.raises(_Interrupted):
        ActiveLearning(
            ALConfig(reference="emt", **base), after_phase=stop_after_select
        ).run()
    state = json.loads((out / "al_state.json").read_text())
    assert (state["round"], state["phase"]) == (0, "select")
    n_seed = ase.db.connect(out / "labels.db").count()
    assert n_seed == 10
    with pytest.raises(_Interrupted):  # killed after the first of 3 labels
        ActiveLearning(ALConfig(reference=_dying_emt, **base)).run()
    assert ase.db.connect(out / "labels.db").count() == n_seed + 1
    from asecalc.cli.main import main

    flags = [
        str(seed),
        "--reference",
        "emt",
        "--explore",
        "md:300,1200",
        "--per-round",
        "3",
        "--rounds",
        "2",
        "--ensemble",
        "1",
        "--uncertainty",
        "dropout",
        "--dropout-samples",
        "3",
        "--sigma-converged",
        "0",
        "--val-fraction",
        "0.2",
        "--workers",
        "0",
        "--md-steps",
        "20",
        "--interval",
        "4",
        "--sigma-stop",
        "50",
        "--train.max-steps",
        "12",
        "--train.eval-every",
        "6",
        "--train.batch-size",
        "4",
        "--train.warmup-steps",
        "2",
        "--train.lr",
        "0.01",
        *[f"--model.{k.replace('_', '-')}={v}" for k, v in SMALL.items()],
        "--output-dir",
        str(out),
        "--json",
    ]
    assert main(["al", *flags]) == 0
    rows = list(ase.db.connect(out / "labels.db").select())
    uids = [row.uid for row in rows]
    assert len(rows) == 10 + 2 * 3
    assert len(set(uids)) == len(uids)
    new = [row for row in rows if row.al_round > 0]
    assert sorted(row.al_round for row in new) == [1, 1, 1, 2, 2, 2]
    assert all(row.sigma > 0 and row.source.startswith("md@") for row in new)
    assert all(np.isfinite(row.forces).all() for row in new)
    report = json.loads((out / "al_report.json").read_text())
    assert report["done"]
    assert report["stop_reason"].startswith("round limit")
    rounds = report["rounds"]
    assert [r["n_labels"] for r in rounds] == [10, 13, 16]
    assert rounds[0]["labelled"] == {"written": 2, "failed": 0, "already_present": 1}
    assert all(r["val"]["forces_mae"] > 0 for r in rounds)
    assert rounds[1]["explore"]["n_candidates"] == 2 * 5
    assert (out / "al_report.png").exists()
    assert (out / "round_002" / "calibration_val.png").exists()

    # --fork-from: a random-selection run that shares rounds 0-1 (labels, model 1)
    fork = tmp_path / "fork"
    fork_flags = [*flags[:-3], "--strategy", "random", "--random-seed", "5"]
    fork_flags += ["--fork-from", str(out), "--fork-round", "1"]
    with pytest.raises(ValueError, match="last evaluated round is 2"):
        fork_run(out, tmp_path / "nowhere", round=3)
    assert main(["al", *fork_flags, "--output-dir", str(fork), "--json"]) == 0
    assert json.loads((fork / "fork.json").read_text())["n_labels"] == 13
    fork_rows = ase.db.connect(fork / "labels.db").select()
    forked = {row.uid: row.al_round for row in fork_rows}
    parent = {row.uid: row.al_round for row in rows}
    shared = {uid for uid, r in parent.items() if r <= 1}
    assert len(forked) == 16
    assert {uid for uid, r in forked.items() if r <= 1} == shared
    assert sum(r == 2 for r in forked.values()) == 3
    model_1 = (out / "round_001" / "train" / "model.pt").read_bytes()
    assert (fork / "round_001" / "train" / "model.pt").read_bytes() == model_1
    fork_report = json.loads((fork / "al_report.json").read_text())
    assert fork_report["rounds"][1]["val"] == rounds[1]["val"]  # same model 1
    assert fork_report["rounds"][1]["selected"]["strategy"] == "random"
    # the same command resumes the finished fork; another run folder is refused
    assert main(["al", *fork_flags, "--output-dir", str(fork)]) == 0
    assert ase.db.connect(fork / "labels.db").count() == 16
    with pytest.raises(ValueError, match="already holds"):
        fork_run(fork, out, round=0)
