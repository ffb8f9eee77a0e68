"""Free-energy surfaces from HILLS/COLVAR: sums, reweighting, minima, barriers, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units

from analysis import fes, metad

KT = units.kB * 300  # eV


def write_hills(
    path: Path, centres, sigma, heights, periodic=False, biasf=None
) -> None:
    """A PLUMED-style HILLS file for CV ``x``."""
    fields = "time x sigma_x height" + (" biasf" if biasf else "")
    lines = [f"#! FIELDS {fields}"]
    if periodic:
        lines += ["#! SET min_x -pi", "#! SET max_x pi"]
    for k, (c, h) in enumerate(zip(centres, heights, strict=True)):
        lines.append(f"{k} {c} {sigma} {h}" + (f" {biasf}" if biasf else ""))
    path.write_text("\n".join(lines) + "\n")


def test_read_plumed_file_and_periodic_hills(tmp_path: Path) -> None:
    """Header, SET pi constants, repeated headers (restart); hills wrap across ±π."""
    path = tmp_path / "HILLS"
    write_hills(path, [3.0], 0.3, [2.0], periodic=True)
    with path.open("a") as handle:  # a restart appends a second header
        handle.write("#! FIELDS time x sigma_x height\n1 -3.0 0.3 2.0\n")
    table = fes.read_plumed_file(path)
    assert table.periodic["x"] == pytest.approx((-np.pi, np.pi))
    assert table["x"].tolist() == [3.0, -3.0]
    surface = fes.fes_from_hills(path, 300, bins=200)
    x = surface.axes[0]
    dist = lambda c: (x - c + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
    bias = 2.0 * (
        np.exp(-0.5 * (dist(3.0) / 0.3) ** 2) + np.exp(-0.5 * (dist(-3.0) / 0.3) ** 2)
    )
    expected = (-bias - (-bias).min()) * metad.KJMOL
    np.testing.assert_allclose(surface.free_energy, expected, atol=1e-12)
    assert abs(x[np.argmin(surface.free_energy)]) == pytest.approx(np.pi, abs=0.05)
    with pytest.raises(KeyError, match="no column"):
        table["y"]


def test_minima_and_barriers_analytic_1d_and_2d() -> None:
    """Watershed minima and saddles on analytic surfaces (periodic in 2D)."""
    x = np.linspace(-2, 2, 401)
    f = 0.1 * (x**2 - 1) ** 2 + 0.01 * x  # eV, tilted double well
    s1 = fes.FreeEnergySurface(("x",), (x,), f - f.min(), 300, (None,))
    out = fes.summarize(s1)
    assert [round(m["cv"]["x"], 1) for m in out["minima"]] == [-1.0, 1.0]
    (barrier,) = out["barriers"]
    assert barrier["saddle_cv"]["x"] == pytest.approx(0.025, abs=0.011)  # f'(x) = 0
    f_saddle = f[np.abs(x) < 0.5].max() - f.min()
    assert barrier["forward"]["eV"] == pytest.approx(f_saddle, abs=1e-4)
    assert barrier["forward"]["kJmol"] == pytest.approx(
        barrier["forward"]["eV"] / metad.KJMOL
    )
    assert barrier["forward"]["kT"] == pytest.approx(barrier["forward"]["eV"] / KT)
    a = np.linspace(-np.pi, np.pi, 72, endpoint=False)
    phi, psi = np.meshgrid(a, a, indexing="ij")
    f2 = 0.05 * (np.cos(2 * phi) + 1) + 0.03 * (1 - np.cos(psi))  # 2 minima in phi
    s2 = fes.FreeEnergySurface(
        ("phi", "psi"), (a, a), f2 - f2.min(), 300, ((-np.pi, np.pi),) * 2
    )
    out2 = fes.summarize(s2)
    assert sorted(abs(round(m["cv"]["phi"], 1)) for m in out2["minima"]) == [1.6, 1.6]
    assert out2["barriers"][0]["forward"]["eV"] == pytest.approx(0.1, abs=1e-3)
    shallow = fes.FreeEnergySurface(
        ("x",), (x,), 0.1 * KT * np.cos(8 * x) ** 2, 300, (None,)
    )
    assert len(fes.find_minima(shallow, min_depth_kT=1.0)[0]) == 1


def test_reweighting_and_block_errors_on_known_distribution() -> None:
    """Unbiased Gaussian samples (rbias = 0): F = x²/(2σ²) kT within block errors."""
    rng = np.random.default_rng(0)
    n, sigma = 40000, 0.1
    x = rng.normal(0, sigma, n)
    data = np.column_stack([np.arange(n), x, np.zeros(n), np.zeros(n)])
    table = fes.PlumedTable(["time", "x", "metad.bias", "metad.rbias"], data, {})
    surface = fes.fes_from_colvar(
        table, 300, bins=20, ranges=[(-0.2, 0.2)], n_blocks=8, discard_fraction=0.0
    )
    exact = surface.axes[0] ** 2 / (2 * sigma**2) * KT
    dev = surface.free_energy - exact
    dev -= dev[np.argmin(surface.free_energy)]
    assert np.all(surface.error > 0)
    assert np.nanmax(surface.error) < 0.2 * KT
    assert np.mean(np.abs(dev) < 3 * surface.error + 1e-3 * KT) > 0.85
    assert np.abs(dev).max() < 0.3 * KT
    with pytest.raises(ValueError, match="rbias"):
        fes.fes_from_colvar(fes.PlumedTable(["time", "x"], data[:, :2], {}), 300)


@pytest.mark.plumed
def test_well_tempered_hills_heights_carry_gamma_factor(tmp_path: Path) -> None:
    """Real PLUMED: HILLS heights are h·γ/(γ-1), so Σhills·(γ-1)/γ is the bias."""
    pytest.importorskip("plumed")
    from ase.calculators.lj import LennardJones

    atoms = Atoms("Ar2", positions=[[0, 0, 0], [3.8, 0, 0]])
    settings = metad.MetadynamicsSettings(
        height_kJmol=0.5, sigma=(0.02,), biasfactor=8, pace=20, colvar_stride=1
    )
    lines = metad.build_plumed_input([metad.parse_cv("distance:0,1")], settings)
    run = metad.run_metadynamics(
        atoms,
        LennardJones(sigma=3.4, epsilon=0.0104, rc=10.0),
        lines,
        400,
        tmp_path,
        temperature_K=300,
        timestep=2 * units.fs,
    )
    hills = fes.read_plumed_file(run.hills)
    assert hills["height"][0] == pytest.approx(0.5 * 8 / 7)
    colvar = fes.read_plumed_file(run.colvar)
    # at step k the bias includes the hills deposited before step k
    rows = colvar.data[-20:]
    n_before = [int(np.sum(hills["time"] < t - 1e-9)) for t in rows[:, 0]]
    for row, n in zip(rows, n_before, strict=True):
        sub = fes.PlumedTable(hills.fields, hills.data[:n], {}, hills.constants)
        bias = fes.final_bias(sub, ["cv1"], row[1:2][None, :])[0]
        assert bias == pytest.approx(row[colvar.fields.index("metad.bias")], rel=1e-4)


def test_cli_fes_json_and_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eformer fes HILLS --json`: two minima, barrier in three units, files written."""
    from asecalc.cli.main import main

    centres = np.r_[np.full(30, 0.15), np.full(30, 0.35), np.full(8, 0.25)]
    hills = tmp_path / "HILLS"
    write_hills(hills, centres, 0.04, np.ones(len(centres)), biasf=6)
    out = tmp_path / "fes"
    assert main(["fes", str(hills), "--json", "--output-dir", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert sorted(round(m["cv"]["x"], 2) for m in summary["minima"]) == [0.15, 0.35]
    barrier = summary["barriers"][0]["forward"]
    assert barrier["kJmol"] > 5
    assert barrier["eV"] == pytest.approx(barrier["kJmol"] * metad.KJMOL)
    assert (out / "fes.png").stat().st_size > 1000
    assert (out / "fes.dat").read_text().startswith("#! FIELDS x free_energy_kJmol")
    assert json.loads((out / "fes.json").read_text())["minima"] == summary["minima"]
