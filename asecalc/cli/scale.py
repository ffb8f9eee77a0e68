"""``eformer scale``: see ``CLICommand``."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


class CLICommand:
    """Scaling laws and adaptive scaling (DiaSL): sweep, fit, adaptive, compare.

    Measure how validation loss falls with training FLOPs (counted with
    torch.utils.flop_counter, forward + backward incl. the force double
    backward), training structures and parameters; fit power laws with
    bootstrapped 95 % intervals; let the fitted laws and the train/validation
    gap decide whether to add data or grow the model (function-preserving).

    Examples:
      eformer scale sweep data.db --sizes small,medium \\
          --data-fractions 0.1,0.2,0.5,1.0 --budget-flops 1e15 --output-dir sweep
      eformer scale fit sweep --json          # fit.json + loss_vs_*.png in sweep/
      eformer scale adaptive data.db --budget-flops 5e15 --output-dir adaptive
      eformer scale adaptive data.db --budget-flops 5e15 --laws sweep/fit.json
      # laws-guided growth: a constant-rate pilot over sizes fits L(P, steps)
      eformer scale sweep data.db --sizes s1:S:n_layers=1,small,s3:S:n_layers=3 \\
          --data-fractions 1.0 --budget-flops 2e12 --n-evals 20 \\
          --train.schedule constant --output-dir pilot
      eformer scale fit pilot --metric val_forces_mae_meV_per_A --budgets 1e13
      # ... logs the size L(P, steps) predicts best at 1e13 (fit.json: size_choice);
      # train that size, or let DiaSL grow into it (growth still lags, see README):
      eformer scale adaptive data.db --budget-flops 1e13 --laws pilot/fit.json \\
          --diasl.growth laws --diasl.schedule cosine --diasl.initial-fraction 1.0
      eformer scale compare data.db --budget-flops 5e15 --fixed-sizes small,medium \\
          --test test.db

    A size is a preset (S/small, M/medium, L/large) or label:preset:key=value:...,
    e.g. 'xs:S:n_scalars=8:n_vectors=4:n_layers=1'. --model.* flags apply to all
    sizes; --train.* flags set the training (lr, batch size, loss weights).
    --budget-flops is per run (sweep, compare: each fixed configuration).
    Re-running a command with the same --output-dir continues a stopped run
    (adaptive refuses if settings that shape the run changed).
    """

    @staticmethod
    def add_arguments(parser: Any) -> None:
        """Add the ``sweep``, ``fit``, ``adaptive`` and ``compare`` subcommands."""
        sub = parser.add_subparsers(
            dest="scale_command", metavar="ACTION", required=True
        )
        sweep = sub.add_parser(
            "sweep", help="train model size x data size at a FLOP budget"
        )
        _common_run(sweep, "scale-sweep")
        sweep.add_argument(
            "--sizes", default="small,medium", help="model sizes (see above)"
        )
        sweep.add_argument(
            "--data-fractions",
            default="0.1,0.2,0.5,1.0",
            help="fractions of the training pool (nested subsets)",
        )
        sweep.add_argument(
            "--n-evals",
            type=int,
            default=10,
            help="validation points per run (the loss-vs-FLOPs curve)",
        )
        fit = sub.add_parser("fit", help="fit L(C), L(N), L(P), L(N,P) to a sweep")
        fit.add_argument("sweep_dir", help="output directory of `eformer scale sweep`")
        fit.add_argument(
            "--metric",
            default="val_loss",
            help="metrics.csv column to fit (e.g. val_forces_mae_meV_per_A)",
        )
        fit.add_argument(
            "--bootstrap", type=int, default=200, help="bootstrap resamples"
        )
        fit.add_argument(
            "--budgets",
            help="comma-separated FLOP budgets for the compute-optimal allocation "
            "and the size choice (default: 1, 10, 100 x the largest run's)",
        )
        fit.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
        fit.add_argument("--json", action="store_true", help="print fit.json on stdout")
        adaptive = sub.add_parser(
            "adaptive", help="DiaSL: grow data or model as gains stall"
        )
        _common_run(adaptive, "scale-adaptive")
        _adaptive_args(adaptive)
        compare = sub.add_parser(
            "compare", help="adaptive vs fixed configurations, equal FLOPs"
        )
        _common_run(compare, "scale-compare")
        _adaptive_args(compare)
        compare.add_argument(
            "--fixed-sizes",
            default="small,medium",
            help="fixed configurations (all data, cosine over the budget)",
        )
        compare.add_argument(
            "--test",
            help="labelled data no run sees: every run's best model is tested on it "
            "(the unbiased verdict; the validation set also picked the models)",
        )
        compare.add_argument("--test-select", help="ase.db query for --test")

    @staticmethod
    def run(args: Any) -> int:
        """Dispatch to the chosen action."""
        from asecalc.cli._common import print_json

        action = {
            "sweep": _sweep,
            "fit": _fit,
            "adaptive": _adaptive,
            "compare": _compare,
        }[args.scale_command]
        summary = action(args)
        if args.json:
            print_json(summary)
        return 0


def _common_run(parser: Any, default_dir: str) -> None:
    from asecalc.cli._fields import add_dataclass_arguments
    from asecalc.config import ModelConfig, TrainConfig

    parser.add_argument(
        "data", help="ASE database (.db) or a file ase.io reads, with labels"
    )
    parser.add_argument(
        "--budget-flops",
        type=float,
        required=True,
        help="training FLOPs per run (e.g. 1e15)",
    )
    parser.add_argument(
        "--output-dir", default=default_dir, help="where everything goes"
    )
    parser.add_argument("--select", help="ase.db query, e.g. 'split=train'")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="held-out validation fraction (same split for every run)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument(
        "--flops-batches",
        type=int,
        default=3,
        help="batches on which the FLOPs per step are counted",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_dataclass_arguments(parser, "train", TrainConfig)
    add_dataclass_arguments(parser, "model", ModelConfig)


def _adaptive_args(parser: Any) -> None:
    from asecalc.cli._fields import add_dataclass_arguments
    from asecalc.training._diasl_config import DiaSLConfig  # torch-free

    parser.add_argument(
        "--start-size",
        default="small:S:n_layers=1",
        help="model to start from (a size, see above)",
    )
    parser.add_argument(
        "--laws",
        help="fit.json of `eformer scale fit`: its joint L(N, P) decides data "
        "vs model at a stall; with --diasl.growth laws its L(P, steps) decides "
        "when to grow",
    )
    add_dataclass_arguments(parser, "diasl", DiaSLConfig)


def _train_config(args: Any) -> Any:
    from asecalc.cli._fields import collect
    from asecalc.config import TrainConfig

    return TrainConfig.from_dict(collect(args, "train"))


def _sizes(text: str, args: Any) -> dict[str, dict[str, Any]]:
    from asecalc.cli._fields import collect
    from asecalc.training.scale import parse_sizes

    return parse_sizes(text, collect(args, "model"))


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from err


def _sweep(args: Any) -> dict[str, Any]:
    from asecalc.training.scale import SweepRequest, run_sweep

    return run_sweep(
        SweepRequest(
            data=args.data,
            output_dir=args.output_dir,
            sizes=_sizes(args.sizes, args),
            data_fractions=_floats(args.data_fractions),
            budget_flops=args.budget_flops,
            select=args.select,
            val_fraction=args.val_fraction,
            train=_train_config(args),
            n_evals=args.n_evals,
            flops_batches=args.flops_batches,
            seed=args.seed,
        )
    )


def _fit(args: Any) -> dict[str, Any]:
    from asecalc.training.scale import fit_sweep

    report = fit_sweep(
        args.sweep_dir,
        args.metric,
        args.bootstrap,
        not args.no_plots,
        _floats(args.budgets) if args.budgets else None,
    )
    for name, fit in report["fits"].items():
        logger.info("L(%s): %s  ci95 %s", name, fit["params"], fit["ci95"])
    for choice in report.get("size_choice", []):
        logger.info(
            "at %.3g FLOPs L(P, steps) predicts %s: train %s",
            choice["budget_flops"],
            {k: round(v, 4) for k, v in choice["predicted"].items()},
            choice["best"],
        )
    return report


def _adaptive_request(args: Any) -> Any:
    from asecalc.cli._fields import collect
    from asecalc.training.adaptive import AdaptiveRequest
    from asecalc.training.diasl import DiaSLConfig

    (start,) = _sizes(args.start_size, args).values()
    return AdaptiveRequest(
        data=args.data,
        output_dir=args.output_dir,
        budget_flops=args.budget_flops,
        start_size=start,
        select=args.select,
        val_fraction=args.val_fraction,
        seed=args.seed,
        train=_train_config(args),
        diasl=DiaSLConfig(
            **{"flops_batches": args.flops_batches, **collect(args, "diasl")}
        ),
        laws=args.laws,
    )


def _adaptive(args: Any) -> dict[str, Any]:
    from asecalc.training.adaptive import run_adaptive

    summary = run_adaptive(_adaptive_request(args))
    for d in summary["decisions"]:
        logger.info(
            "step %d, %.3g FLOPs: %s (%s)",
            d["step"],
            d["flops"],
            d.get("action"),
            d["reason"],
        )
    return {k: v for k, v in summary.items() if k != "curve"}


def _compare(args: Any) -> dict[str, Any]:
    from asecalc.training.adaptive import compare_adaptive

    summary = compare_adaptive(
        args.data,
        args.output_dir,
        args.budget_flops,
        _sizes(args.fixed_sizes, args),
        _adaptive_request(args),
        _train_config(args),
        args.select,
        args.val_fraction,
        args.seed,
        args.flops_batches,
        args.test,
        args.test_select,
    )
    logger.info(
        "best fixed %s: %.4g meV/Å; adaptive: %.4g meV/Å",
        summary["best_fixed"]["label"],
        summary["best_fixed"]["forces_mae_meV_per_A"],
        summary["adaptive"]["forces_mae_meV_per_A"],
    )
    return summary
