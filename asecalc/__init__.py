"""eformer: SE(3)-equivariant transformer interatomic potentials for ASE.

``from asecalc import EformerCalculator`` is the entry point. The import is lazy
(PEP 562), so ``import asecalc`` and ``eformer --help`` do not load torch.
"""

from __future__ import annotations

from typing import Any

from asecalc._version import __version__

__all__ = ["EformerCalculator", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "EformerCalculator":
        from asecalc.calculator import EformerCalculator

        return EformerCalculator
    raise AttributeError(f"module 'asecalc' has no attribute {name!r}")
