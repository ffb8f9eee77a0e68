"""Multiple-walkers metadynamics: WALKERS_* input, shared hills, FES of all walkers."""

from __future__ import annotations

import functools
import json
import shutil
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.io import write

from analysis import fes, metad
from tests.analysis.test_metad import DoubleWell, double_well_atoms

GAMMA = 5.0
SETTINGS = metad.MetadynamicsSettings(
    height_kJmol=1.5,
    sigma=(0.015,),
    biasfactor=GAMMA,
    pace=20,
    colvar_stride=5,
    grid=((0.05, 0.45),),
)
N_STEPS = 600  # per walker: 30 hills each


def hills_before(table: fes.PlumedTable, time_ps: float) -> fes.PlumedTable:
    """The hills of ``table`` deposited before ``time_ps``."""
    keep = table["time"] < time_ps - 1e-9
    return fes.PlumedTable(table.fields, table.data[keep], table.periodic)


def bias_at(hills: fes.PlumedTable, x_nm: float) -> float:
    """Bias V(x) in kJ/mol of ``hills`` (HILLS heights carry γ/(γ-1))."""
    if not len(hills.data):
        return 0.0
    return float(fes.final_bias(hills, ["cv1"], np.array([[x_nm]]))[0])


def run_toy_walkers(
    out: Path, n_steps: int, restart: bool = False, executor: Executor | None = None
):
    """Two walkers of the double well, both from the left well, seeds 3 and 4."""
    return metad.run_walkers(
        double_well_atoms(),
        functools.partial(DoubleWell, a=0.078),
        [metad.parse_cv("distance:0,1")],
        SETTINGS,
        n_steps,
        out,
        n_walkers=2,
        read_stride=10,
        timestep=4 * units.fs,
        friction=0.02 / units.fs,
        seed=3,
        restart=restart,
        executor=executor,
    )


@pytest.fixture(scope="module")
def two_walkers(tmp_path_factory: pytest.TempPathFactory):
    """A finished two-walker run of N_STEPS steps each (shared by the tests)."""
    pytest.importorskip("plumed")
    out = tmp_path_factory.mktemp("walkers") / "run"
    # one worker: walker 1 starts after walker 0 has finished, so what each walker
    # can have read of the other's hills does not depend on the machine's load
    with ProcessPoolExecutor(max_workers=1) as pool:
        return run_toy_walkers(out, N_STEPS, executor=pool)


# ------------------------------------------------------------------ no kernel
def test_walker_keywords_on_metad_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WALKERS_* with an absolute directory (0-based id); one walker: FILE only."""
    monkeypatch.chdir(tmp_path)
    cvs = [metad.parse_cv("distance:0,1")]
    plain = metad.build_plumed_input(cvs, SETTINGS)
    lines = metad.build_plumed_input(cvs, SETTINGS, walker=metad.Walker(3, 2, "mw"))
    line = next(x for x in lines if "METAD" in x)
    shared = (tmp_path / "mw").resolve()
    keywords = f"WALKERS_N=3 WALKERS_ID=2 WALKERS_DIR={shared} WALKERS_RSTRIDE=20 "
    assert f" FILE=HILLS {keywords}" in line
    assert lines[0] == plain[0] == "cv1: DISTANCE ATOMS=1,2"  # atoms stay 1-based
    assert lines[-1] == plain[-1]
    strided = metad.Walker(2, 0, shared, read_stride=7)
    assert "WALKERS_RSTRIDE=7" in strided.to_plumed(pace=20)
    assert strided.hills_file == shared / "HILLS.0"
    single = metad.build_plumed_input(cvs, SETTINGS, walker=metad.Walker(1, 0, "mw"))
    assert f"FILE={shared / 'HILLS.0'}" in single[1]
    assert "WALKERS" not in single[1]
    for n, index in ((2, 2), (2, -1), (0, 0)):
        with pytest.raises(ValueError, match="0 <= index < n_walkers"):
            metad.Walker(n, index, shared)
    with pytest.raises(ValueError, match="read_stride"):
        metad.Walker(2, 0, shared, read_stride=0)
    with pytest.raises(ValueError, match="without spaces"):
        metad.Walker(2, 0, tmp_path / "my runs")


def write_hills_file(path: Path, times, centres, heights, sigma: float = 0.02) -> None:
    """A walker's HILLS file for CV ``cv1`` (well-tempered columns, γ = 5)."""
    rows = [
        f"{t} {c} {sigma} {h} {GAMMA} 0"
        for t, c, h in zip(times, centres, heights, strict=True)
    ]
    header = "#! FIELDS time cv1 sigma_cv1 height biasf clock\n"
    path.write_text(header + "\n".join(rows) + "\n")


