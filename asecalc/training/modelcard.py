"""Write a model card (Markdown) for a model file: provenance, test errors, speed.

Usage::

    python -m asecalc.training.modelcard asecalc/models/mlearn-pbe.pt \
        --test shared/data/mlearn/mlearn_Si_test.db ... --by dataset \
        --title "mlearn-pbe" --notes notes.md --output asecalc/models/mlearn-pbe.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from asecalc.checkpoint import load_model
from asecalc.fileio import write_text_atomic
from asecalc.training.evaluate import evaluate_model

COLUMNS = (
    ("energy_mae_meV_per_atom", "E MAE (meV/atom)"),
    ("energy_rmse_meV_per_atom", "E RMSE (meV/atom)"),
    ("forces_mae_meV_per_A", "F MAE (meV/Å)"),
    ("forces_rmse_meV_per_A", "F RMSE (meV/Å)"),
    ("stress_mae_GPa", "σ MAE (GPa)"),
)


def metrics_table(rows: dict[str, dict[str, float]]) -> str:
    """Markdown table of metrics per subset."""
    lines = [
        "| subset | n | " + " | ".join(c[1] for c in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for name, m in rows.items():
        values = [f"{m[k]:.2f}" if k in m else "–" for k, _ in COLUMNS]
        lines.append(f"| {name} | {m.get('n', '')} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def evaluate_sets(
    model: str, tests: list[str], by: str | None
) -> dict[str, dict[str, Any]]:
    """Metrics for each test file (and each value of ``by`` within it)."""
    bundle = load_model(model)
    rows: dict[str, dict[str, Any]] = {}
    for test in tests:
        result = evaluate_model(bundle, test, by=by)
        rows[Path(test).stem] = {**result["overall"], "n": result["n"]}
        for key, metrics in result.get(f"by_{by}", {}).items():
            if len(result.get(f"by_{by}", {})) > 1:
                rows[f"{Path(test).stem} / {key}"] = metrics
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--test", nargs="+", required=True)
    parser.add_argument("--by")
    parser.add_argument("--title", required=True)
    parser.add_argument("--notes", help="Markdown file with data recipe, limits, etc.")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    bundle = load_model(args.model)
    load_s = time.perf_counter() - start
    rows = evaluate_sets(args.model, args.test, args.by)
    cfg = bundle.config
    n_params = sum(p.numel() for p in bundle.members[0].parameters())
    meta = {k: v for k, v in bundle.metadata.items() if k != "val_metrics"}
    text = [
        f"# Model card: {args.title}",
        "",
        f"- File: `{Path(args.model).name}`; {len(bundle.members)} member(s), "
        f"{n_params:,} parameters each, loads in {load_s:.2f} s (this machine).",
        f"- Elements: {', '.join(cfg.elements)}; cutoff {cfg.cutoff} Å; "
        f"{cfg.n_layers} layers; irreps {cfg.n_scalars}x0e + {cfg.n_vectors}x1o"
        + (f" + {cfg.n_tensors}x2e" if cfg.n_tensors else "")
        + f"; bilinear invariants {cfg.bilinear}; many-body correlation "
        f"{cfg.correlation}; layer norm {cfg.layer_norm}; ZBL {cfg.zbl}.",
        f"- Training provenance: `{json.dumps(meta)}`",
        "",
    ]
    if args.notes:
        text += [Path(args.notes).read_text().strip(), ""]
    text += [
        "## Test errors",
        "",
        metrics_table(rows),
        "",
        "Regenerate: `python -m asecalc.training.modelcard "
        + shlex.join(argv or sys.argv[1:])
        + "`",
        "",
    ]
    write_text_atomic(args.output, "\n".join(text))


if __name__ == "__main__":
    main()
