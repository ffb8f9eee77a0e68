"""Smoke tests of ``eformer bench`` and its benchmark structures (tiny settings)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from asecalc.bench import aspirin, structure_for_size, time_call, water_box
from asecalc.cli.main import main


def test_aspirin_geometry():
    atoms = aspirin()
    assert atoms.get_chemical_formula(mode="hill") == "C9H8O4"
    assert not atoms.pbc.any()
    distances = atoms.get_all_distances()[np.triu_indices(21, 1)]
    assert 0.9 < distances.min() < 1.2  # a C-H or O-H bond


@pytest.mark.parametrize("n_molecules", [8, 64])
def test_water_box_density_and_overlaps(n_molecules):
    atoms = water_box(n_molecules, seed=3)
    assert len(atoms) == 3 * n_molecules
    density = atoms.get_masses().sum() / atoms.get_volume() * 1.66053907
    assert density == pytest.approx(1.0, rel=1e-4)  # g/cm3
    i, j, d = neighbor_list("ijd", atoms, 1.6)
    molecule = np.arange(len(atoms)) // 3
    intramolecular = molecule[i] == molecule[j]
    assert intramolecular.all(), (
        f"intermolecular contact {d[~intramolecular].min():.2f} A"
    )
    np.testing.assert_allclose(d[d < 1.2], 0.9572, atol=1e-9)  # intact O-H bonds
    again = water_box(n_molecules, seed=3)
    np.testing.assert_array_equal(atoms.positions, again.positions)
    assert not np.array_equal(atoms.positions, water_box(n_molecules, seed=4).positions)


def test_structure_for_size_names_and_errors():
    assert structure_for_size("aspirin")[0] == "aspirin"
    label, atoms = structure_for_size(192)
    assert (label, len(atoms)) == ("water64", 192)
    with pytest.raises(ValueError, match="multiple of 3"):
        structure_for_size(20)
    with pytest.raises(ValueError, match="atom count"):
        structure_for_size("benzene")


def test_time_call_counts_calls():
    calls = []
    result = time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5
    assert len(result["times_s"]) == 3
    assert result["min_s"] <= result["median_s"] <= result["max_s"]


def test_bench_cli_json_with_model_file(tiny_model_path, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    code = main(
        [
            "bench",
            "--model",
            str(tiny_model_path),
            "--sizes",
            "21,24",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--json",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dtype"] == "float64"
    assert summary["torch_threads"] == 1
    assert torch.get_num_threads() == threads  # restored after the run
    assert [r["structure"] for r in summary["results"]] == ["aspirin", "water8"]
    for row, n_atoms in zip(summary["results"], [21, 24], strict=True):
        assert row["n_atoms"] == n_atoms
        assert len(row["times_s"]) == 2
        assert row["atom_steps_per_s"] == pytest.approx(n_atoms / row["median_s"])
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["results"][1]["n_atoms"] == 24


def test_bench_cli_preset_table(capsys):
    code = main(
        [
            "bench",
            "--preset",
            "S",
            "--dtype",
            "float32",
            "--sizes",
            "21",
            "--repeats",
            "1",
            "--warmup",
            "0",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "preset S" in out
    assert "float32" in out
    assert "aspirin" in out


def test_bench_cli_missing_model_suggests_preset(tmp_path, capsys):
    code = main(["bench", "--model", str(tmp_path / "none.pt"), "--sizes", "21"])
    assert code == 2
    assert "--preset S" in capsys.readouterr().err
