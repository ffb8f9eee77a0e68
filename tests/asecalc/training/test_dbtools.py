"""Tests of merging labelled databases by uid, and of frame metadata kept by datagen."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.db import connect
from ase.io import write

from asecalc.training import datagen
from asecalc.training.dbtools import info_key_value_pairs, merge_databases


def _labelled_db(path, n, seed, uid_prefix="f"):
    """ase.db with ``n`` rattled Cu cells labelled by EMT (energy, forces, stress)."""
    rng = np.random.default_rng(seed)
    db = connect(path)
    for i in range(n):
        atoms = bulk("Cu", cubic=True)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        atoms.get_stress()
        kvp = {"recipe": "cu", "frame": i}
        if uid_prefix is not None:
            kvp["uid"] = f"{uid_prefix}{seed}x{i}"
        db.write(atoms, key_value_pairs=kvp, data={"note": np.arange(3)})
    return path


def test_merge_copies_labels_once_and_is_idempotent(tmp_path):
    a = _labelled_db(tmp_path / "a.db", 4, seed=1)
    b = _labelled_db(tmp_path / "b.db", 3, seed=2)
    dst = tmp_path / "all.db"
    summary = merge_databases(dst, [a, (b, {"recipe": "cu-b"})], extra={"batch": 7})
    assert summary.written == {str(a): 4, str(b): 3}
    assert summary.total_rows == 7
    again = merge_databases(dst, [a, b])
    assert again.written == {str(a): 0, str(b): 0}
    assert again.skipped == {str(a): 4, str(b): 3}
    assert connect(dst).count() == 7

    source = {row.uid: row for row in connect(b).select()}
    for row in connect(dst).select(recipe="cu-b"):
        ref = source[row.uid]
        assert row.batch == 7  # extra pairs on every row; the source's pairs win
        assert row.energy == pytest.approx(ref.energy, abs=0)
        np.testing.assert_array_equal(row.forces, ref.forces)
        np.testing.assert_array_equal(row.stress, ref.stress)
        np.testing.assert_array_equal(row.data["note"], np.arange(3))
    assert connect(dst).count(recipe="cu") == 4


def test_merge_rows_without_uid_are_identified_by_geometry(tmp_path):
    plain = _labelled_db(tmp_path / "plain.db", 3, seed=5, uid_prefix=None)
    dst = tmp_path / "all.db"
    assert merge_databases(dst, [plain]).written == {str(plain): 3}
    uids = {row.uid for row in connect(dst).select()}
    assert uids == {datagen.geometry_uid(r.toatoms()) for r in connect(plain).select()}
    assert merge_databases(dst, [plain]).written == {str(plain): 0}


def test_merge_rejects_missing_source_and_self_merge(tmp_path):
    a = _labelled_db(tmp_path / "a.db", 1, seed=1)
    with pytest.raises(FileNotFoundError, match=r"nope\.db"):
        merge_databases(tmp_path / "all.db", [tmp_path / "nope.db"])
    with pytest.raises(ValueError, match="into itself"):
        merge_databases(a, [a])
    assert connect(a).count() == 1


def test_info_key_value_pairs_keeps_storable_scalars_only():
    info = {
        "config_type": "liquid",
        "deepmd_row": np.int64(17),
        "weight": np.float32(0.5),
        "flag": np.bool_(True),
        "energy": 1.0,  # ase.db reserved
        "uid": "x",  # provenance: the pipeline's own
        "bad key": 1,
        "class": 2,  # a Python keyword
        "numeric_text": "1e3",  # ase.db refuses strings that parse as numbers
        "array": np.zeros(3),
        "nan": float("nan"),
    }
    assert info_key_value_pairs(info) == {
        "config_type": "liquid",
        "deepmd_row": 17,
        "weight": 0.5,
        "flag": True,
    }


def test_datagen_keeps_frame_info_of_structure_files(tmp_path):
    frames = []
    for i, name in enumerate(["H2O", "CH4", "NH3"]):
        atoms = molecule(name)
        atoms.info = {"source_row": i, "config_type": f"gas-{name}"}
        frames.append(atoms)
    path = tmp_path / "mols.extxyz"
    write(path, frames)
    tasks = datagen.plan_file_tasks([path], chunk=2)
    out = tmp_path / "lab.db"
    summary = datagen.label_database(out, tasks, EMT, workers=0, progress=False)
    assert summary.written == 3
    rows = sorted(connect(out).select(), key=lambda row: row.source_row)
    assert [row.source_row for row in rows] == [0, 1, 2]
    assert [row.config_type for row in rows] == ["gas-H2O", "gas-CH4", "gas-NH3"]
    assert all(row.recipe == "file" and row.method == "EMT" for row in rows)


def test_cli_merge_sets_pairs_and_reports_json(tmp_path, capsys):
    import json

    from asecalc.cli.main import main

    a = _labelled_db(tmp_path / "a.db", 2, seed=1)
    dst = tmp_path / "all.db"
    flags = ["--set", "recipe=cu-x", "--set", "batch=3", "--set", "w=0.5", "--json"]
    assert main(["merge", str(dst), str(a), *flags]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["written"] == {str(a): 2}
    assert report["total_rows"] == 2
    rows = list(connect(dst).select())
    assert {(r.recipe, r.batch, r.w) for r in rows} == {("cu-x", 3, 0.5)}
    assert main(["merge", str(dst), str(a), "--set", "not a key"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
