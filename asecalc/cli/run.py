"""``eformer run``: see ``CLICommand``."""

from __future__ import annotations


class CLICommand:
    """Energy, forces, relaxation and a short MD run of a structure with a model.

    The quick "does it work" job: evaluates the structure (default: the bundled
    alanine dipeptide), relaxes it with BFGS, runs Langevin MD and reports the
    energies, max force, temperature and speed.

    Examples:
      eformer run                          # bundled default model, alanine dipeptide
      eformer run water.xyz --steps 500 --temperature 300 --json
      eformer run si.cif --calc mlearn-pbe --output-dir si-run
    """

    @staticmethod
    def add_arguments(parser):
        from asecalc.cli._common import add_calc_argument

        parser.add_argument(
            "structure",
            nargs="?",
            help="file ase.io reads (default: bundled alanine dipeptide)",
        )
        add_calc_argument(parser)
        parser.add_argument(
            "--fmax", type=float, default=0.05, help="relaxation target, eV/Å"
        )
        parser.add_argument("--relax-steps", type=int, default=200)
        parser.add_argument("--steps", type=int, default=200, help="MD steps")
        parser.add_argument(
            "--timestep", type=float, default=0.5, help="MD time step in fs"
        )
        parser.add_argument(
            "--temperature", type=float, default=300.0, help="Langevin, K"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--output-dir", default="run-out")
        parser.add_argument(
            "--json", action="store_true", help="print the report as JSON"
        )

    @staticmethod
    def run(args):
        import logging
        import time
        from pathlib import Path

        import ase.io
        import numpy as np
        from ase import units
        from ase.md.langevin import Langevin
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
        from ase.optimize import BFGS

        from asecalc.cli._common import make_calculator, print_json, write_json_atomic

        log = logging.getLogger("eformer.run")
        path = args.structure or str(
            Path(__file__).parents[1] / "data" / "alanine_dipeptide.xyz"
        )
        atoms = ase.io.read(path)
        atoms.calc = make_calculator(args.calc, args.device)
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = {
            "structure": path,
            "calculator": args.calc,
            "n_atoms": len(atoms),
            "formula": atoms.get_chemical_formula(),
        }
        report["energy_eV"] = atoms.get_potential_energy()
        report["max_force_eV_per_A"] = float(
            np.linalg.norm(atoms.get_forces(), axis=1).max()
        )
        opt = BFGS(
            atoms, logfile=str(out / "relax.log"), trajectory=str(out / "relax.traj")
        )
        converged = opt.run(fmax=args.fmax, steps=args.relax_steps)
        report.update(
            relaxed=bool(converged),
            relax_steps=opt.nsteps,
            relaxed_energy_eV=atoms.get_potential_energy(),
        )
        ase.io.write(out / "relaxed.xyz", atoms)
        MaxwellBoltzmannDistribution(
            atoms, temperature_K=args.temperature, rng=np.random.default_rng(args.seed)
        )
        md = Langevin(
            atoms,
            args.timestep * units.fs,
            temperature_K=args.temperature,
            friction=0.01 / units.fs,
            rng=np.random.default_rng(args.seed + 1),
            trajectory=str(out / "md.traj"),
            loginterval=10,
        )
        temps = []
        md.attach(lambda: temps.append(atoms.get_temperature()), interval=10)
        start = time.perf_counter()
        md.run(args.steps)
        wall = time.perf_counter() - start
        report.update(
            md_steps=args.steps,
            md_temperature_K_mean=float(np.mean(temps)),
            md_final_energy_eV=atoms.get_potential_energy(),
            md_steps_per_s=args.steps / wall if wall else float("nan"),
        )
        write_json_atomic(out / "report.json", report)
        if args.json:
            print_json(report)
        else:
            for key, value in report.items():
                log.info("%-24s %s", key, value)
