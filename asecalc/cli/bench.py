"""``eformer bench``: energy + forces throughput in atom-steps/s."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


class CLICommand:
    """Time energy + forces calls and report atom-steps/s.

    Times ``calc.calculate(atoms, ["energy", "forces"])`` (median of --repeats
    calls after --warmup untimed calls) on aspirin (21 atoms), a 64-molecule
    (192-atom) and a 512-molecule (1536-atom) periodic water box at 1 g/cm3.
    Throughput is atoms x calls per second. This is a benchmark, not a test:
    compare models side by side in one run on a quiet machine.

    Examples:
        eformer bench                          # bundled default model
        eformer bench --preset S --dtype float32 --sizes 21,192
        eformer bench --model my.pt --repeats 10 --json
        eformer bench --calc xtb --sizes 21    # any ASE calculator
    """

    @staticmethod
    def add_arguments(parser: Any) -> None:
        """Add the bench options."""
        from asecalc.cli._common import add_calc_argument

        add_calc_argument(parser)
        parser.add_argument(
            "--preset",
            default=None,
            help="bench a random-weight model of this preset (S, M, L) with elements "
            "H,C,N,O instead of --model (timing only: the weights are not trained)",
        )
        parser.add_argument(
            "--dtype",
            choices=["float64", "float32"],
            default=None,
            help="floating dtype of eformer models "
            "(default: the model's; float64 for --preset)",
        )
        parser.add_argument(
            "--repeats", type=int, default=5, help="timed calls per size"
        )
        parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
        parser.add_argument(
            "--sizes",
            default="21,192,1536",
            help="comma-separated atom counts: 21 = aspirin, a multiple of 3 = water "
            "box of n/3 molecules (default 21,192,1536)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="torch intra-op threads (default: torch's choice); "
            "use 1 on a loaded machine",
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="seed of --preset weights"
        )
        parser.add_argument(
            "--output-dir",
            default=None,
            help="also write bench.json here (default: print only)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON on stdout")

    @staticmethod
    def run(args: Any) -> int:
        """Build the calculator, time every size, print a table or JSON."""
        import platform
        from pathlib import Path

        import torch

        from asecalc.bench import structure_for_size, time_calculator
        from asecalc.cli._common import print_json, write_json_atomic

        if args.repeats < 1 or args.warmup < 0:
            raise ValueError(
                "--repeats must be >= 1 and --warmup >= 0, got "
                f"{args.repeats} and {args.warmup}"
            )
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        calc, label = _build_calculator(args)
        structures = [structure_for_size(s) for s in args.sizes.split(",") if s.strip()]
        previous_threads = torch.get_num_threads()
        rows = []
        try:
            if args.threads is not None:
                torch.set_num_threads(args.threads)
            threads = torch.get_num_threads()
            for name, atoms in structures:
                logger.info("timing %s (%d atoms)", name, len(atoms))
                timing = time_calculator(calc, atoms, args.repeats, args.warmup)
                rows.append({"structure": name, "pbc": bool(atoms.pbc.any()), **timing})
        finally:
            torch.set_num_threads(previous_threads)
        summary = {
            "calculator": label,
            "dtype": args.dtype,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "torch_threads": threads,
            "torch_version": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "results": rows,
        }
        if args.output_dir:
            write_json_atomic(Path(args.output_dir) / "bench.json", summary)
        if args.json:
            print_json(summary)
        else:
            print(_table(summary))
        return 0


def _build_calculator(args: Any) -> tuple[Any, str]:
    """(calculator, label) from --preset / --calc and --dtype."""
    from asecalc.cli._common import make_calculator

    if args.preset:
        from asecalc.bench import random_model_calculator

        dtype = args.dtype or "float64"
        args.dtype = dtype
        return (
            random_model_calculator(args.preset, dtype=dtype, seed=args.seed),
            f"eformer random-weight preset {args.preset}",
        )
    spec = args.calc
    if spec.lower() in ("emt", "lj", "xtb", "gfn2", "gfn2-xtb", "tblite") or (
        ":" in spec and not spec.endswith(".pt")
    ):
        return make_calculator(spec, args.device), spec
    from asecalc.calculator import EformerCalculator

    model = None if spec.lower() in ("eformer", "default") else spec
    try:
        calc = EformerCalculator(model=model, device=args.device, dtype=args.dtype)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err}. To time a random-weight model instead, use --preset S"
        ) from err
    args.dtype = str(calc.dtype).replace("torch.", "")
    return calc, f"eformer {spec}"


def _table(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['calculator']}  dtype={summary['dtype']}  "
        f"threads={summary['torch_threads']}  median of {summary['repeats']}",
        f"{'structure':<12}{'atoms':>7}{'median s':>11}{'min s':>10}{'CPU s':>10}"
        f"{'atom-steps/s':>15}",
    ]
    for row in summary["results"]:
        lines.append(
            f"{row['structure']:<12}{row['n_atoms']:>7d}{row['median_s']:>11.4f}"
            f"{row['min_s']:>10.4f}{row['median_cpu_s']:>10.4f}"
            f"{row['atom_steps_per_s']:>15.1f}"
        )
    return "\n".join(lines)
