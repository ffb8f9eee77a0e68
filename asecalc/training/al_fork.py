"""Fork an active-learning run: a new run that shares another's first rounds.

Comparisons of active-learning settings (strategy, trust window, exploration)
should start from the same labels and the same model, so that the curves differ
only by what the settings choose. :func:`fork_run` makes a new output folder
from a run folder at round ``R``: the labels that model ``R`` was trained on
(``al_round <= R``), model ``R`` and its evaluation, and earlier rounds' files
and records. The new run's state says "round R evaluated", so
:class:`~asecalc.training.al.ActiveLearning` goes on with round R's exploration
under the new settings. The source run is only read.

A fork is recorded in ``fork.json``; calling :func:`fork_run` again for the same
source and round does nothing (so the same ``eformer al --fork-from`` command
resumes a killed forked run), and any other existing run folder is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from asecalc.fileio import write_json_atomic

#: Keys of a round's record written after its evaluation (dropped at the fork round).
_AFTER_EVALUATE = ("explore", "selected", "labelled")
_ROUND_FILES = ("train", "calibration_val.png", "calibration_test.png")


def _evaluated_rounds(state: dict[str, Any]) -> int:
    """Last round whose model was trained and evaluated in ``state`` (-1: none)."""
    r, phase = state["round"], state["phase"]
    if phase in (None, "seed"):
        return -1
    return r if phase != "train" else r - 1


def fork_run(
    source: str | Path, output_dir: str | Path, round: int | None = None
) -> dict[str, Any]:
    """Start ``output_dir`` as a copy of run ``source`` up to round ``round``.

    Parameters
    ----------
    source : path
        Folder of an active-learning run (``al_state.json``, ``labels.db``).
    output_dir : path
        New run folder: must not hold a run, unless it is this same fork.
    round : int, optional
        Round to branch after its evaluation (default: the source's last
        evaluated round). Its model ``round_RRR/train/model.pt`` must exist.

    Returns
    -------
    dict
        The fork record (also in ``output_dir/fork.json``): source, round,
        n_labels, complete.

    Raises
    ------
    FileNotFoundError
        If ``source`` is not a run folder or lacks model ``round``.
    ValueError
        If ``round`` was not evaluated in ``source``, or ``output_dir`` already
        holds another run.
    """
    from ase.db import connect

    from asecalc.training.dbtools import merge_databases

    src, out = Path(source).resolve(), Path(output_dir).resolve()
    state_path = src / "al_state.json"
    if not state_path.is_file() or not (src / "labels.db").is_file():
        raise FileNotFoundError(
            f"{str(src)!r} is not an active-learning run folder "
            "(no al_state.json and labels.db)"
        )
    state = json.loads(state_path.read_text())
    last = _evaluated_rounds(state)
    r = last if round is None else int(round)
    if not 0 <= r <= last:
        raise ValueError(
            f"cannot fork {str(src)!r} at round {r}: its last evaluated round is {last}"
        )
    record: dict[str, Any] = {"source": str(src), "round": r}
    marker = out / "fork.json"
    previous: dict[str, Any] = (
        json.loads(marker.read_text()) if marker.is_file() else {}
    )
    same = bool(previous) and all(previous.get(k) == v for k, v in record.items())
    if same and previous.get("complete"):
        return previous  # this fork exists already: the run resumes
    if not same and ((out / "al_state.json").exists() or marker.exists()):
        raise ValueError(
            f"{str(out)!r} already holds an active-learning run; fork into a new "
            "folder (or drop --fork-from to resume that run)"
        )
    if out == src:
        raise ValueError("cannot fork a run into its own folder")
    model = src / f"round_{r:03d}" / "train" / "model.pt"
    if not model.is_file():
        raise FileNotFoundError(f"cannot fork at round {r}: {model} is missing")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {**record, "complete": False})  # a kill redoes the copy
    (out / "al_state.json").unlink(missing_ok=True)
    for k in range(r + 1):
        round_src = src / f"round_{k:03d}"
        if not round_src.is_dir():
            continue  # an archived run may keep only the last model
        names = _ROUND_FILES if k == r else [p.name for p in round_src.iterdir()]
        for name in names:
            item = round_src / name
            target = out / round_src.name / name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            elif item.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(item, target)
    labels = out / "labels.db"
    labels.unlink(missing_ok=True)
    merge_databases(labels, [src / "labels.db"], select=f"al_round<={r}")
    rounds = [dict(rec) for rec in state["rounds"][: r + 1]]
    for key in _AFTER_EVALUATE:
        rounds[r].pop(key, None)
    new_state = {
        "round": r,
        "phase": "evaluate",
        "done": False,
        "stop_reason": "",
        "rounds": rounds,
    }
    write_json_atomic(out / "al_state.json", new_state)
    record.update(n_labels=connect(labels).count(), complete=True)
    write_json_atomic(marker, record)
    return record
