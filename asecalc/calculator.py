"""EformerCalculator: the ASE adapter (no math here; see :mod:`asecalc.nn`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import (
    Calculator,
    PropertyNotImplementedError,
    all_changes,
)

from asecalc.checkpoint import ModelBundle, load_model, resolve_dtype
from asecalc.graph import SkinNeighbourList, atoms_to_graph, batch_graphs, check_atoms


class EformerCalculator(Calculator):
    """ASE calculator for SE(3)-Eformer models.

    Parameters
    ----------
    model : str or path, optional
        Bundled model name (``"default"``: CHNO + water at GFN2-xTB;
        ``"mlearn-pbe"``: Si, Ge, Li, Mo at PBE) or a model file from
        ``eformer train``. ``None`` loads the default.
    device : str, optional
        Torch device (``"cpu"``, ``"cuda"``); default ``"cpu"``.
    dtype : str, optional
        ``"float64"`` (default from the file, recommended for MD) or ``"float32"``.
    skin : float
        Verlet skin in Å for neighbour-list reuse between calls (0 rebuilds
        every call).
    uncertainty : {None, "ensemble", "dropout"}
        ``"ensemble"`` (default when the file has K > 1 members) adds
        ``energy_std`` (eV), ``energies_std`` (n_atoms,) and ``forces_std``
        (n_atoms,) eV/Å to ``results``; ``"dropout"`` estimates them with
        ``n_dropout_samples`` MC-dropout passes (the model needs dropout > 0).

    Notes
    -----
    Forces are ``-∂E/∂r`` and stress ``(1/V) ∂E/∂ε`` by autograd (conservative);
    stress is available for 3D-periodic cells only. An energy-only request
    skips autograd.

    Examples
    --------
    >>> from ase.build import molecule
    >>> atoms = molecule("H2O")
    >>> atoms.calc = EformerCalculator()
    >>> atoms.get_forces().shape
    (3, 3)
    """

    # Never mutated. Not a ClassVar: ASE's BaseCalculator declares it as a
    # ``list[str]`` attribute.
    implemented_properties = [  # noqa: RUF012
        "energy",
        "free_energy",
        "energies",
        "forces",
        "stress",
    ]

    def __init__(
        self,
        model: str | os.PathLike[str] | ModelBundle | None = None,
        device: str | None = None,
        dtype: str | None = None,
        skin: float = 1.0,
        uncertainty: str | None = None,
        n_dropout_samples: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.device = torch.device(device or "cpu")
        if isinstance(model, ModelBundle):
            self.bundle = model
            torch_dtype = resolve_dtype(dtype) if dtype else None
            for m in model.members:
                m.to(device=self.device, dtype=torch_dtype).eval()
        else:
            self.bundle = load_model(model, dtype=dtype, device=self.device)
        self.config = self.bundle.config
        self.models = self.bundle.members
        self.dtype = next(self.models[0].parameters()).dtype
        if uncertainty not in (None, "ensemble", "dropout"):
            raise ValueError(
                "uncertainty must be None, 'ensemble' or 'dropout', "
                f"got {uncertainty!r}"
            )
        if uncertainty is None and len(self.models) > 1:
            uncertainty = "ensemble"
        if uncertainty == "dropout" and self.config.dropout <= 0:
            raise ValueError(
                "uncertainty='dropout' needs a model trained with dropout > 0"
            )
        self.uncertainty = uncertainty
        self.n_dropout_samples = int(n_dropout_samples)
        self.neighbours = SkinNeighbourList(self.config.cutoff, skin)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], **kwargs: Any
    ) -> EformerCalculator:
        """Build from a model file path (same as ``EformerCalculator(model=path)``)."""
        return cls(model=path, **kwargs)

    @property
    def fingerprint(self) -> str:
        """Identity of the potential: SHA-256 of every member's weights, and the dtype.

        ``"<16 hex digits>/float64"``. Equal fingerprints mean equal energies and
        forces; checkpointed runs (``eformer nve``) store it and refuse to resume
        with another model, e.g. after the bundled default was replaced.
        """
        digest = hashlib.sha256()
        for member in self.models:
            for key, value in sorted(member.state_dict().items()):
                if key.endswith("residual_scale") and float(value) == 1.0:
                    continue  # a block at full strength: as before the buffer existed
                digest.update(key.encode())
                digest.update(value.detach().cpu().double().numpy().tobytes())
        return f"{digest.hexdigest()[:16]}/{str(self.dtype).removeprefix('torch.')}"

    @property
    def elements(self) -> tuple[str, ...]:
        """Chemical symbols the model knows."""
        return self.config.elements

    def _graph(self, atoms: Atoms, edges: Any = None) -> dict[str, Any]:
        return atoms_to_graph(
            atoms,
            self.config.elements,
            self.config.cutoff,
            self.dtype,
            self.device,
            edges,
        )

    def _evaluate(
        self, graph: dict[str, Any], forces: bool, stress: bool
    ) -> list[dict[str, np.ndarray]]:
        """Run every ensemble member (or dropout sample); numpy outputs per pass."""
        passes: list[tuple[torch.nn.Module, bool]]
        if self.uncertainty == "dropout":
            passes = [(self.models[0], True)] * self.n_dropout_samples
        else:
            passes = [(m, False) for m in self.models]
        outputs = []
        for model, dropout in passes:
            _set_dropout(model, dropout)
            with torch.set_grad_enabled(forces or stress):
                out = model(graph, compute_forces=forces, compute_stress=stress)
            _set_dropout(model, False)
            outputs.append(
                {
                    k: v.detach().cpu().numpy().astype(np.float64)
                    for k, v in out.items()
                    if isinstance(v, torch.Tensor)
                }
            )
        return outputs

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] | None = None,
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """Compute the requested properties (ASE Calculator contract)."""
        properties = list(properties or ["energy"])
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not (atoms.pbc.all() and atoms.cell.rank == 3):
            raise PropertyNotImplementedError(
                "stress needs a 3D-periodic cell (pbc all True, full-rank cell)"
            )
        want_forces = "forces" in properties or want_stress
        check_atoms(atoms)
        graph = self._graph(atoms, self.neighbours.edges(atoms))
        outs = self._evaluate(graph, want_forces, want_stress)
        self.results = _combine(outs, want_forces, want_stress, index=0)

    def calculate_batch(
        self,
        images: Sequence[Atoms],
        properties: Sequence[str] = ("energy", "forces"),
        max_atoms_per_batch: int = 4096,
    ) -> list[dict[str, Any]]:
        """Evaluate many structures in batched model calls.

        Parameters
        ----------
        images : sequence of ase.Atoms
        properties : sequence of str
            Any of ``energy``, ``energies``, ``forces``, ``stress``.
        max_atoms_per_batch : int
            Atoms per model call (memory bound).

        Returns
        -------
        list of dict
            One results dict per image, as in :attr:`results` (numpy, ASE shapes).
        """
        want_stress = "stress" in properties
        want_forces = "forces" in properties or want_stress
        if want_stress and not all(a.pbc.all() and a.cell.rank == 3 for a in images):
            raise PropertyNotImplementedError(
                "stress needs 3D-periodic cells for every image"
            )
        results: list[dict[str, Any]] = []
        chunk: list[dict[str, Any]] = []
        n_chunk = 0
        for atoms in [*images, None]:
            if chunk and (atoms is None or n_chunk + len(atoms) > max_atoms_per_batch):
                outs = self._evaluate(batch_graphs(chunk), want_forces, want_stress)
                sizes = [len(g["species"]) for g in chunk]
                results.extend(
                    _combine(outs, want_forces, want_stress, index=k, sizes=sizes)
                    for k in range(len(chunk))
                )
                chunk, n_chunk = [], 0
            if atoms is not None:
                chunk.append(self._graph(atoms))
                n_chunk += len(atoms)
        return results

    def get_energy_std(self, atoms: Atoms | None = None) -> float:
        """Ensemble / MC-dropout standard deviation of the energy in eV."""
        return float(self._get_uncertainty("energy_std", atoms))

    def get_forces_std(self, atoms: Atoms | None = None) -> np.ndarray:
        """Per-atom force uncertainty (n_atoms,) in eV/Å (RMS over x, y, z)."""
        return np.asarray(self._get_uncertainty("forces_std", atoms))

    def _get_uncertainty(self, key: str, atoms: Atoms | None) -> Any:
        if self.uncertainty is None:
            raise PropertyNotImplementedError(
                "no uncertainty: load a model with K > 1 ensemble members "
                "(eformer train --ensemble K) or use uncertainty='dropout'"
            )
        self.get_property("forces", atoms)  # type: ignore[no-untyped-call]
        return self.results[key]


def _set_dropout(model: torch.nn.Module, enabled: bool) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.train(enabled)


def _combine(
    outs: list[dict[str, np.ndarray]],
    forces: bool,
    stress: bool,
    index: int,
    sizes: list[int] | None = None,
) -> dict[str, Any]:
    """Mean (and std over passes) of graph ``index`` of a batch, ASE shapes."""
    sizes = sizes or [len(outs[0]["atomic_energies"])]
    start = int(np.sum(sizes[:index]))
    atoms_slice = slice(start, start + sizes[index])
    energies = np.stack([o["atomic_energies"][atoms_slice] for o in outs])
    energy = np.stack([o["energy"][index] for o in outs])
    res: dict[str, Any] = {
        "energy": float(energy.mean()),
        "free_energy": float(energy.mean()),
        "energies": energies.mean(axis=0),
    }
    if forces:
        f = np.stack([o["forces"][atoms_slice] for o in outs])
        res["forces"] = f.mean(axis=0)
    if stress:
        s = np.stack([o["stress"][index] for o in outs]).mean(axis=0)
        res["stress"] = s.reshape(9)[[0, 4, 8, 5, 2, 1]]
    if len(outs) > 1:
        res["energy_std"] = float(energy.std())
        res["energies_std"] = energies.std(axis=0)
        if forces:
            res["forces_std"] = np.sqrt(f.var(axis=0).mean(axis=1))
    return res
