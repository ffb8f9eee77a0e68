"""``eformer train``: see ``CLICommand``."""

from __future__ import annotations


class CLICommand:
    """Train a model on an ASE database (or extxyz) with energies and forces.

    Examples:
      eformer train data.db --select 'split=train' --preset small --output-dir run1
      eformer train data.db --init default --output-dir finetuned
      eformer train data.db --ensemble 4 --output-dir ens
      eformer train ... --output-dir run1 --resume
      torchrun --nproc-per-node 2 -m asecalc.cli.main train ...
    Any TrainConfig / ModelConfig field is a flag: --train.lr 1e-3, --model.n-layers 3.
    """

    @staticmethod
    def add_arguments(parser):
        from asecalc.cli._fields import add_dataclass_arguments
        from asecalc.config import ModelConfig, TrainConfig

        parser.add_argument(
            "data", nargs="+", help="ASE databases (.db) or files ase.io reads"
        )
        parser.add_argument("--select", help="ase.db query, e.g. 'split=train'")
        parser.add_argument(
            "--val-data",
            nargs="+",
            help="separate validation file (else a random split)",
        )
        parser.add_argument("--val-select", help="query for --val-data")
        parser.add_argument(
            "--val-fraction",
            type=float,
            default=None,
            help="validation fraction of a seeded random split (default 0.05)",
        )
        parser.add_argument(
            "--preset", default="S", help="model size: S/small, M/medium, L"
        )
        parser.add_argument(
            "--output-dir", default="train-out", help="where everything goes"
        )
        parser.add_argument(
            "--config", help="YAML/JSON with 'model' and 'train' sections"
        )
        parser.add_argument(
            "--ensemble", type=int, default=1, help="K members in one file"
        )
        parser.add_argument(
            "--bootstrap",
            action="store_true",
            help="ensemble members see bootstrap resamples",
        )
        parser.add_argument(
            "--init", help="start from 'default', a bundled name or a model file"
        )
        parser.add_argument(
            "--extend-elements",
            action="store_true",
            help="with --init: add elements the initial model lacks",
        )
        parser.add_argument(
            "--energy-only", action="store_true", help="allow rows without forces"
        )
        parser.add_argument(
            "--resume", action="store_true", help="continue from checkpoint.pt"
        )
        parser.add_argument(
            "--max-steps", type=int, help="shortcut for --train.max-steps"
        )
        parser.add_argument(
            "--time-budget",
            type=float,
            help="wall-time budget in minutes (shortcut for --train.max-time-s)",
        )
        parser.add_argument(
            "--max-structures", type=int, help="use only the first N structures"
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="no progress bar"
        )
        parser.add_argument(
            "--json", action="store_true", help="print the summary as JSON"
        )
        add_dataclass_arguments(parser, "train", TrainConfig)
        add_dataclass_arguments(parser, "model", ModelConfig)

    @staticmethod
    def run(args):
        from asecalc.cli._common import print_json
        from asecalc.training.run import train_model

        print_summary = print_json if args.json else _log_summary
        print_summary(_summary(train_model(request_from_args(args))))


#: ``max_steps`` when only a wall-time budget is given.
UNLIMITED_STEPS = 10**12


def request_from_args(args):
    """Build a TrainRequest from parsed ``eformer train`` arguments."""
    import torch.distributed as dist

    from asecalc.cli._fields import collect, load_config_file
    from asecalc.config import TrainConfig
    from asecalc.training.run import TrainRequest

    _init_distributed(dist)
    file_config = load_config_file(args.config)
    train = collect(args, "train", file_config.get("train"))
    if args.val_fraction is not None:
        train["val_fraction"] = args.val_fraction
    if args.max_steps is not None:
        train["max_steps"] = args.max_steps
    if args.time_budget is not None:
        train["max_time_s"] = 60.0 * args.time_budget
    if train.get("max_time_s", 0) > 0 and "max_steps" not in train:
        # a wall-time budget alone stops on time, not at the default step count
        train["max_steps"] = UNLIMITED_STEPS
    return TrainRequest(
        data=args.data,
        output_dir=args.output_dir,
        select=args.select,
        val_data=args.val_data,
        val_select=args.val_select,
        preset=args.preset,
        model_overrides=collect(args, "model", file_config.get("model")),
        train=TrainConfig.from_dict(train),
        ensemble=args.ensemble,
        bootstrap=args.bootstrap,
        init=args.init,
        extend_elements=args.extend_elements,
        energy_only=args.energy_only,
        resume=args.resume,
        progress=not args.no_progress,
        max_structures=args.max_structures,
    )


def _init_distributed(dist):
    import os

    if (
        "WORLD_SIZE" in os.environ
        and int(os.environ["WORLD_SIZE"]) > 1
        and not dist.is_initialized()
    ):
        import torch

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def _summary(result):
    return {k: v for k, v in result.items() if k != "members"} | {
        "best": [
            {k: v for k, v in m.items() if k.startswith("val_") or k == "step"}
            for m in result["members"]
        ]
    }


def _log_summary(summary):
    import logging

    logging.getLogger("eformer.train").info("model written to %s", summary["model"])
    for k, best in enumerate(summary["best"]):
        logging.getLogger("eformer.train").info("member %d: %s", k, best)
