"""Model files: weights + JSON-able config, loaded without unpickling code.

A model file is ``torch.save`` of a dict of tensors and plain Python values::

    {"format": "eformer-model", "format_version": 1, "asecalc_version": str,
     "config": ModelConfig.to_dict(), "members": [state_dict, ...],
     "metadata": {...}}

``members`` holds one state dict per ensemble member (K >= 1). Files are read
with ``torch.load(weights_only=True)``, so a file can never run code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from asecalc._version import __version__
from asecalc.config import ModelConfig
from asecalc.fileio import atomic_write
from asecalc.nn import EformerModel, build_model

FORMAT = "eformer-model"
FORMAT_VERSION = 1
MODELS_DIR = Path(__file__).parent / "models"
#: Bundled model names -> file names in ``asecalc/models``.
BUNDLED = {"default": "default.pt", "mlearn-pbe": "mlearn-pbe.pt"}


@dataclass
class ModelBundle:
    """A loaded model file: config, K ensemble members and metadata."""

    config: ModelConfig
    members: list[EformerModel]
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str | None = None


def resolve_model_path(model: str | os.PathLike[str] | None) -> Path:
    """Path of a bundled model name (``None`` = "default") or a user's file."""
    if model is None:
        model = "default"
    if isinstance(model, str) and model in BUNDLED:
        path = MODELS_DIR / BUNDLED[model]
        if not path.exists():
            raise FileNotFoundError(
                f"bundled model {model!r} is missing from the installation ({path}); "
                "reinstall eformer"
            )
        return path
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(
            f"model file {str(path)!r} not found (bundled models: {', '.join(BUNDLED)})"
        )
    return path


def save_model(
    path: str | os.PathLike[str],
    members: list[EformerModel] | EformerModel,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write a model file atomically (temp file in the same folder + rename)."""
    if isinstance(members, EformerModel):
        members = [members]
    config = members[0].config
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "asecalc_version": __version__,
        "config": config.to_dict(),
        "members": [
            {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
            for m in members
        ],
        "metadata": dict(metadata or {}),
    }
    atomic_torch_save(data, path)


def atomic_torch_save(data: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` atomically (see :func:`asecalc.fileio.atomic_write`)."""
    atomic_write(path, lambda tmp: torch.save(data, tmp))


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load(weights_only=True)`` with a clear error for corrupt files."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        raise ValueError(
            f"{str(path)!r} is not a readable eformer file (corrupt, truncated, or "
            f"not saved by eformer): {type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}"
        ) from err


def load_model(
    model: str | os.PathLike[str] | None = None,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device = "cpu",
) -> ModelBundle:
    """Load a bundled model name or a model file.

    Parameters
    ----------
    model : str or path, optional
        ``None``/"default", a bundled name (see :data:`BUNDLED`) or a file path.
    dtype : str or torch.dtype, optional
        Override the file's dtype (``"float32"``/``"float64"``).
    device : str or torch.device
        Where to put the weights.
    """
    path = resolve_model_path(model)
    data = safe_torch_load(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(
            f"{str(path)!r} is not an eformer model file (missing format={FORMAT!r}); "
            "training checkpoints are loaded with `eformer train --resume`"
        )
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has format_version {data['format_version']}, newer than "
            f"this eformer ({__version__}) reads ({FORMAT_VERSION}); upgrade eformer"
        )
    config = ModelConfig.from_dict(data["config"])
    torch_dtype = resolve_dtype(dtype or config.dtype)
    members = []
    for state in data["members"]:
        member = build_model(config, torch_dtype)
        try:
            member.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(
                f"{str(path)!r}: weights do not match its config: {err}"
            ) from err
        members.append(member.to(device=device, dtype=torch_dtype).eval())
    return ModelBundle(config, members, dict(data.get("metadata", {})), str(path))


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """'float32'/'float64' (or a torch dtype) -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "float64": torch.float64}
    if dtype not in table:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return table[dtype]


def export_model(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    dtype: str = "float64",
    metadata: dict[str, Any] | None = None,
) -> None:
    """Copy a model file with weights cast to ``dtype`` (float64 for MD) plus metadata.

    Models trained in float32 are exported in float64 so the calculator's
    default precision is the one recommended for dynamics.
    """
    bundle = load_model(source, dtype=dtype)
    config = bundle.config.replace(dtype=dtype)
    members = []
    for member in bundle.members:
        copy = build_model(config, resolve_dtype(dtype))
        copy.load_state_dict(member.state_dict())
        members.append(copy)
    save_model(destination, members, metadata={**bundle.metadata, **(metadata or {})})
