"""``eformer fes``: free-energy surface, minima and barriers from PLUMED output."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import cast

from asecalc.cli._common import print_json, write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)


class CLICommand:
    """Free-energy surface (1D/2D), minima and barriers from HILLS or COLVAR.

    --method hills (default): F(s) = -sum of the HILLS Gaussians, numpy summation.
    PLUMED writes well-tempered hill heights already multiplied by
    biasfactor/(biasfactor-1), so the sum is the well-tempered estimate, as with
    `plumed sum_hills`. --method reweight: reweighted histogram of COLVAR
    (weights exp(metad.rbias/kT), or the final bias from HILLS).

    Error bars: block analysis (--blocks contiguous blocks) of the reweighted
    COLVAR on the same grid, when a COLVAR is found (next to HILLS or --colvar).
    Outputs in --output-dir: fes.dat (CVs, F and error in kJ/mol), fes.json
    (minima and barriers in kJ/mol, eV and kT), fes.png.

    A run directory instead of a file reads every walker of a multiple-walkers
    run (HILLS.0 ... HILLS.N-1, walker_<i>/COLVAR; `eformer metad --walkers`):
    their hills are summed into one free energy, their COLVARs reweighted
    together (rows sorted by time, so blocks are blocks of time).

    Examples:
      eformer fes metad1/HILLS --temperature 300 --json
      eformer fes mw1 --temperature 300 --json   # all walkers of mw1
    """

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add the ``fes`` options."""
        parser.add_argument(
            "file",
            help="HILLS (or COLVAR with --method reweight), or a run directory "
            "(the HILLS.* and walker_*/COLVAR of multiple walkers)",
        )
        parser.add_argument(
            "--colvar",
            help="COLVAR for error bars (default: beside HILLS, or the run "
            "directory's)",
        )
        parser.add_argument("--hills", help="HILLS for --method reweight without rbias")
        parser.add_argument("--temperature", type=float, default=300.0, help="K")
        parser.add_argument("--method", choices=("hills", "reweight"), default="hills")
        parser.add_argument(
            "--cv",
            action="append",
            default=None,
            metavar="NAME",
            help="CV label(s) to use (1 or 2; default: all)",
        )
        parser.add_argument(
            "--bins",
            type=int,
            default=None,
            help="bins per CV (default 100 for hills, 50 for reweight)",
        )
        parser.add_argument(
            "--range",
            action="append",
            default=None,
            metavar="MIN,MAX",
            help="grid range per CV in CV units (nm, rad)",
        )
        parser.add_argument("--blocks", type=int, default=5, help="blocks for errors")
        parser.add_argument(
            "--discard",
            type=float,
            default=0.2,
            help="fraction of COLVAR discarded as equilibration",
        )
        parser.add_argument(
            "--min-depth",
            type=float,
            default=1.0,
            help="minimum basin depth in kT to count as a minimum",
        )
        parser.add_argument("--output-dir", default="fes-out")
        parser.add_argument(
            "--json", action="store_true", help="print the summary JSON"
        )

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        """Compute, save and summarise the free-energy surface."""
        from analysis import fes

        path = Path(args.file)
        ranges = cast(  # "lo,hi" pairs
            "list[tuple[float, float]] | None",
            [tuple(float(v) for v in r.split(",")) for r in args.range or []] or None,
        )
        names, bins = args.cv, args.bins
        if args.method == "hills":
            surface = fes.fes_from_hills(
                path, args.temperature, names, bins or 100, ranges
            )
            colvar = Path(args.colvar) if args.colvar else _beside(path, "COLVAR")
            hills = path
            names, bins = list(surface.cv_names), len(surface.axes[0])
            ranges = [
                (a[0] - (a[1] - a[0]) / 2, a[-1] + (a[1] - a[0]) / 2)
                for a in surface.axes
            ]
        else:
            colvar = path
            hills = Path(args.hills) if args.hills else _beside(path, "HILLS")
        error_note = None
        colvars = fes.colvar_files(colvar)
        if colvars:
            try:
                rew = fes.fes_from_colvar(
                    colvar,
                    args.temperature,
                    names,
                    hills if fes.hills_files(hills) else None,
                    bins or 50,
                    ranges,
                    n_blocks=args.blocks,
                    discard_fraction=args.discard,
                )
            except ValueError as err:
                if args.method == "reweight":
                    raise
                logger.warning("no error bars: %s", err)
            else:
                if args.method == "hills":
                    surface.error = rew.error
                else:
                    surface = rew
                n = len(colvars)
                source = colvars[0].name if n == 1 else f"COLVAR of {n} walkers"
                error_note = (
                    f"block analysis ({args.blocks} blocks) of the reweighted "
                    f"{source}, first {args.discard:.0%} discarded"
                )
        elif args.method == "reweight":
            raise FileNotFoundError(f"COLVAR {colvar} not found")
        summary = fes.summarize(surface, args.min_depth)
        summary.update(source=str(path), error_method=error_note)
        out = Path(args.output_dir)
        write_text_atomic(out / "fes.dat", fes.format_fes(surface))
        write_json_atomic(out / "fes.json", summary)
        summary["plot"] = str(fes.plot_fes(surface, out / "fes.png", args.min_depth))
        if args.json:
            print_json(summary)
        else:
            for m in summary["minima"]:
                logger.info(
                    "minimum %d at %s: %.2f kJ/mol",
                    m["index"],
                    m["cv"],
                    m["free_energy"]["kJmol"],
                )
        return 0


def _beside(path: Path, name: str) -> Path:
    """The run directory itself, or the file ``name`` beside the file ``path``."""
    return path if path.is_dir() else path.with_name(name)
