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

    Multiple walkers (--walkers N): N processes share one bias through
    HILLS.0 ... HILLS.N-1 in --output-dir, each walker running in
    --output-dir/walker_<i>/ (COLVAR, trajectory) with seed --seed + i, from the
    structure or from frame i of --walker-starts (cycled). --restart extends
    every walker; `eformer fes DIR` sums the hills of all walkers:
      eformer metad ala2.pdb --cv 'phi=torsion:4,6,8,14' --walkers 2 \\
          --steps 100000 --output-dir mw1
      eformer metad ala2.pdb --restart --steps 100000 --output-dir mw1
      eformer fes mw1 --temperature 300 --json
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
        parser.add_argument(
            "--walkers",
            type=int,
            default=None,
            metavar="N",
            help="multiple walkers sharing one bias, one process each (needs --cv)",
        )
        parser.add_argument(
            "--walker-starts",
            metavar="FILE",
            help="ASE-readable file, one start frame per walker (cycled); "
            "default: every walker starts from the structure",
        )
        parser.add_argument(
            "--read-stride",
            type=int,
            default=None,
            help="steps between reads of the other walkers' hills (default: pace)",
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
        if args.walkers is not None or (
            args.restart and (out / "walkers.json").is_file()
        ):
            return _run_walkers(args, out, metad)
        if args.walker_starts or args.read_stride:
            raise ValueError("--walker-starts and --read-stride need --walkers N")
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
        hours = summary["wall_hours_per_ns"] or 0.0
        return _finish(
            out, summary, args.json, f"{result.wall_time_s:.1f} s, {hours:.2f} h/ns"
        )


def _make_calc(args: argparse.Namespace) -> Any:
    from asecalc.cli._common import make_calculator

    return make_calculator(args.calc, args.device)


def _plumed_lines(args: argparse.Namespace, out: Path, metad: Any) -> list[str]:
    """PLUMED input lines from --plumed-input, --cv, or the saved run (--restart)."""
    from asecalc.cli._common import write_text_atomic

    if args.plumed_input and args.cv:
        raise ValueError("give either --cv or --plumed-input, not both")
    if args.plumed_input:
        return metad.include_plumed_file(args.plumed_input, out)
    if not args.cv:
        if args.restart and (out / "plumed.dat").is_file():
            return ["INCLUDE FILE=plumed.dat"]
        raise ValueError("expected at least one --cv SPEC or --plumed-input FILE")
    cvs, settings = _cvs_and_settings(args, out, metad)
    lines = metad.build_plumed_input(cvs, settings, out)
    write_text_atomic(out / "plumed.dat", "\n".join(lines) + "\n")
    return lines


def _cvs_and_settings(
    args: argparse.Namespace, out: Path, metad: Any
) -> tuple[list[Any], Any]:
    """CVs and METAD settings from --cv/--height/..., saved to settings.json."""
    from dataclasses import asdict

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
    write_json_atomic(out / "settings.json", {"cvs": args.cv, **asdict(settings)})
    return cvs, settings


def _saved_cvs_and_settings(out: Path, metad: Any) -> tuple[list[Any], Any]:
    """CVs and METAD settings of the run in ``out`` (settings.json)."""
    import json

    path = out / "settings.json"
    if not path.is_file():
        raise ValueError(f"cannot extend: no settings.json in {out}; pass --cv again")
    saved = json.loads(path.read_text())
    specs = saved.pop("cvs")
    cvs = [metad.parse_cv(spec, f"cv{k + 1}") for k, spec in enumerate(specs)]
    saved["sigma"] = tuple(saved["sigma"])
    if saved["grid"] is not None:
        saved["grid"] = tuple(tuple(g) for g in saved["grid"])
    return cvs, metad.MetadynamicsSettings(**saved)


def _run_walkers(args: argparse.Namespace, out: Path, metad: Any) -> int:
    """``--walkers N``: N processes sharing one bias (analysis.metad.run_walkers)."""
    import functools

    from ase import units
    from ase.io import read

    from asecalc.cli._common import make_calculator

    if args.plumed_input:
        raise ValueError(
            "--walkers needs --cv shorthands: a raw --plumed-input has one METAD "
            "line for all walkers (run your own inputs with WALKERS_N, WALKERS_ID, "
            "WALKERS_DIR and WALKERS_RSTRIDE on the METAD line instead)"
        )
    if not args.cv and not args.restart:
        raise ValueError("expected at least one --cv SPEC with --walkers")
    if args.cv:
        cvs, settings = _cvs_and_settings(args, out, metad)
    else:
        cvs, settings = _saved_cvs_and_settings(out, metad)
    starts = cast(
        "list[Atoms]",
        read(args.walker_starts, index=":")
        if args.walker_starts
        else [read(args.structure)],
    )
    result = metad.run_walkers(
        starts,
        functools.partial(make_calculator, args.calc, args.device),
        cvs,
        settings,
        args.steps,
        out,
        n_walkers=args.walkers,
        read_stride=args.read_stride,
        timestep=args.timestep * units.fs,
        friction=args.friction / units.fs,
        seed=args.seed,
        restart=args.restart,
        trajectory_interval=args.trajectory_interval,
    )
    ns = args.steps * args.timestep * 1e-6  # per walker
    summary = {
        "output_dir": str(result.output_dir),
        "walkers": len(result.runs),
        "steps": args.steps,
        "total_steps": result.total_steps,
        "timestep_fs": args.timestep,
        "simulated_ns_per_walker": ns,
        "wall_time_s": result.wall_time_s,
        "wall_hours_per_ns_per_walker": result.wall_time_s / 3600 / ns if ns else None,
        "files": {
            "hills": [str(p) for p in result.hills],
            "colvar": [str(p) for p in result.colvars],
            "walkers": str(result.output_dir / "walkers.json"),
        },
        "next": f"eformer fes {out} --temperature {settings.temperature_K:g}",
    }
    return _finish(
        out,
        summary,
        args.json,
        f"{len(result.runs)} walkers, {result.wall_time_s:.1f} s",
    )


def _finish(out: Path, summary: dict[str, Any], as_json: bool, message: str) -> int:
    """Write ``out/summary.json``; print it (``--json``) or log ``message``."""
    write_json_atomic(out / "summary.json", summary)
    if as_json:
        print_json(summary)
    else:
        logger.info("wrote %s (%s)", out, message)
    return 0