def test_fes_of_walker_directory_sums_all_files(tmp_path: Path) -> None:
    """F(dir) = F(HILLS.0) + F(HILLS.1) + const; n_hills counts hills in time."""
    rng = np.random.default_rng(7)
    times = {0: np.arange(1.0, 9.0), 1: np.arange(1.5, 9.5)}  # ps, interleaved
    for k, t in times.items():
        centres = rng.uniform(0.1, 0.4, len(t))
        write_hills_file(tmp_path / f"HILLS.{k}", t, centres, rng.uniform(1, 2, len(t)))
    (tmp_path / "bck.0.HILLS.0").write_text("#! FIELDS time cv1\n0 0.3\n")  # backup
    grid = {"temperature_K": 300, "bins": 80, "ranges": [(0.05, 0.45)]}
    both = fes.fes_from_hills(tmp_path, **grid)
    parts = [fes.fes_from_hills(tmp_path / f"HILLS.{k}", **grid) for k in (0, 1)]
    total = parts[0].free_energy + parts[1].free_energy
    np.testing.assert_allclose(both.free_energy, total - total.min(), atol=1e-12)
    assert np.ptp(both.free_energy) > np.ptp(parts[0].free_energy)

    table = fes.read_hills(tmp_path)
    assert len(table.data) == 16
    assert np.all(np.diff(table["time"]) > 0)  # walkers interleaved in time
    early = fes.fes_from_hills(tmp_path, n_hills=6, **grid)
    first = [
        fes.read_plumed_file(tmp_path / f"HILLS.{k}").data[:3] for k in (0, 1)
    ]  # times 1, 2, 3 and 1.5, 2.5, 3.5
    by_hand = fes.PlumedTable(table.fields, np.concatenate(first), {}, {})
    expected = fes.fes_from_hills(by_hand, **grid)
    np.testing.assert_allclose(early.free_energy, expected.free_energy, atol=1e-12)

    (tmp_path / "HILLS.10").write_text((tmp_path / "HILLS.1").read_text())
    assert [p.name for p in fes.hills_files(tmp_path)] == [
        "HILLS.0",
        "HILLS.1",
        "HILLS.10",
    ]
    (tmp_path / "HILLS.10").write_text("#! FIELDS time cv1 sigma_cv1 height\n1 2 3 4\n")
    with pytest.raises(ValueError, match="not one run"):
        fes.read_hills(tmp_path)
    with pytest.raises(FileNotFoundError, match="no HILLS"):
        fes.read_hills(tmp_path / "walker_0")


def test_colvars_of_walkers_interleaved_in_time(tmp_path: Path) -> None:
    """walker_<i>/COLVAR in walker order, rows sorted by time (stable)."""
    for k in (0, 1, 2):
        (tmp_path / f"walker_{k}").mkdir()
        rows = "\n".join(f"{t} {k} 0 0" for t in range(5))
        (tmp_path / f"walker_{k}" / "COLVAR").write_text(
            f"#! FIELDS time cv1 metad.bias metad.rbias\n{rows}\n"
        )
    assert [p.parent.name for p in fes.colvar_files(tmp_path)] == [
        "walker_0",
        "walker_1",
        "walker_2",
    ]
    table = fes.read_colvars(tmp_path)
    assert table["time"].tolist() == [t for t in range(5) for _ in range(3)]
    assert table["cv1"].tolist() == [0, 1, 2] * 5  # equal times keep walker order
    single = tmp_path / "walker_1" / "COLVAR"
    assert len(fes.read_colvars(single).data) == 5


def test_run_walkers_refuses_threads_lambdas_and_stale_hills(tmp_path: Path) -> None:
    """Errors before any PLUMED step, each naming the fix."""
    args = (double_well_atoms(), DoubleWell, [metad.parse_cv("distance:0,1")])
    with pytest.raises(TypeError, match="must pickle"):
        metad.run_walkers(
            args[0], lambda: DoubleWell(), *args[2:], SETTINGS, 1, tmp_path
        )
    (tmp_path / "HILLS.0").write_text("")
    with pytest.raises(ValueError, match="restart=True"):
        metad.run_walkers(*args, SETTINGS, 1, tmp_path, n_walkers=2)
    with pytest.raises(ValueError, match=r"no walkers\.json"):
        metad.run_walkers(*args, SETTINGS, 1, tmp_path, restart=True)
    with pytest.raises(ValueError, match="n_walkers >= 1"):
        metad.run_walkers(*args, SETTINGS, 1, tmp_path / "none", n_walkers=0)
    with ThreadPoolExecutor(2) as pool, pytest.raises(TypeError, match="process"):
        metad.run_walkers(*args, SETTINGS, 1, tmp_path / "new", executor=pool)


