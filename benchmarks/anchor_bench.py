"""Side-by-side speed of eformer and its anchors (MACE-small, NequIP-small, GFN2-xTB).

Two modes:

``run``     time ONE model in the current interpreter and print JSON lines.
            Needs only torch + ase (+ mace / nequip / tblite for that model), so
            it runs inside the anchor venvs made by ``benchmarks/anchors.sh``.
``compare`` the driver: for each round, each size and each model, start
            ``run`` in that model's venv, so eformer and the anchors are timed
            interleaved in one session (the machine may be shared: compare
            ratios within a run, never absolute numbers across runs).

All ML models get random weights (timing only), float64, cutoff 5 Å, the same
deterministic water boxes (``asecalc.bench.water_box``), and are timed as
``energy + forces`` (one forward and one autograd backward) on a prebuilt
graph: median of ``--repeats`` calls after ``--warmup`` calls. GFN2-xTB is
timed through its ASE calculator. eformer is also timed end to end through
``EformerCalculator`` (neighbour list with skin reuse included).

Usage::

    benchmarks/anchors.sh /work/venvs            # once: anchor venvs
    /work/venv/bin/python benchmarks/anchor_bench.py compare --rounds 2 \\
        --threads 1 --output benchmarks/results.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # asecalc.bench needs only ase + numpy

CUTOFF = 5.0
ELEMENTS = ("H", "C", "N", "O")


def median_time(
    function: Callable[[], Any], repeats: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Wall and process-CPU times (s) of ``repeats`` calls after ``warmup`` calls.

    With one thread, CPU time is what the call would take on an idle core; it is
    far less sensitive than wall time to other jobs on a shared machine.
    """
    for _ in range(warmup):
        function()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


