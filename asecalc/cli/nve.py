"""``eformer nve``: NVE energy-drift check of any ASE calculator."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from asecalc.cli._common import (
    add_calc_argument,
    make_calculator,
    print_json,
    write_json_atomic,
)

if TYPE_CHECKING:
    from ase import Atoms

logger = logging.getLogger(__name__)

#: Keys of the human-readable summary (the JSON holds every field).
_SUMMARY_KEYS = (
    "n_atoms",
    "n_steps",
    "drift_meV_per_atom_per_ps",
    "fluctuation_meV_per_atom",
    "max_excursion_meV_per_atom",
    "drift_to_kinetic_fluctuation",
    "temperature_K_mean",
    "temperature_K_std",
    "min_distance_A",
    "max_force_eV_per_A",
    "jacobian_asymmetry",
    "steps_per_s",
    "exploded",
)


class CLICommand:
    """NVE energy-drift check: does a calculator conserve energy?

    Seeds Maxwell-Boltzmann velocities, optionally equilibrates with Langevin
    dynamics, runs velocity-Verlet NVE and reports the drift of the total energy
    (slope of a linear fit, meV/atom/ps), its fluctuation and max excursion, the
    temperature, the minimum distance and maximum force (blow-up detection) and
    the Jacobian asymmetry λ of the forces (~0 for a conservative calculator).
    Writes to --output-dir: nve.traj, energies.png, report.json and, after a
    blow-up, last_good.xyz. Exits with an error after a blow-up.

      eformer nve structure.xyz --temperature 300 --timestep 0.5 --steps 20000 --json
      eformer nve Cu.cif --calc emt --steps 2000

    Long runs: --checkpoint-interval N saves the state every N NVE steps (and
    at the end) to OUTPUT_DIR/nve_checkpoint.npz. To resume a killed run,
    re-run the same command with --resume added: it continues velocity Verlet
    from the saved positions and momenta (no new velocities, no equilibration;
    the structure file only gives the species) up to --steps in total, drops
    the frames of nve.traj written after the checkpoint, and gives the report
    of an uninterrupted run (wall time aside: it adds up over the pieces).
    --resume with a larger --steps extends a finished run.

      eformer nve w.xyz --steps 100000 --checkpoint-interval 1000 --output-dir o
      eformer nve w.xyz --steps 100000 --checkpoint-interval 1000 --output-dir o \\
        --resume
    """

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the ``nve`` options."""
        parser.add_argument("structure", help="structure file readable by ase.io")
        parser.add_argument(
            "--index", default="-1", help="frame of the structure file (default -1)"
        )
        add_calc_argument(parser)
        parser.add_argument(
            "--temperature",
            type=float,
            default=300.0,
            metavar="K",
            help="initial/equilibration temperature in K (default 300)",
        )
        parser.add_argument(
            "--timestep",
            "--timestep-fs",
            dest="timestep_fs",
            type=float,
            default=0.5,
            metavar="FS",
            help="time step in femtoseconds (fs, default 0.5)",
        )
        parser.add_argument(
            "--steps", type=int, default=2000, help="NVE steps (default 2000)"
        )
        parser.add_argument(
            "--equilibration-steps",
            type=int,
            default=0,
            help="Langevin steps at --temperature before NVE (default 0)",
        )
        parser.add_argument(
            "--friction",
            type=float,
            default=0.01,
            metavar="PER_FS",
            help="Langevin friction in 1/fs (default 0.01)",
        )
        parser.add_argument("--seed", type=int, default=0, help="velocity seed")
        parser.add_argument(
            "--jacobian-frames",
            type=int,
            default=2,
            help="frames for the Jacobian asymmetry λ, each 6*min(N,32) force "
            "calls; 0 skips (default 2)",
        )
        parser.add_argument(
            "--jacobian-displacement",
            type=float,
            default=1e-3,
            help="finite-difference step of λ in Å (default 1e-3)",
        )
        parser.add_argument(
            "--trajectory-interval",
            type=int,
            default=10,
            help="steps between frames of nve.traj (default 10)",
        )
        parser.add_argument(
            "--min-distance",
            type=float,
            default=0.5,
            help="blow-up if two atoms get closer than this, in Å (default 0.5)",
        )
        parser.add_argument(
            "--max-force",
            type=float,
            default=50.0,
            help="blow-up if a force component exceeds this, in eV/Å (default 50)",
        )
        parser.add_argument(
            "--checkpoint-interval",
            type=int,
            default=0,
            metavar="STEPS",
            help="every STEPS NVE steps (counted in steps, not fs) and at the end, "
            "save atomically to OUTPUT_DIR/nve_checkpoint.npz: positions (Å), "
            "momenta, cell, masses, numbers, the potential and kinetic energy of "
            "every step so far (eV), counters (steps done, wall time, min distance, "
            "max force, Jacobian frames) and the run's options; 0 = none (default; "
            "with --resume: keep the stored interval)",
        )
        parser.add_argument(
            "--resume",
            action="store_true",
            help="continue the run checkpointed in --output-dir up to --steps NVE "
            "steps in total; pass the options of the first run (the timestep, "
            "temperature, seed, equilibration, friction and intervals are checked)",
        )
        parser.add_argument(
            "--output-dir", default="nve-out", help="output folder (default nve-out)"
        )
        parser.add_argument(
            "--json", action="store_true", help="print the report as JSON on stdout"
        )

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        """Run the drift check and write the report."""
        from ase import units
        from ase.io import read

        from analysis.nve import run_nve

        atoms = cast("Atoms", read(args.structure, index=args.index))
        calc = make_calculator(args.calc, args.device)
        output = Path(args.output_dir)
        report = run_nve(
            atoms,
            calc,
            temperature_K=args.temperature,
            timestep=args.timestep_fs * units.fs,
            n_steps=args.steps,
            equilibration_steps=args.equilibration_steps,
            friction=args.friction / units.fs,
            seed=args.seed,
            trajectory_interval=args.trajectory_interval,
            output_dir=output,
            jacobian_frames=args.jacobian_frames,
            jacobian_displacement=args.jacobian_displacement,
            min_distance=args.min_distance,
            max_force=args.max_force,
            checkpoint_interval=args.checkpoint_interval,
            resume=args.resume,
        )
        data: dict[str, Any] = {
            "structure": str(args.structure),
            "calc": args.calc,
            **report.to_dict(),
        }
        write_json_atomic(output / "report.json", data)
        data["files"]["report"] = str(output / "report.json")
        if args.json:
            print_json(data)
        else:
            _print_summary(data)
        if report.exploded:
            where = report.files.get("last_good", "not saved")
            raise RuntimeError(
                f"NVE run blew up: {report.explosion_reason}; last good frame: {where}"
            )
        return 0


def _print_summary(data: dict[str, Any]) -> None:
    for key in _SUMMARY_KEYS:
        value = data.get(key)
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:32s} {text}")
    print(f"{'output':32s} {Path(data['files']['report']).parent}")
