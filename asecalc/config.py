"""Frozen configuration dataclasses and named presets.

Every checkpoint stores ``ModelConfig.to_dict()`` beside the weights, so a model
file is fully described by JSON-able values (no pickled code).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ase.data import atomic_numbers, chemical_symbols, covalent_radii


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of an :class:`~asecalc.nn.EformerModel`.

    Attributes
    ----------
    elements : tuple of str
        Chemical symbols the model knows, in embedding order.
    cutoff : float
        Radial cutoff r_max in Å. Energies vary smoothly to zero at r_max
        (polynomial envelope), so there is no cap on the neighbour count.
    n_scalars, n_vectors, n_tensors : int
        Channels of 0e, 1o and 2e irreps in the hidden features.
    sh_lmax : int
        Highest degree of the edge spherical harmonics Y(r̂_ij).
    n_layers : int
        Number of equivariant attention layers.
    n_heads : int
        Attention heads; must divide ``n_scalars``, ``n_vectors`` and ``n_tensors``.
    n_basis : int
        Number of Bessel radial basis functions.
    envelope_p : int
        Exponent of the polynomial cutoff envelope (Klicpera et al. 2020).
    radial_hidden : int
        Width of the radial MLP that weights the tensor products.
    readout_hidden : int
        Width of the atomic-energy readout MLP.
    dropout : float
        Dropout probability in the readout (used by MC-dropout uncertainty).
    bilinear : bool
        Feed the invariants ⟨U x_l, V x_l⟩ of each atom's own l > 0 features
        (angles between its neighbour directions: three-body terms) into the
        feed-forward block's scalars. On in the presets; ``False`` is the
        architecture of model files written before it existed.
    correlation : int
        Highest order ν of the channel-wise products of each atom's neighbour
        density added to every layer's messages (body order ν + 1, as in
        MACE; :class:`~asecalc.nn._density.DensityProduct`). ``0`` (no
        products) is the architecture of model files written before it existed.
    layer_norm : str
        ``"joint"`` (the presets): the equivariant layer norms divide every
        irrep block by one RMS of the whole feature vector, which is smooth.
        ``"per-irrep"`` (model files written before it existed) rescales each
        block by its own RMS, which is not smooth where a block vanishes by
        symmetry (atoms of cubic crystals): forces jump there and phonons are
        wrong. See :class:`~asecalc.nn.EquivariantLayerNorm`.
    zbl : bool
        Add a Ziegler–Biersack–Littmark screened-nuclear repulsion pair term
        (smoothly switched off between ``zbl_inner`` and ``zbl_outer`` × the
        covalent-radius sum) so atoms never collapse in MD.
    dtype : str
        ``"float64"`` (default, for MD and analysis) or ``"float32"``.
    """

    elements: tuple[str, ...] = ("H", "C", "N", "O")
    cutoff: float = 5.0
    n_scalars: int = 32
    n_vectors: int = 16
    n_tensors: int = 0
    sh_lmax: int = 2
    n_layers: int = 2
    n_heads: int = 4
    n_basis: int = 8
    envelope_p: int = 6
    radial_hidden: int = 32
    readout_hidden: int = 16
    dropout: float = 0.0
    bilinear: bool = False
    correlation: int = 0
    layer_norm: str = "per-irrep"
    zbl: bool = True
    zbl_inner: float = 0.5
    zbl_outer: float = 0.8
    dtype: str = "float64"

    def __post_init__(self) -> None:
        unknown = [s for s in self.elements if s not in atomic_numbers]
        if unknown:
            raise ValueError(f"unknown chemical symbols in elements: {unknown}")
        if len(set(self.elements)) != len(self.elements):
            raise ValueError(f"elements must be unique, got {self.elements}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(
                f"dtype must be 'float32' or 'float64', got {self.dtype!r}"
            )
        for name in ("n_scalars", "n_vectors", "n_tensors"):
            if getattr(self, name) % self.n_heads:
                raise ValueError(
                    f"{name}={getattr(self, name)} is not divisible by "
                    f"n_heads={self.n_heads}"
                )
        if self.correlation < 0:
            raise ValueError(f"correlation must be >= 0, got {self.correlation}")
        if self.layer_norm not in ("per-irrep", "joint"):
            raise ValueError(
                f"layer_norm must be 'per-irrep' or 'joint', got {self.layer_norm!r}"
            )
        if self.cutoff <= 0:
            raise ValueError(f"cutoff must be positive (Å), got {self.cutoff}")

    @property
    def atomic_numbers(self) -> list[int]:
        """Atomic numbers of :attr:`elements`, in embedding order."""
        return [atomic_numbers[s] for s in self.elements]

    @property
    def covalent_radii(self) -> list[float]:
        """Covalent radii in Å of :attr:`elements` (for the ZBL switch)."""
        return [float(covalent_radii[z]) for z in self.atomic_numbers]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["elements"] = list(self.elements)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {sorted(unknown)}")
        data = dict(data)
        if "elements" in data:
            data["elements"] = tuple(data["elements"])
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


