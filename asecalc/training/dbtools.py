"""Labelled-database utilities: merge databases by frame uid, keep frame metadata.

A labelled frame is identified by its ``uid`` key (see
:mod:`asecalc.training.datagen`): recipe frames by their slot, user structures
and active-learning labels by their geometry. :func:`merge_databases` copies the
rows of several databases into one, skipping every frame whose uid is already
there, so merging is idempotent and a merge that was killed can simply be run
again. Rows are copied with their labels (energy in eV, forces in eV/Å, stress in
eV/Å³), key-value pairs and data.
"""

from __future__ import annotations

import hashlib
import keyword
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

#: Provenance keys the pipeline writes itself; a frame's own info never overrides them.
PROVENANCE_KEYS = frozenset(
    {"uid", "method", "recipe", "structure", "sampler", "temperature_K", "seed"}
    | {"frame", "source"}
)


def _digest(parts: tuple[Any, ...]) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def make_uid(*parts: Any) -> str:
    """Return a 16-character hex hash of ``parts`` (a frame's identity).

    ase.db refuses strings that parse as numbers (``"0991560e76431785"``), so
    those few get a ``"u"`` prefix.
    """
    digest = _digest(parts)
    return f"u{digest}" if _is_number(digest) else digest


def hash_seed(*parts: Any) -> int:
    """Return a 64-bit integer hash of ``parts`` (the integer of :func:`make_uid`)."""
    return int(_digest(parts), 16)


def geometry_uid(atoms: Atoms) -> str:
    """Return a uid from numbers, positions (1e-6 Å), cell and pbc of ``atoms``."""
    arrays = (
        atoms.numbers,
        np.round(atoms.positions, 6),
        np.round(atoms.cell[:], 6),
        atoms.pbc,
    )
    return make_uid(*(a.tobytes().hex() for a in map(np.ascontiguousarray, arrays)))


def info_key_value_pairs(info: Mapping[str, Any]) -> dict[str, Any]:
    """Entries of ``atoms.info`` that an ase.db row can store as key-value pairs.

    Keeps str, bool, int and float values (numpy scalars included) under keys that
    are Python identifiers, are not ase.db's reserved keys (energy, forces, id, ...)
    and are not one of :data:`PROVENANCE_KEYS`. Strings that parse as numbers are
    dropped, since ase.db refuses them. Everything else (arrays, dicts) is dropped.
    """
    from ase.db.core import reserved_keys

    out: dict[str, Any] = {}
    for key, value in info.items():
        if not isinstance(key, str) or not key.isidentifier():
            continue
        if keyword.iskeyword(key) or key in reserved_keys or key in PROVENANCE_KEYS:
            continue
        if isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif isinstance(value, Integral):
            out[key] = int(value)
        elif isinstance(value, Real) and np.isfinite(float(value)):
            out[key] = float(value)
        elif isinstance(value, str) and not _is_number(value):
            out[key] = value
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass
class MergeSummary:
    """Rows written to ``destination`` and skipped (uid already present), per source."""

    destination: str
    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    total_rows: int = 0


def _row_uid(row: Any) -> str:
    uid = row.get("uid")
    return str(uid) if uid is not None else geometry_uid(row.toatoms())


def merge_databases(
    destination: str | Path,
    sources: Iterable[str | Path | tuple[str | Path, Mapping[str, Any]]],
    extra: Mapping[str, Any] | None = None,
    select: str | None = None,
) -> MergeSummary:
    """Copy the labelled rows of ``sources`` into ``destination``, once per uid.

    Parameters
    ----------
    destination : path
        ase.db file to append to (created if missing).
    sources : iterable
        Paths of ase.db files, or ``(path, key_value_pairs)`` pairs whose
        key-value pairs are set on (or override) every row copied from that file,
        e.g. ``("new.db", {"recipe": "liquid-water-64"})``.
    extra : mapping, optional
        Key-value pairs set on every copied row (a source's own pairs win).
    select : str, optional
        ase.db query: copy only the source rows that match (e.g. ``"al_round<=2"``).

    Returns
    -------
    MergeSummary

    Notes
    -----
    A row without a ``uid`` key (a database not made by eformer) is identified by
    the geometry uid of its structure, which it is written with. Each source is
    copied in one transaction: a killed merge leaves whole sources, and running it
    again copies only what is missing.

    Raises
    ------
    FileNotFoundError
        If a source file does not exist.
    ValueError
        If a source is the destination itself.
    """
    from ase.db import connect

    destination = Path(destination)
    plan: list[tuple[Path, dict[str, Any]]] = []
    for item in sources:
        path, pairs = item if isinstance(item, tuple) else (item, {})
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"source database {str(path)!r} not found")
        if destination.exists() and path.resolve() == destination.resolve():
            raise ValueError(f"cannot merge {str(path)!r} into itself")
        plan.append((path, {**(extra or {}), **pairs}))
    dst = connect(destination)
    have = {_row_uid(row) for row in dst.select()}
    summary = MergeSummary(str(destination))
    for path, pairs in plan:
        written = skipped = 0
        with dst:
            for row in connect(path).select(select):
                uid = _row_uid(row)
                if uid in have:
                    skipped += 1
                    continue
                have.add(uid)
                kvp = {**row.key_value_pairs, **pairs, "uid": uid}
                dst.write(row.toatoms(), key_value_pairs=kvp, data=row.get("data", {}))
                written += 1
        summary.written[str(path)] = written
        summary.skipped[str(path)] = skipped
    summary.total_rows = dst.count()
    return summary
