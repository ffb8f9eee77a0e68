"""Resume guards shared by NVE, metadynamics and thermodynamic integration.

A run that resumes from files on disk must continue on the same energy surface:
these helpers name the calculator a run used and refuse a resume with another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def calculator_identity(calc: Any) -> str:
    """Class name and model fingerprint (or parameters) of an ASE calculator.

    An :class:`~asecalc.EformerCalculator` (anything with a ``fingerprint``)
    gives a hash of its weights; other calculators their ``todict()``
    parameters, e.g. ``'EMT:{}'``.
    """
    fingerprint = getattr(calc, "fingerprint", None)
    if fingerprint is None:
        try:
            fingerprint = json.dumps(calc.todict(), sort_keys=True, default=str)
        except Exception:  # a calculator without todict(): its class is all we know
            fingerprint = "?"
    return f"{type(calc).__name__}:{fingerprint}"


def check_calculator(path: Path, stored: dict[str, Any], now: dict[str, Any]) -> None:
    """Raise ValueError if a checkpoint's calculator differs from this call's.

    Checkpoints written before the calculator was recorded pass unchecked.
    """
    old, new = stored.get("calculator"), now.get("calculator")
    if old is not None and new is not None and old != new:
        raise ValueError(
            f"cannot resume: {path} was run with the calculator {old}, this call "
            f"has {new}; resume with the same model (and dtype), or use another "
            "output_dir for a new run"
        )
