"""Helpers shared by subcommands: calculators from a spec, JSON output, files."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from asecalc.fileio import json_default as _json_default
from asecalc.fileio import (  # re-exported for the CLI modules
    write_json_atomic as write_json_atomic,
)
from asecalc.fileio import write_text_atomic as write_text_atomic

CALC_HELP = (
    "calculator: 'eformer' (bundled default model), a bundled model name "
    "(e.g. 'mlearn-pbe'), a model file path (*.pt), 'emt', 'lj', 'xtb' "
    "(GFN2-xTB via tblite) or 'module:Class' (any ASE calculator, built with no "
    "arguments); append '+d3' for D3(BJ) dispersion with the model's functional, "
    "or '+d3:XC' (e.g. 'mlearn-pbe+d3', 'model.pt+d3:pbe0'; needs dftd3)"
)


def make_calculator(spec: str = "eformer", device: str | None = None) -> Any:
    """Return an ASE calculator for a command-line ``--calc`` spec.

    Parameters
    ----------
    spec : str
        See :data:`CALC_HELP`.
    device : str, optional
        Torch device for eformer models (``"cpu"``, ``"cuda"``).
    """
    base, d3, method = spec.partition("+d3")
    if d3 and not Path(spec).exists():
        if method and not method.startswith(":"):
            raise ValueError(
                f"bad calculator spec {spec!r}: write SPEC+d3 or SPEC+d3:XC"
            )
        from asecalc.dispersion import with_d3

        return with_d3(make_calculator(base, device), method.removeprefix(":") or None)
    low = spec.lower()
    if low == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    if low == "lj":
        from ase.calculators.lj import LennardJones

        return LennardJones()
    if low in ("xtb", "gfn2", "gfn2-xtb", "tblite"):
        try:
            from tblite.ase import TBLite
        except ImportError as err:
            raise ImportError(
                "GFN2-xTB needs tblite: pip install eformer[xtb]"
            ) from err
        return TBLite(method="GFN2-xTB", verbosity=0)
    if ":" in spec and not Path(spec).exists() and not spec.endswith(".pt"):
        module_name, _, class_name = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as err:
            raise ValueError(
                f"cannot import calculator class {class_name!r} from module "
                f"{module_name!r}: {err}"
            ) from err
        return cls()
    from asecalc.calculator import EformerCalculator

    model = None if low in ("eformer", "default") else spec
    return EformerCalculator(model=model, device=device)


def add_calc_argument(parser: Any, default: str = "eformer") -> None:
    """Add the shared ``--calc`` option (and ``--model`` as its alias)."""
    parser.add_argument(
        "--calc", "--model", dest="calc", default=default, help=CALC_HELP
    )
    parser.add_argument(
        "--device", default=None, help="torch device for eformer models"
    )


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (numpy values converted)."""
    print(json.dumps(data, indent=2, default=_json_default))