#: Named model sizes. "S" is tuned for CPU molecular dynamics, "M" for accuracy.
PRESETS: dict[str, dict[str, Any]] = {
    "S": {
        "bilinear": True,
        "correlation": 3,
        "layer_norm": "joint",
        "n_scalars": 32,
        "n_vectors": 8,
        "n_tensors": 0,
        "sh_lmax": 2,
        "n_layers": 2,
        "n_heads": 4,
        "radial_hidden": 32,
        "readout_hidden": 16,
    },
    "M": {
        "bilinear": True,
        "correlation": 3,
        "layer_norm": "joint",
        "n_scalars": 64,
        "n_vectors": 16,
        "n_tensors": 8,
        "sh_lmax": 2,
        "n_layers": 3,
        "n_heads": 4,
        "radial_hidden": 64,
        "readout_hidden": 32,
    },
    "L": {
        "bilinear": True,
        "correlation": 3,
        "layer_norm": "joint",
        "n_scalars": 128,
        "n_vectors": 32,
        "n_tensors": 16,
        "sh_lmax": 3,
        "n_layers": 3,
        "n_heads": 8,
        "radial_hidden": 64,
        "readout_hidden": 64,
    },
}
PRESET_ALIASES = {
    "small": "S",
    "medium": "M",
    "large": "L",
    "s": "S",
    "m": "M",
    "l": "L",
}


def preset_config(name: str, **overrides: Any) -> ModelConfig:
    """Return the :class:`ModelConfig` of preset ``name`` ("S"/"small", "M", "L")."""
    key = PRESET_ALIASES.get(name, name)
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return ModelConfig(**{**PRESETS[key], **overrides})


def symbols_to_str(numbers: list[int]) -> str:
    """Comma-separated chemical symbols for error messages."""
    return ", ".join(chemical_symbols[z] for z in numbers)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run (see :mod:`asecalc.training.loop`).

    Attributes
    ----------
    energy_weight, forces_weight, stress_weight : float
        Loss weights of energy per atom (eV/atom)², forces (eV/Å)² and stress
        (eV/Å³)² terms.
    loss : str
        ``"mse"`` or ``"huber"``.
    lr : float
        Peak AdamW learning rate.
    weight_decay : float
        AdamW weight decay.
    batch_size : int
        Structures per optimisation step.
    max_steps : int
        Stop after this many optimisation steps. ``eformer train`` given only a
        wall-time budget (``--time-budget`` or ``--train.max-time-s``) lifts it,
        so the budget decides.
    max_time_s : float
        Stop after this wall time (seconds); 0 disables.
    warmup_steps : int
        Linear learning-rate warm-up.
    schedule : str
        ``"cosine"`` (decay to 2 % over ``max_steps``), ``"plateau"`` (halve on
        a validation plateau) or ``"constant"`` (after the warm-up). A scaling
        sweep fitted for ``--diasl.growth laws`` wants ``"constant"``: each
        point of a constant-rate curve is where that run stands at that step
        for any longer budget, while a cosine run's points depend on how far
        through its own decay it is.
    ema_decay : float
        Exponential moving average of the weights (0 disables).
    grad_clip : float
        Max gradient norm.
    val_fraction : float
        Fraction of the data held out for validation (seeded split).
    eval_every : int
        Validate and checkpoint every this many steps.
    seed : int
        Seed for the split, initialisation and batching.
    growth_ramp_steps : int
        Steps over which a block added by depth growth fades in
        (:func:`asecalc.training.growth.grow_depth`): its residual scale rises
        by 1/growth_ramp_steps per step from 0 to 1.
    """

    energy_weight: float = 1.0
    forces_weight: float = 10.0
    stress_weight: float = 0.0
    loss: str = "mse"
    lr: float = 5e-3
    weight_decay: float = 0.0
    batch_size: int = 4
    max_steps: int = 2000
    max_time_s: float = 0.0
    warmup_steps: int = 50
    schedule: str = "cosine"
    ema_decay: float = 0.99
    grad_clip: float = 10.0
    val_fraction: float = 0.05
    eval_every: int = 100
    seed: int = 0
    growth_ramp_steps: int = 300
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig keys: {sorted(unknown)}")
        return cls(**data)
