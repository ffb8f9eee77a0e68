"""Fixed validation set and nested training subsets of a scaling directory.

Private: use :func:`asecalc.training.scale.prepare_split`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from asecalc.fileio import write_json_atomic


def prepare_split(
    data: str,
    output_dir: str | Path,
    select: str | None,
    val_fraction: float,
    fractions: list[float],
    seed: int,
) -> dict[str, Any]:
    """Write ``data/val.db`` and nested ``data/train_<f>.db`` subsets (idempotent).

    Returns the contents of ``data/split.json``: ``val`` path, ``train``
    mapping fraction -> path, ``pool`` path (the whole training pool, in
    permuted order) and sizes.
    """
    import ase.db
    import ase.io

    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"data fractions must be in (0, 1], got {f}")
    root = Path(output_dir) / "data"
    index_path = root / "split.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else None
    wanted = sorted({*fractions, 1.0})
    same = index and [
        index["data"],
        index["select"],
        index["seed"],
        index["val_fraction"],
    ] == [str(data), select, seed, val_fraction]
    if same and set(map(str, wanted)) <= set(index["train"]):
        return index
    root.mkdir(parents=True, exist_ok=True)
    if str(data).endswith(".db"):
        with ase.db.connect(str(data)) as db:
            rows = list(db.select(select or ""))
    else:
        rows = ase.io.read(str(data), index=select or ":")
    if len(rows) < 4:
        raise ValueError(
            f"{data!r} has {len(rows)} structures; a sweep needs at least 4"
        )
    perm = np.random.default_rng(seed).permutation(len(rows))
    n_val = min(max(round(val_fraction * len(rows)), 1), len(rows) - 2)
    val, pool = perm[:n_val], _cover_elements_first(rows, perm[n_val:])

    def write(path: Path, positions: np.ndarray) -> None:
        tmp = path.with_suffix(".tmp.db")
        tmp.unlink(missing_ok=True)
        with ase.db.connect(str(tmp)) as out:
            for i in positions:
                out.write(rows[int(i)])
        tmp.replace(path)

    index = {
        "data": str(data),
        "select": select,
        "seed": seed,
        "val": str(root / "val.db"),
        "n_val": int(n_val),
        "val_fraction": val_fraction,
        "pool": str(root / "train_1.0.db"),
        "train": {},
        "n_train": {},
    }
    write(root / "val.db", val)
    for f in wanted:
        n = max(round(f * len(pool)), 2)
        write(root / f"train_{f}.db", pool[:n])
        index["train"][str(f)], index["n_train"][str(f)] = (
            str(root / f"train_{f}.db"),
            n,
        )
    write_json_atomic(index_path, index)
    return index


def _cover_elements_first(rows: list[Any], order: np.ndarray) -> np.ndarray:
    """Reorder so the first few structures contain every element of the pool.

    Every nested subset then trains a model on all elements (the validation
    set may contain any of them).
    """
    seen: set[str] = set()
    front = []
    for k, i in enumerate(order):
        row = rows[int(i)]
        symbols = set(
            row.get_chemical_symbols() if isinstance(row, Atoms) else row.symbols
        )
        if symbols - seen:
            seen |= symbols
            front.append(k)
    rest = [k for k in range(len(order)) if k not in set(front)]
    return order[np.array(front + rest, dtype=int)]
