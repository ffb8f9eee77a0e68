"""``eformer ti``: free energies by thermodynamic integration."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from asecalc.cli._common import (
    CALC_HELP,
    make_calculator,
    print_json,
    write_json_atomic,
)

if TYPE_CHECKING:
    from ase import Atoms

logger = logging.getLogger(__name__)


class CLICommand:
    """Free-energy difference between two calculators by thermodynamic integration.

    U(λ) = (1−λ)·U_A + λ·U_B is sampled by Langevin NVT at each λ (windows run in
    parallel processes and resume after an interruption); ΔF = ∫⟨U_B − U_A⟩dλ by
    Gauss–Legendre quadrature, cross-checked with MBAR.

    --from einstein   Frenkel–Ladd absolute free energy of a crystal (Einstein
                      springs fitted from a short MD, centre of mass fixed).
    --from harmonic   harmonic free energy from the Hessian of --to plus the
                      anharmonic correction by TI harmonic → --to.
    --from SPEC       any calculator (e.g. model_a.pt): ΔF = F(--to) − F(--from).

    Examples:
      eformer ti crystal.cif --from einstein --to eformer --temperature 300 \
          --lambdas 12 --json
      eformer ti mol.xyz --from model_a.pt --to model_b.pt --temperature 300 --lambdas 8
    """

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add ``eformer ti`` options."""
        parser.add_argument("structure", help="structure file readable by ase.io.read")
        parser.add_argument(
            "--from",
            dest="calc_from",
            default="einstein",
            help="λ=0 state: 'einstein', 'harmonic' or a calculator; " + CALC_HELP,
        )
        parser.add_argument(
            "--to",
            dest="calc_to",
            default="eformer",
            help="λ=1 state (a calculator spec)",
        )
        parser.add_argument(
            "--device", default=None, help="torch device for eformer models"
        )
        parser.add_argument("--temperature", type=float, default=300.0, help="K")
        grid = parser.add_mutually_exclusive_group()
        grid.add_argument(
            "--lambdas",
            type=int,
            default=8,
            help="number of Gauss–Legendre λ points (default 8)",
        )
        grid.add_argument(
            "--lambda-grid",
            default=None,
            help="comma-separated λ values from 0 to 1 (trapezoid rule)",
        )
        parser.add_argument(
            "--steps", type=int, default=2000, help="MD steps per window"
        )
        parser.add_argument(
            "--equilibration-steps",
            type=int,
            default=None,
            help="steps discarded per window (default steps/5)",
        )
        parser.add_argument("--timestep-fs", type=float, default=2.0)
        parser.add_argument(
            "--friction-per-fs",
            type=float,
            default=0.02,
            help="Langevin friction in 1/fs",
        )
        parser.add_argument(
            "--sample-interval",
            type=int,
            default=5,
            help="record energies every N steps",
        )
        parser.add_argument(
            "--checkpoint-interval",
            type=int,
            default=500,
            help="write window files every N steps",
        )
        parser.add_argument(
            "--supercell", default=None, help="repeat the structure, e.g. '3,3,3'"
        )
        parser.add_argument(
            "--msd-steps",
            type=int,
            default=500,
            help="MD steps to fit Einstein springs (--from einstein)",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="parallel processes (default: one per core)",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--free-com",
            action="store_true",
            help="do not fix the centre of mass (two-calculator TI only)",
        )
        parser.add_argument(
            "--output-dir",
            default="ti-out",
            help="windows, ti.json and dudl.png go here (default ./ti-out)",
        )
        parser.add_argument("--json", action="store_true", help="print a JSON summary")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        """Run the integration and write ``ti.json`` and ``dudl.png``."""
        from ase import io, units

        from analysis import ti

        atoms = cast("Atoms", io.read(args.structure))
        if args.supercell:
            atoms = atoms.repeat(_parse_ints(args.supercell))
        lambdas: Any = args.lambdas
        if args.lambda_grid:
            lambdas = ti.trapezoid([float(x) for x in args.lambda_grid.split(",")])
        out = Path(args.output_dir)
        kwargs = {
            "lambdas": lambdas,
            "n_steps": args.steps,
            "timestep": args.timestep_fs * units.fs,
            "friction": args.friction_per_fs / units.fs,
            "equilibration_steps": args.equilibration_steps,
            "sample_interval": args.sample_interval,
            "checkpoint_interval": args.checkpoint_interval,
            "n_workers": args.workers,
            "seed": args.seed,
            "output_dir": out / "windows",
        }
        target = make_calculator(args.calc_to, args.device)
        source = args.calc_from.lower()
        summary: dict[str, Any]
        if source == "einstein":
            result = ti.frenkel_ladd(
                atoms, target, args.temperature, msd_steps=args.msd_steps, **kwargs
            )
            summary, tiresult = _crystal_summary(result), result.ti
        elif source == "harmonic":
            result = ti.anharmonic_free_energy(
                atoms, target, args.temperature, **kwargs
            )
            summary, tiresult = _crystal_summary(result), result.ti
        else:
            start = make_calculator(args.calc_from, args.device)
            tiresult = ti.integrate(
                atoms,
                start,
                target,
                args.temperature,
                fix_com=not args.free_com,
                **kwargs,
            )
            summary = tiresult.to_dict()
        summary["settings"] = {
            k: v for k, v in vars(args).items() if not k.startswith("_")
        }
        summary["settings"]["n_atoms"] = len(atoms)
        write_json_atomic(out / "ti.json", summary)
        ti.plot_dudl(
            tiresult,
            out / "dudl.png",
            title=f"{args.calc_from} → {args.calc_to}, {args.temperature:g} K",
        )
        if args.json:
            print_json(summary)
        else:
            _print_human(summary, out)
        return 0


def _crystal_summary(result: Any) -> dict[str, Any]:
    """TI keys at top level plus the absolute free energy."""
    summary = result.ti.to_dict()
    crystal = result.to_dict()
    crystal.pop("ti")
    summary["crystal"] = crystal
    return summary


def _parse_ints(text: str) -> tuple[int, int, int]:
    parts = [int(x) for x in text.replace("x", ",").split(",")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3 or min(parts) < 1:
        raise ValueError(
            f"--supercell takes 'n' or 'n1,n2,n3' positive integers, got {text!r}"
        )
    return parts[0], parts[1], parts[2]


def _print_human(summary: dict[str, Any], out: Path) -> None:
    print(
        f"ΔF (TI)   = {summary['delta_F_eV']:.6f} ± {summary['error_eV']:.6f} eV "
        f"({summary['delta_F_meV_per_atom']:.3f} meV/atom)"
    )
    print(
        f"ΔF (MBAR) = {summary['mbar']['delta_F_eV']:.6f} ± "
        f"{summary['mbar']['error_eV']:.6f} eV"
    )
    if "crystal" in summary:
        c = summary["crystal"]
        print(
            f"F ({c['reference']} reference + TI) = {c['free_energy_eV']:.6f} ± "
            f"{c['error_eV']:.6f} eV ({c['free_energy_meV_per_atom']:.3f} meV/atom, "
            "COM fixed)"
        )
    print(f"λ windows, ti.json and dudl.png in {out}")
