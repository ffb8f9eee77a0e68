"""Alanine dipeptide φ/ψ well-tempered metadynamics with the bundled default model.

Produces the long run that ``tutorials/03_metadynamics.ipynb`` analyses (HILLS,
COLVAR, timing) and reports the wall time per ns on this machine::

    OMP_NUM_THREADS=1 python benchmarks/ala2_metad.py OUT_DIR \\
        [--ps 50] [--calc eformer]

Resumable: the run is done in chunks of ``--chunk`` steps, each extending the
previous one from its last frame and HILLS (PLUMED ``RESTART``), so re-running the
same command after a kill continues where the last finished chunk ended.

Multiple walkers (``--walkers N``, one process each, sharing one bias through
``OUT_DIR/HILLS.<i>``; ``analysis.metad.run_walkers``): every walker simulates
``--ps``, starting from the bundled structure or from frame i of ``--starts``
(cycled), and each chunk extends all walkers. ``progress.json`` then records the
steps and wall time of every walker; ``ms_per_step`` is the wall time per step
of each walker (all running at once), ``aggregate_ms_per_step`` per step of all
walkers together::

    python benchmarks/ala2_metad.py OUT_DIR --walkers 2 [--starts frames.xyz]

Sampling choice: hydrogens get a mass of ``--hydrogen-mass`` amu (default 4) and the
time step is ``--timestep`` fs (default 1). Masses do not change the configurational
Boltzmann distribution, hence not the free-energy surface, and heavier hydrogens
allow a 2x longer step than the 0.5 fs of real-mass dynamics. The timing is reported
per step and converted to hours per ns at 0.5 fs (real masses) and at the step used
here.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

from ase import Atoms, units
from ase.io import read

from analysis import metad
from asecalc.cli._common import make_calculator
from asecalc.fileio import write_json_atomic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output_dir", type=Path)
    p.add_argument(
        "--calc", default="eformer", help="calculator spec (eformer, xtb, path.pt)"
    )
    p.add_argument("--ps", type=float, default=50.0, help="simulated time (ps)")
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument(
        "--hydrogen-mass", type=float, default=4.0, help="amu (1.008 = real)"
    )
    p.add_argument("--chunk", type=int, default=5000, help="steps per resumable chunk")
    p.add_argument("--height", type=float, default=1.2, help="kJ/mol")
    p.add_argument("--sigma", type=float, default=0.35, help="rad")
    p.add_argument("--biasfactor", type=float, default=10.0)
    p.add_argument("--pace", type=int, default=50, help="steps between hills")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--walkers", type=int, default=None, help="walkers sharing one bias")
    p.add_argument(
        "--starts", type=Path, help="ASE-readable file, one start frame per walker"
    )
    args = p.parse_args(argv)
    if args.starts and not args.walkers:
        p.error("--starts needs --walkers N")

    atoms = _with_masses(
        read(files("asecalc") / "data" / "alanine_dipeptide.xyz"), args.hydrogen_mass
    )
    cvs = [
        metad.parse_cv("phi=torsion:" + ",".join(map(str, atoms.info["phi_indices"]))),
        metad.parse_cv("psi=torsion:" + ",".join(map(str, atoms.info["psi_indices"]))),
    ]
    settings = metad.MetadynamicsSettings(
        height_kJmol=args.height,
        sigma=(args.sigma,),
        biasfactor=args.biasfactor,
        pace=args.pace,
        temperature_K=args.temperature,
        colvar_stride=50,
    )
    plumed_input = metad.build_plumed_input(cvs, settings)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    progress_file = out / "progress.json"
    if progress_file.exists():
        progress = json.loads(progress_file.read_text())
    else:
        progress = {
            "steps": 0,
            "wall_time_s": 0.0,
            "settings": vars(args) | {"output_dir": str(out)},
        }
    n_total = round(args.ps * 1000 / args.timestep)
    if args.walkers:
        starts = [atoms]
        if args.starts:
            frames = read(args.starts, index=":")
            starts = [_with_masses(a, args.hydrogen_mass) for a in frames]
        _run_walkers(args, starts, cvs, settings, n_total, progress)
        return _report(progress, args.timestep, progress_file)
    calc = make_calculator(args.calc)
    if (out / "metad.json").is_file():  # the run's own step counter is the truth
        metad_summary = json.loads((out / "metad.json").read_text())
        progress["steps"] = int(metad_summary["total_steps"])
    while progress["steps"] < n_total:
        n = min(args.chunk, n_total - progress["steps"])
        t0 = time.perf_counter()
        metad.run_metadynamics(
            atoms,
            calc,
            plumed_input,
            n,
            out,
            temperature_K=args.temperature,
            timestep=args.timestep * units.fs,
            friction=0.01 / units.fs,
            seed=args.seed + progress["steps"],
            restart=progress["steps"] > 0,
            trajectory_interval=500,
        )
        progress["steps"] += n
        progress["wall_time_s"] += time.perf_counter() - t0
        write_json_atomic(progress_file, progress)
        print(
            f"{progress['steps']}/{n_total} steps, {progress['wall_time_s']:.0f} s",
            flush=True,
        )
    return _report(progress, args.timestep, progress_file)


def _with_masses(atoms: Atoms, hydrogen_mass: float) -> Atoms:
    """``atoms`` with hydrogen masses set to ``hydrogen_mass`` (amu)."""
    masses = atoms.get_masses()
    masses[atoms.numbers == 1] = hydrogen_mass
    atoms.set_masses(masses)
    return atoms


def _run_walkers(
    args: argparse.Namespace,
    starts: list[Atoms],
    cvs: list[Any],
    settings: Any,
    n_total: int,
    progress: dict[str, Any],
) -> None:
    """Extend all walkers in chunks until each has ``n_total`` steps."""
    out = args.output_dir
    record = out / "walkers.json"  # the walkers' own step counters are the truth
    while True:
        steps = json.loads(record.read_text())["steps"] if record.is_file() else [0]
        progress["steps"] = min(steps)
        if progress["steps"] >= n_total:
            break
        t0 = time.perf_counter()
        run = metad.run_walkers(
            starts,
            functools.partial(make_calculator, args.calc),
            cvs,
            settings,
            min(args.chunk, n_total - progress["steps"]),
            out,
            n_walkers=args.walkers,
            timestep=args.timestep * units.fs,
            friction=0.01 / units.fs,
            seed=args.seed,
            restart=record.is_file(),
            trajectory_interval=500,
        )
        progress["wall_time_s"] += time.perf_counter() - t0
        walkers = json.loads(record.read_text())
        progress["steps"] = min(walkers["steps"])
        progress["walker_steps"] = walkers["steps"]
        progress["walker_wall_time_s"] = walkers["wall_time_s"]
        write_json_atomic(args.output_dir / "progress.json", progress)
        print(
            f"{min(run.total_steps)}/{n_total} steps x {len(run.runs)} walkers, "
            f"{progress['wall_time_s']:.0f} s",
            flush=True,
        )


def _report(progress: dict[str, Any], timestep_fs: float, path: Path) -> int:
    """Add the timing per step (and per ns of each trajectory); save and print."""
    ms = 1000 * progress["wall_time_s"] / progress["steps"]
    progress["ms_per_step"] = ms
    progress["hours_per_ns_at_0.5fs"] = ms * 2e6 / 1000 / 3600
    hours_per_ns = ms * 1e6 / timestep_fs / 1000 / 3600
    progress[f"hours_per_ns_at_{timestep_fs:g}fs"] = hours_per_ns
    if "walker_steps" in progress:
        steps, walls = progress["walker_steps"], progress["walker_wall_time_s"]
        progress["ms_per_step_per_walker"] = [
            1000 * w / n for w, n in zip(walls, steps, strict=True)
        ]
        progress["aggregate_ms_per_step"] = 1000 * progress["wall_time_s"] / sum(steps)
    write_json_atomic(path, progress)
    print(json.dumps(progress, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
