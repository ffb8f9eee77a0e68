"""Optional DFT-D3 dispersion on top of a model (the ``dftd3`` package, simple-DFT-D3).

A learned potential sees nothing beyond its cutoff (5 Å for the bundled models), and
a model trained on plain PBE data has no dispersion at all. :func:`with_d3` adds
Grimme's D3 correction as a separate, analytic term::

    from asecalc import EformerCalculator
    from asecalc.dispersion import with_d3

    atoms.calc = with_d3(EformerCalculator(model="mlearn-pbe"))  # PBE-D3(BJ)

On the command line the same is ``--calc mlearn-pbe+d3`` (or ``+d3:XC`` for another
functional's parameters). Energies in eV, forces in eV/Å, stress in eV/Å³ (ASE's
Voigt order), summed with :class:`ase.calculators.mixing.SumCalculator`.

The default model is trained on GFN2-xTB, which already contains D4 dispersion, so
adding D3 to it would count dispersion twice; :func:`with_d3` refuses that.
"""

from __future__ import annotations

from typing import Any

from ase.calculators.mixing import SumCalculator

#: Dampings of the dftd3 package (zero, Becke–Johnson and their variants).
DAMPINGS = ("d3bj", "d3zero", "d3bjm", "d3zerom", "d3op")


def d3_calculator(method: str, damping: str = "d3bj") -> Any:
    """Return the dftd3 ASE calculator for functional ``method`` (e.g. ``"pbe"``).

    Raises
    ------
    ImportError
        If the ``dftd3`` package is not installed (``pip install eformer[d3]``).
    ValueError
        For an unknown damping.
    """
    if damping not in DAMPINGS:
        raise ValueError(f"unknown D3 damping {damping!r}; expected one of {DAMPINGS}")
    try:
        from dftd3.ase import DFTD3
    except ImportError as err:
        raise ImportError(
            "D3 dispersion needs the dftd3 package: pip install eformer[d3]"
        ) from err

    class _DFTD3(DFTD3):  # type: ignore[misc]
        """DFTD3 that also reports ``free_energy`` (= energy: no electronic
        entropy), which ASE's cell filters and finite-difference stress ask for."""

        implemented_properties = [*DFTD3.implemented_properties, "free_energy"]  # noqa: RUF012

        def calculate(self, *args: Any, **kwargs: Any) -> None:
            super().calculate(*args, **kwargs)
            self.results["free_energy"] = self.results["energy"]

    return _DFTD3(method=method, damping=damping)


def _functional_of(calc: Any) -> str | None:
    """The functional a model was trained on, from its metadata (or None)."""
    bundle = getattr(calc, "bundle", None)
    level = str(getattr(bundle, "metadata", {}).get("level_of_theory", ""))
    if "xtb" in level.lower():
        raise ValueError(
            f"this model was trained on {level}, whose energies already contain "
            "D4 dispersion; adding D3 would count dispersion twice"
        )
    words = level.replace(",", " ").replace("(", " ").split()
    return words[0].lower() if words else None


def with_d3(calc: Any, method: str | None = None, damping: str = "d3bj") -> Any:
    """Return ``calc`` + D3 dispersion as one ASE calculator.

    Parameters
    ----------
    calc : ase Calculator
        The model (any ASE calculator).
    method : str, optional
        Functional whose D3 parameters to use (``"pbe"``, ``"pbe0"``, ``"b3lyp"``,
        ...). Default: the ``level_of_theory`` recorded in an eformer model file
        (``"PBE (VASP), mlearn"`` gives ``"pbe"``).
    damping : str
        ``"d3bj"`` (Becke–Johnson, default) or another of :data:`DAMPINGS`.

    Raises
    ------
    ValueError
        If the model was trained on GFN2-xTB (dispersion already included) or its
        functional is unknown and ``method`` is not given.
    """
    level_method = _functional_of(calc)
    method = method or level_method
    if not method:
        raise ValueError(
            "cannot tell which functional this model was trained on; pass "
            "method='pbe' (or the right one) for its D3 parameters"
        )
    return _WithD3(calc, d3_calculator(method, damping), f"d3({method},{damping})")


class _WithD3(SumCalculator):
    """Model + D3, with a ``fingerprint`` naming both (checked by NVE/TI resumes)."""

    def __init__(self, model: Any, d3: Any, label: str) -> None:
        super().__init__([model, d3])
        self._label = label

    @property
    def fingerprint(self) -> str:
        model = self.mixer.calcs[0]
        name = getattr(model, "fingerprint", None) or type(model).__name__
        return f"{name}+{self._label}"
