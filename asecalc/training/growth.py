"""Function-preserving model growth and data hooks for the DiaSL controller.

:func:`grow_depth` appends an attention block that fades in from the
identity; :func:`grow_width` widens the radial and readout MLPs with new
units whose outgoing weights are zero. Both leave energies and forces exactly
unchanged, so training continues from the same function with more capacity.
:class:`NextSlice` (the default data hook) hands out the next unused slice of
the training pool; :class:`AppendableSource` takes labelled structures from
any other hook (e.g. an active-learning loop).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from ase import Atoms

from asecalc.nn import EformerModel
from asecalc.training.data import Labelled, _labels_of
from asecalc.training.model_init import new_model

#: ``hook(n)`` returns up to n new training structures: positions in the
#: training pool (ints) or ASE Atoms with calculator results (energy, forces).
DataHook = Callable[[int], Sequence[int] | Sequence[Atoms]]


def _grown(model: EformerModel, config: Any, seed: int) -> EformerModel:
    """New model of ``config`` holding ``model``'s weights; new entries zero-padded."""
    fresh = new_model(config, seed).to(dtype=next(model.parameters()).dtype)
    state = fresh.state_dict()
    for key, old in model.state_dict().items():
        new = state[key]
        if new.shape == old.shape:
            state[key] = old.clone()
        elif new.ndim == 2:  # Linear weight (out, in): old rows keep old inputs only
            new[: old.shape[0], : old.shape[1]] = old
            new[: old.shape[0], old.shape[1] :] = 0.0
        elif new.ndim == 1:
            new[: old.shape[0]] = old
        else:
            raise ValueError(
                f"cannot grow parameter {key} from {tuple(old.shape)} "
                f"to {tuple(new.shape)}"
            )
    fresh.load_state_dict(state)
    return fresh


def grow_depth(model: EformerModel, seed: int = 0) -> EformerModel:
    """Append an attention block that fades in from the identity.

    The new block is initialised as in a fresh model, but its output is
    ``h + s (block(h) - h)`` with ``s = residual_scale = 0``: energies and forces
    are unchanged at growth. Training raises s to 1 over
    ``TrainConfig.growth_ramp_steps`` steps (:meth:`Trainer._train_step`), after
    which the block is an ordinary one (masked structural growth, Yao et al.,
    arXiv:2305.02869). A block whose output projections start at zero instead
    (function-preserving too, and the first version here) trained worse: on
    rMD17 aspirin at 2e12 FLOPs, s1 grown into S at step 300 ended at 54.5
    meV/Å (mean of 3 seeds), the faded-in block at 49.7, a fresh S at 47.2.
    Grown later (step 1500) both end about 4 meV/Å above a fresh S: the new
    capacity still trains as if from scratch (README, "Adaptive scaling").
    """
    grown = _grown(
        model, model.config.replace(n_layers=model.config.n_layers + 1), seed
    )
    with torch.no_grad():
        grown.layers[-1].residual_scale.zero_()
    return grown


def grow_width(model: EformerModel, factor: int = 2, seed: int = 0) -> EformerModel:
    """Widen the radial and readout MLPs ``factor`` times; the function is unchanged.

    New hidden units get random incoming weights and zero outgoing weights, and
    old units ignore new ones, so the output is identical (Net2Net-style
    function-preserving widening, Chen et al., arXiv:1511.05641).
    """
    cfg = model.config
    return _grown(
        model,
        cfg.replace(
            radial_hidden=cfg.radial_hidden * factor,
            readout_hidden=cfg.readout_hidden * factor,
        ),
        seed,
    )


def grow_model(model: EformerModel, kind: str, seed: int = 0) -> EformerModel:
    """:func:`grow_depth` (``kind="depth"``) or :func:`grow_width` (``"width"``, ×2)."""
    if kind == "depth":
        return grow_depth(model, seed)
    if kind == "width":
        return grow_width(model, 2, seed)
    raise ValueError(f"growth kind must be 'depth' or 'width', got {kind!r}")


class AppendableSource:
    """A structure source (``len``, ``[i]`` -> Labelled) that takes new structures."""

    def __init__(self, base: Any) -> None:
        self.base = base
        self.extra: list[Any] = []
        self.path = getattr(base, "path", None)

    def __len__(self) -> int:
        return len(self.base) + len(self.extra)

    def __getitem__(self, index: int) -> Any:
        n = len(self.base)
        return self.base[index] if index < n else self.extra[index - n]

    def append(self, atoms: Atoms) -> int:
        """Add a structure labelled by its calculator results; returns its position."""
        self.extra.append(
            _labels_of(atoms, f"hook:{len(self.extra)}", energy_only=False)
        )
        return len(self) - 1

    def extra_state(self) -> list[dict[str, Any]]:
        """Appended structures as tensors and plain values (for checkpoints).

        Keeps what training reads: numbers, positions (Å), cell (Å), pbc,
        energy (eV), forces (eV/Å), stress (eV/Å³, Voigt) and the key.
        """

        def tensor(array: Any) -> torch.Tensor | None:
            return None if array is None else torch.as_tensor(array).clone()

        return [
            {
                "numbers": tensor(x.atoms.numbers),
                "positions": tensor(x.atoms.positions),
                "cell": tensor(x.atoms.cell.array),
                "pbc": [bool(p) for p in x.atoms.pbc],
                "energy": float(x.energy),
                "forces": tensor(x.forces),
                "stress": tensor(x.stress),
                "key": x.key,
            }
            for x in self.extra
        ]

    def restore_extra(self, state: list[dict[str, Any]]) -> None:
        """Replace the appended structures by those of :meth:`extra_state`."""

        def array(value: torch.Tensor | None) -> Any:
            return None if value is None else value.numpy()

        self.extra = [
            Labelled(
                Atoms(
                    numbers=s["numbers"].numpy(),
                    positions=s["positions"].numpy(),
                    cell=s["cell"].numpy(),
                    pbc=s["pbc"],
                ),
                float(s["energy"]),
                array(s["forces"]),
                array(s["stress"]),
                s["key"],
            )
            for s in state
        ]


class NextSlice:
    """Default data hook: the next ``n`` unused positions of the training pool."""

    def __init__(self, pool_size: int, start: int) -> None:
        self.pool_size, self.next = pool_size, start

    @property
    def remaining(self) -> int:
        """Pool positions not handed out yet."""
        return self.pool_size - self.next

    def __call__(self, n: int) -> list[int]:
        out = list(range(self.next, min(self.next + n, self.pool_size)))
        self.next += len(out)
        return out
