"""Collect `eformer scale compare` output directories into one small JSON.

Usage: python benchmarks/collect_scale_compare.py DEST.json NAME=DIR [NAME=DIR ...]

For each run directory (the ``--output-dir`` of ``eformer scale compare``) it
keeps the budget, every fixed configuration's validation curve (FLOPs, force
MAE in meV/Å), the adaptive run's curve and decision log, and the verdict.
Several directories can feed one dataset (e.g. a second compare with other
fixed sizes or DiaSL settings): name them ``dataset/variant``. Entries already
in DEST under other names are kept (older runs whose folders are gone). The
test-set errors of every run's best model are kept when the compare had
``--test``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def fixed_runs(root: Path) -> dict[str, dict]:
    sweep = json.loads((root / "fixed" / "sweep.json").read_text())
    runs = {}
    for run in sweep["runs"]:
        metrics = (
            root
            / "fixed"
            / "runs"
            / f"{run['label']}_f{run['fraction']}"
            / "metrics.csv"
        )
        with metrics.open() as handle:
            rows = list(csv.DictReader(handle))
        runs[run["label"]] = {
            "n_params": run["n_params"],
            "n_train": run["n_train"],
            "flops_per_step": run["flops_per_step"],
            "curve": [
                [
                    float(r["step"]) * run["flops_per_step"],
                    float(r["val_forces_mae_meV_per_A"]),
                ]
                for r in rows
                if r.get("val_forces_mae_meV_per_A")
            ],
            "best_forces_mae_meV_per_A": run["best"]["val_forces_mae_meV_per_A"],
        }
    return runs


def adaptive_run(root: Path) -> dict:
    report = json.loads((root / "adaptive" / "adaptive.json").read_text())
    keep = (
        "step",
        "flops",
        "elasticity",
        "gap",
        "action",
        "reason",
        "n_params",
        "n_train",
    )
    return {
        "curve": [[c["flops"], c["val_forces_mae_meV_per_A"]] for c in report["curve"]],
        "decisions": [{k: d[k] for k in keep if k in d} for d in report["decisions"]],
        "final_model": {
            k: report["final_model_config"][k]
            for k in ("n_layers", "radial_hidden", "readout_hidden", "n_scalars")
        },
        "n_train_final": report["n_train"],
        "best_forces_mae_meV_per_A": report["best"]["val_forces_mae_meV_per_A"],
    }


def main(argv: list[str]) -> None:
    dest, pairs = Path(argv[0]), argv[1:]
    out = json.loads(dest.read_text()) if dest.exists() else {}
    for pair in pairs:
        name, _, directory = pair.partition("=")
        root = Path(directory)
        summary = json.loads((root / "compare.json").read_text())
        out[name] = {
            "budget_flops": summary["budget_flops"],
            "fixed": fixed_runs(root),
            "adaptive": adaptive_run(root),
            "adaptive_wins": summary["adaptive_wins"],
        }
        if "test" in summary:
            out[name]["test"] = summary["test"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {dest} ({dest.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main(sys.argv[1:])
