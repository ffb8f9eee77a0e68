"""PNG plots of training runs: learning curves and parity plots (matplotlib, Agg)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curve_png(metric_files: list[Path], path: Path) -> None:
    """Validation force and energy MAE vs step for each member."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for k, file in enumerate(metric_files):
        if not Path(file).exists():
            continue
        with open(file) as handle:
            rows = list(csv.DictReader(handle))
        steps = [int(r["step"]) for r in rows]
        for ax, key in zip(
            axes,
            ("val_forces_mae_meV_per_A", "val_energy_mae_meV_per_atom"),
            strict=True,
        ):
            if rows and key in rows[0]:
                ax.plot(
                    steps,
                    [float(r[key]) for r in rows],
                    marker=".",
                    label=f"member {k}",
                )
                ax.set_ylabel(key.replace("val_", "validation ").replace("_", " "))
    for ax in axes:
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parity_png(bundle: Any, dataset: Any, prefix: Path) -> None:
    """Energy-per-atom and force parity plots of a model on a GraphDataset."""
    from asecalc.training.evaluate import predict

    ref_e, pred_e, ref_f, pred_f = [], [], [], []
    for start in range(0, len(dataset), 16):
        graphs = [dataset.graph(i) for i in range(start, min(start + 16, len(dataset)))]
        pred, batch = predict(bundle, graphs, stress=False)
        ref_e.append((batch["energy_ref"] / batch["n_atoms"]).numpy())
        pred_e.append((pred["energy"] / batch["n_atoms"]).numpy())
        ref_f.append(batch["forces_ref"].numpy().ravel())
        pred_f.append(pred["forces"].numpy().ravel())
    parity_plot(
        {
            "energy_ref": np.concatenate(ref_e),
            "energy_pred": np.concatenate(pred_e),
            "forces_ref": np.concatenate(ref_f),
            "forces_pred": np.concatenate(pred_f),
        },
        Path(f"{prefix}.png"),
    )


def parity_plot(parity: dict[str, np.ndarray], path: Path) -> None:
    """Two panels: energy per atom (eV/atom, mean-shifted), force components (eV/Å)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    er, ep = parity["energy_ref"], parity["energy_pred"]
    shift = er.mean()
    panels = (
        (axes[0], er - shift, ep - shift, "energy − mean (eV/atom)"),
        (
            axes[1],
            parity["forces_ref"],
            parity["forces_pred"],
            "force component (eV/Å)",
        ),
    )
    for ax, ref, pred, label in panels:
        ax.scatter(ref, pred, s=3, alpha=0.4)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        mae = np.abs(ref - pred).mean()
        ax.set_title(f"MAE {1000 * mae:.2f} m{label.split('(')[1][:-1]}", fontsize=9)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
