"""``eformer metad``: well-tempered metadynamics with PLUMED around any calculator."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from asecalc.cli._common import add_calc_argument, print_json, write_json_atomic

if TYPE_CHECKING:
    from ase import Atoms

logger = logging.getLogger(__name__)


class CLICommand:
    """Well-tempered metadynamics (PLUMED) with Langevin dynamics.

    Biases one or more collective variables with the real PLUMED 2 kernel
    (ase.calculators.plumed) around any calculator; writes COLVAR, HILLS,
    trajectory.traj, plumed.dat and a restart frame to --output-dir.

    CV shorthands (atom indices are 0-BASED, converted to PLUMED's 1-based
    numbering internally), optionally prefixed by a label (phi=torsion:...):
      distance:i,j  angle:i,j,k  torsion:i,j,k,l
      coordination:A;B(r0)   groups '0,1,2' or '0-5'; r0 in nm, or '2.5A'
      rmsd:reference.pdb
    PLUMED units inside PLUMED: height in kJ/mol, sigma in CV units (rad, nm).

    Examples:
      eformer metad ala2.pdb --cv 'phi=torsion:4,6,8,14' --cv 'psi=torsion:6,8,14,16' \\
          --temperature 300 --height 1.2 --sigma 0.35 --biasfactor 6 --pace 500 \\
          --steps 200000 --output-dir metad1
      eformer metad ala2.pdb --plumed-input my_plumed.dat --steps 10000
      eformer metad ala2.pdb --restart --steps 100000 --output-dir metad1   # extend
      eformer fes metad1/HILLS --temperature 300 --json
    """

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the ``metad`` options."""
        parser.add_argument(
            "structure", help="initial structure (any ASE-readable file)"
        )
        parser.add_argument(
            "--cv",
            action="append",
            default=[],
            metavar="SPEC",
            help="collective variable shorthand (repeat for 2D)",
        )
        parser.add_argument(
            "--plumed-input",
            metavar="FILE",
            help="raw PLUMED input instead of --cv/--height/...; it "
            "runs in --output-dir (use absolute paths for files it reads)",
        )
        parser.add_argument("--temperature", type=float, default=300.0, help="K")
        parser.add_argument("--height", type=float, default=1.2, help="kJ/mol")
        parser.add_argument(
            "--sigma",
            default="0.35",
            help="Gaussian width(s) in CV units (rad or nm), comma list",
        )
        parser.add_argument("--biasfactor", type=float, default=6.0)
        parser.add_argument("--pace", type=int, default=500, help="steps between hills")
        parser.add_argument(
            "--grid",
            action="append",
            default=[],
            metavar="MIN,MAX",
            help="grid range per CV, e.g. --grid=0.1,0.5 (torsions: ±pi by default)",
        )
        parser.add_argument("--steps", type=int, default=10000)
        parser.add_argument("--timestep", type=float, default=0.5, help="fs")
        parser.add_argument(
            "--friction", type=float, default=0.01, help="Langevin, 1/fs"
        )
        parser.add_argument("--colvar-stride", type=int, default=10, help="steps")
        parser.add_argument(
            "--trajectory-interval", type=int, default=100, help="steps"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--restart",
            action="store_true",
            help="extend the run in --output-dir from its last frame and "
            "HILLS (PLUMED RESTART, no bias lost)",
        )
        parser.add_argument("--output-dir", default="metad-out")
        parser.add_argument("--json", action="store_true", help="print a JSON summary")
        add_calc_argument(parser)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        """Run metadynamics and write the outputs."""
        from ase import units
        from ase.io import read

        from analysis import metad

        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        lines = _plumed_lines(args, out, metad)
        atoms = cast("Atoms", read(args.structure))
        calc = _make_calc(args)
        result = metad.run_metadynamics(
            atoms,
            calc,
            lines,
            args.steps,
            out,
            temperature_K=args.temperature,
            timestep=args.timestep * units.fs,
            friction=args.friction / units.fs,
            seed=args.seed,
            restart=args.restart,
            trajectory_interval=args.trajectory_interval,
        )
        ns = args.steps * args.timestep * 1e-6
        summary = {
            "output_dir": str(result.output_dir),
            "steps": result.n_steps,
            "total_steps": result.total_steps,
            "timestep_fs": args.timestep,
            "simulated_ns": ns,
            "wall_time_s": result.wall_time_s,
            "wall_hours_per_ns": result.wall_time_s / 3600 / ns if ns else None,
            "files": {
                k: str(out / k)
                for k in (
                    "COLVAR",
                    "HILLS",
                    "plumed.dat",
                    "trajectory.traj",
                    "restart.traj",
                )
            },
            "next": f"eformer fes {out / 'HILLS'} --temperature {args.temperature:g}",
        }
        write_json_atomic(out / "summary.json", summary)
        if args.json:
            print_json(summary)
        else:
            logger.info(
                "wrote %s (%.1f s, %.2f h/ns)",
                out,
                result.wall_time_s,
                summary["wall_hours_per_ns"] or 0.0,
            )
        return 0


def _make_calc(args: argparse.Namespace) -> Any:
    from asecalc.cli._common import make_calculator

    return make_calculator(args.calc, args.device)


def _plumed_lines(args: argparse.Namespace, out: Path, metad: Any) -> list[str]:
    """PLUMED input lines from --plumed-input, --cv, or the saved run (--restart)."""
    from dataclasses import asdict

    from asecalc.cli._common import write_text_atomic

    if args.plumed_input and args.cv:
        raise ValueError("give either --cv or --plumed-input, not both")
    if args.plumed_input:
        return metad.include_plumed_file(args.plumed_input, out)
    if not args.cv:
        if args.restart and (out / "plumed.dat").is_file():
            return ["INCLUDE FILE=plumed.dat"]
        raise ValueError("expected at least one --cv SPEC or --plumed-input FILE")
    cvs = [metad.parse_cv(spec, f"cv{k + 1}") for k, spec in enumerate(args.cv)]
    pis = {"pi": math.pi, "-pi": -math.pi}
    grid = tuple(
        tuple(pis.get(v.strip()) or float(v) for v in g.split(",")) for g in args.grid
    )
    settings = metad.MetadynamicsSettings(
        height_kJmol=args.height,
        sigma=tuple(float(s) for s in args.sigma.split(",")),
        biasfactor=args.biasfactor,
        pace=args.pace,
        temperature_K=args.temperature,
        colvar_stride=args.colvar_stride,
        grid=grid or None,
    )
    lines = metad.build_plumed_input(cvs, settings, out)
    write_text_atomic(out / "plumed.dat", "\n".join(lines) + "\n")
    write_json_atomic(out / "settings.json", {"cvs": args.cv, **asdict(settings)})
    return lines
