"""Tests of the reference data pipeline (``eformer datagen``) with real GFN2-xTB."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.db import connect
from ase.geometry import get_distances
from ase.io import write

from asecalc.training import datagen
from asecalc.training._water import FlexibleWaterIntra, build_ice_ih, pack_water
from asecalc.training.recipes import build_peptides

pytest.importorskip("tblite")

N_CALLS = {"count": 0}


def counting_xtb():
    """GFN2-xTB whose calculations are counted (to prove nothing is relabelled)."""
    from tblite.ase import TBLite

    class CountingTBLite(TBLite):
        def calculate(self, *args, **kwargs):
            N_CALLS["count"] += 1
            super().calculate(*args, **kwargs)

    return CountingTBLite(method="GFN2-xTB", verbosity=0)


def xtb_energy(atoms: Atoms) -> float:
    from tblite.ase import TBLite

    atoms = atoms.copy()
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    return atoms.get_potential_energy()


@pytest.fixture
def molecules_file(tmp_path):
    path = tmp_path / "mols.xyz"
    names = ["H2O", "CH4", "NH3", "CO2", "H2CO", "HCN"]
    write(path, [molecule(name) for name in names])
    return path, names


def test_label_file_stores_labels_and_provenance(molecules_file, tmp_path):
    path, names = molecules_file
    out = tmp_path / "data.db"
    summary = datagen.label_database(
        out, datagen.plan_file_tasks([path]), "xtb", workers=0, progress=False
    )
    assert (summary.written, summary.failed) == (len(names), 0)
    rows = list(connect(out).select())
    assert [row.formula for row in rows] == [
        molecule(n).get_chemical_formula() for n in names
    ]
    for row, name in zip(rows, names, strict=True):
        reference = molecule(name)
        assert row.energy == pytest.approx(xtb_energy(reference), abs=1e-8)
        assert row.forces.shape == (len(reference), 3)
        assert row.get("stress") is None  # molecules: no stress
        assert row.method == "GFN2-xTB"
        assert row.source == str(path)
        assert row.sampler == "label"
        assert row.uid == datagen.geometry_uid(row.toatoms())


def test_resume_does_not_relabel(molecules_file, tmp_path):
    path, names = molecules_file
    out = tmp_path / "data.db"
    tasks = datagen.plan_file_tasks([path], chunk=2)
    N_CALLS["count"] = 0
    first = datagen.label_database(
        out, tasks, counting_xtb, workers=0, limit=3, progress=False
    )
    assert (first.written, first.not_run) == (4, 2)  # whole tasks of 2 frames
    assert N_CALLS["count"] == 4
    ids_before = {row.uid: row.id for row in connect(out).select()}
    N_CALLS["count"] = 0
    second = datagen.label_database(out, tasks, counting_xtb, workers=0, progress=False)
    assert (second.written, second.skipped) == (2, 4)
    assert N_CALLS["count"] == 2  # only the missing frames were labelled
    rows = list(connect(out).select())
    assert len(rows) == len(names) == len({row.uid for row in rows})
    assert all(ids_before[row.uid] == row.id for row in rows if row.uid in ids_before)


def test_recipe_sampling_resumes_with_same_uids(tmp_path):
    config = datagen.SamplingConfig(
        temperatures_K=(300.0, 600.0),
        n_per_structure=4,
        samplers=("random", "normal-modes"),
        seed=3,
    )
    tasks = datagen.plan_recipe_tasks(["g2-holdout"], config)
    assert len({uid for task in tasks for uid in task.uids}) == 5 * 4  # 5 molecules
    out = tmp_path / "g2.db"
    first = datagen.label_database(
        out, tasks, "xtb", workers=0, limit=7, progress=False
    )
    again = datagen.plan_recipe_tasks(["g2-holdout"], config)  # re-planned: same uids
    second = datagen.label_database(out, again, "xtb", workers=0, progress=False)
    assert first.written + second.written == 20
    assert second.skipped == first.written
    rows = list(connect(out).select())
    assert len({row.uid for row in rows}) == 20
    assert {row.sampler for row in rows} == {"random", "normal-modes"}
    assert {row.temperature_K for row in rows} == {300.0, 600.0}
    assert all(row.recipe == "g2-holdout" and row.seed > 0 for row in rows)


def test_md_and_normal_mode_frames_are_thermal():
    water = molecule("H2O")
    frames = {}
    for sampler in ("md", "normal-modes"):
        task = datagen.Task(
            uids=[f"{sampler}{i}" for i in range(4)],
            info={"recipe": "t"},
            atoms=[water],
            sampler=sampler,
            temperature_K=600.0,
            seed=1,
            preoptimize=True,
        )
        labelled, failures = datagen.run_task(task, "xtb")
        assert not failures
        frames[sampler] = labelled
    e_near_min = xtb_energy(water)  # G2 geometry, close to the GFN2-xTB minimum
    for sampler, labelled in frames.items():
        energies = [atoms.get_potential_energy() for _, atoms, _ in labelled]
        for _, atoms, kvp in labelled:
            assert (kvp["temperature_K"], kvp["sampler"]) == (600.0, sampler)
            bonds = get_distances(atoms.positions[0], atoms.positions[1:])[1]
            assert np.all((bonds > 0.8) & (bonds < 1.25))  # thermal, not broken
        assert len(set(np.round(energies, 8))) == 4  # distinct configurations
        assert all(-0.05 < e - e_near_min < 1.0 for e in energies)  # eV: thermal


def test_failures_are_recorded_and_skipped(tmp_path):
    path = tmp_path / "bad.extxyz"
    radical = Atoms("OH", [[0, 0, 0], [0, 0, 0.97]])
    radical.set_initial_magnetic_moments(
        [2, 0]
    )  # 7 electrons, 2 unpaired: tblite fails
    write(path, [molecule("H2O"), radical])
    out = tmp_path / "data.db"
    tasks = datagen.plan_file_tasks([path])
    summary = datagen.label_database(out, tasks, "xtb", workers=0, progress=False)
    assert (summary.written, summary.failed) == (1, 1)
    log = out.with_name(out.name + ".failures.jsonl")
    record = json.loads(log.read_text())
    assert record["uid"] == datagen.geometry_uid(radical)
    assert "unpaired" in record["error"]
    rerun = datagen.label_database(out, tasks, "xtb", workers=0, progress=False)
    assert (rerun.written, rerun.failed, rerun.skipped) == (0, 0, 2)
    retry = datagen.label_database(
        out, tasks, "xtb", workers=0, progress=False, retry_failed=True
    )
    assert retry.failed == 1


def test_any_executor_works(molecules_file, tmp_path):
    path, names = molecules_file
    out = tmp_path / "threads.db"
    with ThreadPoolExecutor(2) as executor:
        summary = datagen.label_database(
            out,
            datagen.plan_file_tasks([path], chunk=1),
            "xtb",
            executor=executor,
            progress=False,
        )
    assert summary.written == len(names) == connect(out).count()


def test_periodic_water_gets_stress(tmp_path):
    box = pack_water(2, np.random.default_rng(3), cell=4.0, min_oo=2.6)
    path = tmp_path / "box.extxyz"
    write(path, box)
    out = tmp_path / "box.db"
    datagen.label_database(
        out, datagen.plan_file_tasks([path]), "xtb", workers=0, progress=False
    )
    row = connect(out).get(id=1)
    assert row.stress.shape == (6,)
    # isotropic finite difference: trace(stress)/3 = dE/dlnV / V
    eps, energies = 1e-4, []
    for sign in (1, -1):
        scaled = box.copy()
        scaled.set_cell(box.cell * (1 + sign * eps), scale_atoms=True)
        energies.append(xtb_energy(scaled))
    pressure_fd = (energies[0] - energies[1]) / (2 * eps) / box.get_volume() / 3
    assert row.stress[:3].mean() == pytest.approx(pressure_fd, rel=1e-3, abs=1e-6)


def test_numeric_looking_uids_can_be_stored(tmp_path):
    index = next(i for i in range(100_000) if datagen.make_uid(i).startswith("u"))
    uid = datagen.make_uid(index)
    float(uid[1:])  # the raw hash would parse as a number
    db = connect(tmp_path / "uid.db")
    db.write(molecule("H2"), uid=uid)
    assert db.get(uid=uid).uid == uid
    # seeds come from the same hash, also when the uid has its "u" prefix
    assert datagen.hash_seed(index) == int(uid[1:], 16)
    assert datagen.hash_seed("g2") == int(datagen.make_uid("g2"), 16)


def test_bad_input_gives_clear_errors(tmp_path, capsys):
    from asecalc.cli.main import main

    with pytest.raises(ValueError, match=r"unknown recipe 'nope'.*g2"):
        datagen.plan_recipe_tasks(["nope"], datagen.SamplingConfig())
    with pytest.raises(ValueError, match="unknown sampler"):
        datagen.plan_recipe_tasks(["g2"], datagen.SamplingConfig(samplers=("mc",)))
    with pytest.raises(FileNotFoundError, match=r"missing\.xyz"):
        datagen.plan_file_tasks([tmp_path / "missing.xyz"])
    assert (
        main(["datagen", "--recipe", "nope", "--output", str(tmp_path / "x.db")]) == 2
    )
    assert "unknown recipe" in capsys.readouterr().err
    assert main(["datagen", "--output", str(tmp_path / "x.db")]) == 2
    assert "--recipe" in capsys.readouterr().err


def test_cli_labels_structures(molecules_file, tmp_path, capsys):
    from asecalc.cli.main import main

    path, names = molecules_file
    out = tmp_path / "cli.db"
    argv = [
        "datagen",
        str(path),
        "--workers",
        "1",
        "--output",
        str(out),
        "--json",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["written"] == len(names)
    assert main(argv) == 0  # resumed: nothing new
    assert json.loads(capsys.readouterr().out)["skipped"] == len(names)


def test_recipe_structures_are_sane():
    peptides = dict(build_peptides(np.random.default_rng(0)))
    assert {
        name: atoms.get_chemical_formula(mode="hill")
        for name, atoms in peptides.items()
    } == {
        "alanine_dipeptide": "C6H12N2O2",
        "ace_gly_nme": "C5H10N2O2",
        "n_methylacetamide": "C3H7NO",
        "alanine": "C3H7NO2",
        "glycine": "C2H5NO2",
    }
    ice = build_ice_ih()[0][1]
    _, dist = get_distances(ice.positions, cell=ice.cell, pbc=True)
    oxygens = np.flatnonzero(ice.numbers == 8)
    hydrogens = np.flatnonzero(ice.numbers == 1)
    assert len(oxygens) == 16
    assert np.all(
        (dist[np.ix_(oxygens, hydrogens)] < 1.1).sum(axis=1) == 2
    )  # ice rules
    assert np.all((dist[np.ix_(hydrogens, oxygens)] < 1.1).sum(axis=1) == 1)
    box = pack_water(32, np.random.default_rng(0), cell=9.86, min_oo=2.5)
    density = box.get_masses().sum() / box.get_volume() * 1.66054  # g/cm³
    assert density == pytest.approx(1.0, abs=0.02)


def test_flexible_water_forces_match_finite_differences():
    from ase.calculators.fd import calculate_numerical_forces

    box = pack_water(4, np.random.default_rng(1), cell=6.0, min_oo=2.5)
    box.rattle(0.05, seed=2)
    box.positions[4] = box.positions[0] + [0.3, 1.2, 0.2]  # H inside the contact wall
    box.calc = FlexibleWaterIntra()
    numerical = calculate_numerical_forces(box, eps=1e-5)
    np.testing.assert_allclose(box.get_forces(), numerical, atol=1e-6)


def test_smiles_molecules_and_organics_recipes():
    pytest.importorskip("rdkit")
    from asecalc.training._smiles import atoms_from_smiles, canonical_smiles
    from asecalc.training.recipes import (
        G2_HOLDOUT,
        ORGANICS,
        ORGANICS_EXTRA,
        ORGANICS_HOLDOUT,
        get_recipe,
    )

    ethanol = atoms_from_smiles("CCO")
    assert ethanol.get_chemical_formula(mode="hill") == "C2H6O"
    carbon, oxygen = (np.flatnonzero(ethanol.numbers == z) for z in (6, 8))
    c_o = ethanol.get_all_distances()[np.ix_(carbon, oxygen)].min()
    assert c_o == pytest.approx(1.42, abs=0.04)  # MMFF C-O single bond
    np.testing.assert_allclose(atoms_from_smiles("CCO").positions, ethanol.positions)
    for bad, message in [("C1CC", "cannot parse"), ("C[NH3+]", "net charge")]:
        with pytest.raises(ValueError, match=message):
            atoms_from_smiles(bad)
    with pytest.raises(ValueError, match="cannot parse"):
        get_recipe("smiles:C1CC")
    # training and held-out molecules are disjoint, also from the G2 hold-out
    training = [*ORGANICS.values(), *ORGANICS_EXTRA.values()]
    train = {canonical_smiles(s) for s in training}
    held = {canonical_smiles(s) for s in ORGANICS_HOLDOUT.values()}
    assert len(train) == len(ORGANICS) + len(ORGANICS_EXTRA)
    assert not train & held
    formulas = {atoms_from_smiles(s).get_chemical_formula() for s in training}
    assert not formulas & {molecule(name).get_chemical_formula() for name in G2_HOLDOUT}
    config = datagen.SamplingConfig(temperatures_K=(300.0, 1000.0), n_per_structure=4)
    tasks = datagen.plan_recipe_tasks(["smiles:c1ccccc1O"], config)
    assert {task.info["structure"] for task in tasks} == {"c1ccccc1O"}
    assert {task.temperature_K for task in tasks} == {300.0, 800.0}  # clipped
    assert sum(len(task.uids) for task in tasks) == 4
