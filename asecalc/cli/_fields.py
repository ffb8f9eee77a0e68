"""Command-line flags generated from dataclass fields (``--train.lr 1e-3``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, prefix: str, cls: type
) -> None:
    """Add ``--{prefix}.{field-name}`` for every simple field of ``cls``."""
    group = parser.add_argument_group(f"{prefix} settings ({cls.__name__} fields)")
    for f in dataclasses.fields(cls):
        default = f.default
        if default is dataclasses.MISSING or isinstance(default, (dict, list, tuple)):
            continue
        flag = f"--{prefix}.{f.name.replace('_', '-')}"
        dest = f"{prefix}__{f.name}"
        if isinstance(default, bool):
            group.add_argument(
                flag,
                dest=dest,
                type=_parse_bool,
                default=None,
                metavar="BOOL",
                help=f"(default {default})",
            )
        else:
            group.add_argument(
                flag,
                dest=dest,
                type=type(default),
                default=None,
                help=f"(default {default})",
            )


def collect(
    args: argparse.Namespace, prefix: str, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Values given for ``prefix`` flags on top of ``base`` (e.g. from ``--config``)."""
    out = dict(base or {})
    for key, value in vars(args).items():
        if key.startswith(f"{prefix}__") and value is not None:
            out[key.split("__", 1)[1]] = value
    return out


def load_config_file(path: str | None) -> dict[str, Any]:
    """Read a YAML or JSON run config (``{"model": {...}, "train": {...}}``)."""
    if not path:
        return {}
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")