# ------------------------------------------------------------------ real kernel
@pytest.mark.plumed
def test_two_walkers_feel_each_others_hills(two_walkers) -> None:
    """Walkers write HILLS.0/1 in the shared directory and read each other's:
    walker 1, started after walker 0 finished, feels all of walker 0's hills on
    top of its own from its first read on; walker 0 felt only its own."""
    out = two_walkers.output_dir
    assert two_walkers.hills == [out / "HILLS.0", out / "HILLS.1"]
    assert sorted(p.name for p in out.glob("walker_*/HILLS*")) == []
    hills = [fes.read_plumed_file(p) for p in two_walkers.hills]
    assert [len(h.data) for h in hills] == [N_STEPS // SETTINGS.pace] * 2
    record = json.loads((out / "walkers.json").read_text())
    assert record["seeds"] == [3, 4]
    assert record["steps"] == two_walkers.total_steps == [N_STEPS, N_STEPS]
    first, second = (fes.read_plumed_file(p).data[1:] for p in two_walkers.colvars)
    own = np.array([bias_at(hills_before(hills[0], t), x) for t, x in first[:, :2]])
    assert np.abs(first[:, 2] - own).max() < 0.05  # kJ/mol, grid interpolation
    read = second[second[:, 0] > 0.04 + 1e-9]  # after its first read (step 10 of 4 fs)
    other = np.array([bias_at(hills[0], x) for x in read[:, 1]])
    mine = [bias_at(hills_before(hills[1], t), x) for t, x in read[:, :2]]
    assert other.mean() > 0.5  # walker 0's hills matter where walker 1 went
    assert np.abs(read[:, 2] - (other + mine)).max() < 0.05


@pytest.mark.plumed
def test_walkers_restart_reads_all_hills(two_walkers, tmp_path: Path) -> None:
    """restart=True: step counts continue, both HILLS grow, and each walker starts
    with the hills of both walkers (PLUMED RESTART reads every HILLS.<i>)."""
    out = tmp_path / "run"
    shutil.copytree(two_walkers.output_dir, out)
    old = [fes.read_plumed_file(out / f"walker_{k}" / "COLVAR") for k in (0, 1)]
    old_hills = [fes.read_plumed_file(out / f"HILLS.{k}") for k in (0, 1)]
    before = fes.read_hills(out)  # every hill in the files when the walkers restart
    extended = run_toy_walkers(out, N_STEPS // 2, restart=True)
    assert extended.total_steps == [N_STEPS + N_STEPS // 2] * 2
    for k in (0, 1):
        state = json.loads((out / f"walker_{k}" / "metad.json").read_text())
        assert state["total_steps"] == N_STEPS + N_STEPS // 2
        hills = fes.read_plumed_file(out / f"HILLS.{k}")
        assert len(hills.data) == (N_STEPS + N_STEPS // 2) // SETTINGS.pace
        colvar = fes.read_plumed_file(extended.colvars[k])
        first_new = len(old[k].data)
        assert colvar["time"][first_new] > colvar["time"][first_new - 1]
        x, felt = colvar["cv1"][first_new], colvar["metad.bias"][first_new]
        own, both = bias_at(old_hills[k], x), bias_at(before, x)
        assert both > own + 0.5  # the other walker's hills matter here
        assert felt > 0.99 * both - 0.01  # grid interpolation
    assert json.loads((out / "walkers.json").read_text())["steps"] == [900, 900]


@pytest.mark.plumed
def test_cli_walkers_restart_and_fes_of_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eformer metad --walkers 3 --walker-starts` (2 frames, cycled), `--restart`
    without --cv, `eformer fes DIR` over all walkers (hills and reweighting)."""
    pytest.importorskip("plumed")
    from asecalc.cli.main import main

    starts = tmp_path / "starts.xyz"
    dimers = [Atoms("Ar2", positions=[[0, 0, 0], [r, 0, 0]]) for r in (3.7, 4.1)]
    write(starts, dimers)
    out = tmp_path / "mw"
    common = ["--calc", "lj", "--steps", "100", "--timestep", "2", "--output-dir"]
    argv = ["metad", str(starts), "--walkers", "3", "--walker-starts", str(starts)]
    cv = ["--cv", "d=distance:0,1", "--sigma", "0.005", "--pace", "10"]
    assert main([*argv, *cv, "--colvar-stride", "2", *common, str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["walkers"] == 3
    assert summary["total_steps"] == [100, 100, 100]
    record = json.loads((out / "walkers.json").read_text())
    assert record["start_index"] == [0, 1, 0]
    assert summary["next"] == f"eformer fes {out} --temperature 300"
    assert main(["metad", str(starts), "--restart", *common, str(out)]) == 0
    assert json.loads((out / "walkers.json").read_text())["steps"] == [200] * 3
    assert [len(fes.read_plumed_file(p).data) for p in fes.hills_files(out)] == [20] * 3
    for method in ("hills", "reweight"):
        dest = tmp_path / method
        args = ["fes", str(out), "--method", method, "--blocks", "3", "--json"]
        assert main([*args, "--output-dir", str(dest)]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["cv_names"] == ["d"]
        assert result["error_method"].startswith("block analysis (3 blocks)")
        assert "COLVAR of 3 walkers" in result["error_method"]
    bad = ["metad", str(starts), *cv, "--read-stride", "5", *common, str(out / "x")]
    assert main(bad) == 2
    assert "need --walkers N" in capsys.readouterr().err
