"""Alanine dipeptide φ/ψ well-tempered metadynamics with the bundled default model.

Produces the long run that ``tutorials/03_metadynamics.ipynb`` analyses (HILLS,
COLVAR, timing) and reports the wall time per ns on this machine::

    OMP_NUM_THREADS=1 python benchmarks/ala2_metad.py OUT_DIR \\
        [--ps 50] [--calc eformer]

Resumable: the run is done in chunks of ``--chunk`` steps, each extending the
previous one from its last frame and HILLS (PLUMED ``RESTART``), so re-running the
same command after a kill continues where the last finished chunk ended.

Sampling choice: hydrogens get a mass of ``--hydrogen-mass`` amu (default 4) and the
time step is ``--timestep`` fs (default 1). Masses do not change the configurational
Boltzmann distribution, hence not the free-energy surface, and heavier hydrogens
allow a 2x longer step than the 0.5 fs of real-mass dynamics. The timing is reported
per step and converted to hours per ns at 0.5 fs (real masses) and at the step used
here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.resources import files
from pathlib import Path

from ase import units
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
    args = p.parse_args(argv)

    atoms = read(files("asecalc") / "data" / "alanine_dipeptide.xyz")
    masses = atoms.get_masses()
    masses[atoms.numbers == 1] = args.hydrogen_mass
    atoms.set_masses(masses)
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
    ms = 1000 * progress["wall_time_s"] / progress["steps"]
    progress["ms_per_step"] = ms
    progress["hours_per_ns_at_0.5fs"] = ms * 2e6 / 1000 / 3600
    hours_per_ns = ms * 1e6 / args.timestep / 1000 / 3600
    progress[f"hours_per_ns_at_{args.timestep:g}fs"] = hours_per_ns
    write_json_atomic(progress_file, progress)
    print(json.dumps(progress, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
