"""Pure torch + e3nn modules of the SE(3)-Eformer (no ASE, no I/O)."""

from ._attention import EquivariantAttention
from ._autograd import compute_forces_and_virial
from ._model import EformerModel, build_model, hidden_irreps
from ._norm import EquivariantLayerNorm
from ._radial import BesselBasis, PolynomialEnvelope, RadialMLP
from ._readout import AtomicEnergyReadout, SpeciesEmbedding
from ._zbl import ZBLRepulsion

__all__ = [
    "AtomicEnergyReadout",
    "BesselBasis",
    "EformerModel",
    "EquivariantAttention",
    "EquivariantLayerNorm",
    "PolynomialEnvelope",
    "RadialMLP",
    "SpeciesEmbedding",
    "ZBLRepulsion",
    "build_model",
    "compute_forces_and_virial",
    "hidden_irreps",
]
