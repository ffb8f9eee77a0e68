"""``eformer eval``: see ``CLICommand``."""

from __future__ import annotations


class CLICommand:
    """Errors of a model on labelled data (energy meV/atom, forces meV/Å, stress GPa).

    Examples:
      eformer eval run1/model.pt test.db --json
      eformer eval default test.db --by molecule --output-dir eval1
    """

    @staticmethod
    def add_arguments(parser):
        parser.add_argument(
            "model", help="model file, 'default' or a bundled model name"
        )
        parser.add_argument(
            "data", nargs="+", help="ASE databases or labelled extxyz files"
        )
        parser.add_argument("--select", help="ase.db query")
        parser.add_argument(
            "--by", help="also report per value of this key (e.g. molecule)"
        )
        parser.add_argument("--max-structures", type=int)
        parser.add_argument(
            "--output-dir", default="eval-out", help="parity PNG and JSON go here"
        )
        parser.add_argument("--json", action="store_true", help="print metrics as JSON")

    @staticmethod
    def run(args):
        import logging
        from pathlib import Path

        from asecalc.checkpoint import load_model
        from asecalc.cli._common import print_json, write_json_atomic
        from asecalc.training.evaluate import evaluate_model
        from asecalc.training.plots import parity_plot

        bundle = load_model(args.model)
        result = evaluate_model(
            bundle, args.data, args.select, args.by, max_structures=args.max_structures
        )
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        parity_plot(result.pop("parity"), out / "parity.png")
        result["model"] = str(bundle.path)
        result["data"] = str(args.data)
        write_json_atomic(out / "metrics.json", result)
        if args.json:
            print_json(result)
        else:
            log = logging.getLogger("eformer.eval")
            for key, value in result["overall"].items():
                log.info("%-32s %10.3f", key, value)