# ----------------------------------------------------------------------------- eformer
def load_patch(spec: str) -> Callable[[Any], Any]:
    """``FILE.py:function`` -> function(model) that changes an EformerModel in place."""
    import importlib.util

    path, _, name = spec.rpartition(":")
    module_spec = importlib.util.spec_from_file_location("eformer_patch", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def eformer_call(
    atoms: Any, preset: str, patch: str | None = None
) -> tuple[Callable[[], Any], dict[str, Any]]:
    """Model energy+forces on a prebuilt graph of a random-weight preset.

    ``patch`` (``FILE.py:function``) is applied to the model first: a way to time
    a proposed change of ``asecalc.nn`` side by side before it lands.
    """
    import torch

    from asecalc.config import preset_config
    from asecalc.graph import atoms_to_graph
    from asecalc.nn import EformerModel

    config = preset_config(preset, elements=ELEMENTS, cutoff=CUTOFF)
    torch.manual_seed(0)
    model = EformerModel(config).double().eval()
    if patch:
        load_patch(patch)(model)
    graph = atoms_to_graph(atoms, config.elements, config.cutoff, torch.float64)

    def call() -> Any:
        out = model(graph, compute_forces=True)
        return out["forces"]

    info = {
        "n_edges": len(graph["edge_src"]),
        "config": config.to_dict(),
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    return call, info


def eformer_calc_call(
    atoms: Any, preset: str
) -> tuple[Callable[[], Any], dict[str, Any]]:
    """End-to-end EformerCalculator energy+forces (neighbour list with skin)."""
    from ase.calculators.calculator import all_changes

    from asecalc.bench import random_model_calculator

    calc = random_model_calculator(preset, elements=ELEMENTS, cutoff=CUTOFF)
    atoms = atoms.copy()

    def call() -> Any:
        calc.calculate(atoms, ["energy", "forces"], all_changes)

    return call, {}


# -------------------------------------------------------------------------------- MACE
#: MACE-small as in the MACE-MP-0 "small" foundation model (128x0e, max_L 0,
#: 2 interactions, correlation 3, max_ell 3), with r_max 5.0 Å here.
MACE_SMALL = {
    "r_max": CUTOFF,
    "num_bessel": 8,
    "num_polynomial_cutoff": 5,
    "max_ell": 3,
    "num_interactions": 2,
    "hidden_irreps": "128x0e",
    "MLP_irreps": "16x0e",
    "correlation": 3,
    "radial_MLP": [64, 64, 64],
    "avg_num_neighbors": 54.0,
    "interaction": "RealAgnosticResidualInteractionBlock",
}


def mace_call(atoms: Any) -> tuple[Callable[[], Any], dict[str, Any]]:
    """Random-weight ScaleShiftMACE (MACE_SMALL), float64, on a prebuilt batch."""
    import numpy as np
    import torch

    # e3nn 0.4.4 (pinned by mace-torch) ships constants.pt with a slice object,
    # which torch >= 2.6's weights_only load rejects; allow that one builtin.
    torch.serialization.add_safe_globals([slice])
    from e3nn import o3
    from mace import data as mace_data
    from mace import modules
    from mace.tools import torch_geometric, utils

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    z_table = utils.AtomicNumberTable([1, 6, 7, 8])
    interaction = modules.interaction_classes[MACE_SMALL["interaction"]]
    model = (
        modules.ScaleShiftMACE(
            r_max=MACE_SMALL["r_max"],
            num_bessel=MACE_SMALL["num_bessel"],
            num_polynomial_cutoff=MACE_SMALL["num_polynomial_cutoff"],
            max_ell=MACE_SMALL["max_ell"],
            interaction_cls=interaction,
            interaction_cls_first=interaction,
            num_interactions=MACE_SMALL["num_interactions"],
            num_elements=4,
            hidden_irreps=o3.Irreps(MACE_SMALL["hidden_irreps"]),
            MLP_irreps=o3.Irreps(MACE_SMALL["MLP_irreps"]),
            atomic_energies=np.zeros(4),
            avg_num_neighbors=MACE_SMALL["avg_num_neighbors"],
            atomic_numbers=z_table.zs,
            correlation=MACE_SMALL["correlation"],
            gate=torch.nn.functional.silu,
            radial_MLP=MACE_SMALL["radial_MLP"],
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
        )
        .double()
        .eval()
    )
    config = mace_data.config_from_atoms(atoms)
    graph = mace_data.AtomicData.from_config(config, z_table=z_table, cutoff=CUTOFF)
    loader = torch_geometric.dataloader.DataLoader([graph], batch_size=1)
    batch = next(iter(loader)).to_dict()

    def call() -> Any:
        out = model(batch, compute_force=True)
        return out["forces"]

    info = {
        "n_edges": int(batch["edge_index"].shape[1]),
        "config": MACE_SMALL,
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    return call, info


# ------------------------------------------------------------------------------ NequIP
#: NequIP-small: the model section of nequip's configs/tutorial.yaml (4 layers,
#: l_max 1, 32 features, radial MLP 2 x 64, 8 Bessels, p = 6), r_max 5 Å.
NEQUIP_SMALL = {
    "num_layers": 4,
    "l_max": 1,
    "parity": True,
    "num_features": 32,
    "radial_mlp_depth": 2,
    "radial_mlp_width": 64,
    "num_bessels": 8,
    "polynomial_cutoff_p": 6,
    "avg_num_neighbors": 54.0,
    "r_max": CUTOFF,
}


def nequip_call(atoms: Any) -> tuple[Callable[[], Any], dict[str, Any]]:
    """Random-weight NequIPGNNModel (NEQUIP_SMALL), float64, eager mode.

    nequip's GraphModel returns forces, virial and stress together (its
    ForceStressOutput), so its timing includes the (cheap) strain derivative.
    """
    from nequip.data import compute_neighborlist_, from_ase
    from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    set_global_state()
    model = NequIPGNNModel(
        seed=0, model_dtype="float64", type_names=list(ELEMENTS), **NEQUIP_SMALL
    ).eval()
    mapper = ChemicalSpeciesToAtomTypeMapper(
        model_type_names=list(ELEMENTS),
        chemical_species_to_atom_type_map={s: s for s in ELEMENTS},
    )
    data = compute_neighborlist_(mapper(from_ase(atoms)), r_max=CUTOFF)

    def call() -> Any:
        return model(dict(data))["forces"]

    info = {
        "n_edges": int(data["edge_index"].shape[1]),
        "config": NEQUIP_SMALL,
        "n_params": sum(p.numel() for p in model.parameters()),
    }
    return call, info


# ---------------------------------------------------------------------------- GFN2-xTB
def xtb_call(atoms: Any) -> tuple[Callable[[], Any], dict[str, Any]]:
    """GFN2-xTB (tblite ASE calculator) energy+forces, SCF from scratch each call."""
    from ase.calculators.calculator import all_changes
    from tblite.ase import TBLite

    atoms = atoms.copy()
    calc = TBLite(method="GFN2-xTB", verbosity=0)
    atoms.calc = calc

    def call() -> Any:
        calc.calculate(atoms, ["energy", "forces"], all_changes)

    return call, {"method": "GFN2-xTB"}


BUILDERS = {
    "eformer": lambda atoms, args: eformer_call(atoms, args.preset),
    "eformer-patched": lambda atoms, args: eformer_call(atoms, args.preset, args.patch),
    "eformer-calc": lambda atoms, args: eformer_calc_call(atoms, args.preset),
    "mace": lambda atoms, args: mace_call(atoms),
    "nequip": lambda atoms, args: nequip_call(atoms),
    "xtb": lambda atoms, args: xtb_call(atoms),
}
#: Which venv (under --venvs) runs each model; None = this interpreter.
VENV = {"mace": "mace", "nequip": "nequip"}


def run(args: argparse.Namespace) -> None:
    """Time one model on each size; one JSON line per size on stdout."""
    import torch

    from asecalc.bench import structure_for_size

    torch.set_num_threads(args.threads)
    for size in args.sizes.split(","):
        label, atoms = structure_for_size(size)
        call, info = BUILDERS[args.model](atoms, args)
        wall, cpu = median_time(call, args.repeats, args.warmup)
        median, median_cpu = statistics.median(wall), statistics.median(cpu)
        print(
            json.dumps(
                {
                    "model": args.model,
                    "structure": label,
                    "n_atoms": len(atoms),
                    "median_s": median,
                    "times_s": wall,
                    "median_cpu_s": median_cpu,
                    "cpu_times_s": cpu,
                    "atom_steps_per_s": len(atoms) / median,
                    "atom_steps_per_cpu_s": len(atoms) / median_cpu,
                    "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    **info,
                }
            ),
            flush=True,
        )


def compare(args: argparse.Namespace) -> None:
    """Interleave ``run`` of every model in its venv; write JSON + a table."""
    results = []
    jobs = []
    for size in args.sizes.split(","):
        for model in args.models.split(","):
            if model == "xtb" and int(size) > args.xtb_max_atoms:
                continue
            jobs.append((model, size))
    for round_index in range(args.rounds):
        for model, size in jobs:
            venv = VENV.get(model)
            python = (
                str(Path(args.venvs) / venv / "bin" / "python")
                if venv
                else sys.executable
            )
            command = [
                python,
                __file__,
                "run",
                "--model",
                model,
                "--sizes",
                size,
                "--repeats",
                str(args.repeats),
                "--warmup",
                str(args.warmup),
                "--threads",
                str(args.threads),
                "--preset",
                args.preset,
            ]
            if args.patch:
                command += ["--patch", args.patch]
            # tblite (and any OpenMP code) gets the same thread budget as torch
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            start = time.perf_counter()
            proc = subprocess.run(
                command, capture_output=True, text=True, check=False, env=env
            )
            if proc.returncode:
                print(f"{model} {size}: FAILED\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            for line in proc.stdout.splitlines():
                if line.startswith("{"):
                    row = json.loads(line)
                    row["round"] = round_index
                    row.pop("config", None)
                    results.append(row)
                    print(
                        f"round {round_index} {model:13s} {row['n_atoms']:5d} atoms "
                        f"wall {row['median_s']:8.3f} s/call "
                        f"({row['atom_steps_per_s']:7.1f} atom-steps/s), "
                        f"CPU {row['median_cpu_s']:8.3f} s/call "
                        f"({row['atom_steps_per_cpu_s']:7.1f} atom-steps/CPU-s); "
                        f"{time.perf_counter() - start:.0f} s incl. setup",
                        flush=True,
                    )
    summary = {
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "preset": args.preset,
        "patch": args.patch,
        "load_average": os.getloadavg(),
        "configs": {"mace": MACE_SMALL, "nequip": NEQUIP_SMALL},
        "results": results,
    }
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(summary, indent=1) + "\n")
    print("atom-steps per wall second:")
    print(table(results, "atom_steps_per_s"))
    print("atom-steps per CPU second (1 thread: the idle-machine rate):")
    print(table(results, "atom_steps_per_cpu_s"))


def table(results: list[dict[str, Any]], key: str, reference: str = "eformer") -> str:
    """Markdown table: rate ``key`` per round and ``reference``'s ratio to each."""
    rounds = sorted({r["round"] for r in results})
    lines = [
        "| model | atoms | "
        + " | ".join(f"round {k}" for k in rounds)
        + f" | {reference} / model (per round) |",
        "|---" * (3 + len(rounds)) + "|",
    ]
    keyed = {(r["model"], r["n_atoms"], r["round"]): r[key] for r in results}
    for model, n_atoms in dict.fromkeys((r["model"], r["n_atoms"]) for r in results):
        rates = [keyed.get((model, n_atoms, k)) for k in rounds]
        ratios = [
            keyed.get((reference, n_atoms, k), 0) / v if v else None
            for k, v in zip(rounds, rates, strict=True)
        ]
        lines.append(
            f"| {model} | {n_atoms} | "
            + " | ".join(f"{v:.1f}" if v else "-" for v in rates)
            + " | "
            + ", ".join(f"{x:.2f}" for x in ratios if x is not None)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    """Command line: ``run`` (one model, this interpreter) or ``compare`` (driver)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("run", "compare"):
        p = sub.add_parser(name)
        p.add_argument("--sizes", default="192,1536" if name == "compare" else "192")
        p.add_argument("--repeats", type=int, default=5)
        p.add_argument("--warmup", type=int, default=2)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--preset", default="S", help="eformer preset (random weights)")
        p.add_argument(
            "--patch",
            default=None,
            help="FILE.py:function applied to the model of 'eformer-patched'",
        )
    sub.choices["run"].add_argument("--model", choices=sorted(BUILDERS), required=True)
    cmp = sub.choices["compare"]
    cmp.add_argument("--models", default="eformer,mace,nequip,xtb,eformer-calc")
    cmp.add_argument("--rounds", type=int, default=2)
    cmp.add_argument(
        "--venvs", default="/work/venvs", help="where anchors.sh made venvs"
    )
    cmp.add_argument("--xtb-max-atoms", type=int, default=192)
    cmp.add_argument("--output", default=None, help="JSON file for all timings")
    args = parser.parse_args()
    run(args) if args.mode == "run" else compare(args)


if __name__ == "__main__":
    main()
