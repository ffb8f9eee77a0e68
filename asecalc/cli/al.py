"""``eformer al``: see ``CLICommand``."""

from __future__ import annotations

from typing import Any


class CLICommand:
    """Active learning with uncertainty: explore, select, label, retrain.

    Each round trains a model (an ensemble of K, or MC dropout) on every label
    so far, measures force errors and uncertainty calibration on the labelled
    validation split (and --test), explores with MD over temperatures and
    metadynamics on CVs (stopping a trajectory when the force σ exceeds
    --sigma-stop), selects --per-round frames by uncertainty + diversity (or
    at random: --strategy random, the baseline), labels them with the
    reference calculator in parallel and writes each label to labels.db at
    once. Stops after --rounds, when --label-budget is spent, or when the
    largest σ on exploration is below --sigma-converged (eV/Å).

    Resumable: run the same command again after a crash or kill; nothing is
    labelled twice (al_state.json is written after every phase). --fork-from
    starts a run from another run's labels and model at a round, to compare
    settings from the same start.

    Examples:
      eformer al seed.db --reference xtb --explore md:300,600,900 \\
          --explore metad:torsion:4,6,8,14 --per-round 50 --rounds 10 \\
          --ensemble 4 --output-dir al1
      eformer al seed.db --reference mypkg.dft:MyCalculator --output-dir al2
      eformer al seed.db --strategy random --test test.db --output-dir rnd
      eformer al seed.db --strategy random --fork-from al1 --fork-round 0 \\
          --output-dir al1-random
    Exploration specs: 'md:T1,T2,...' (K), 'metad:CV[+CV...][@T]' with the CV
    shorthands of `eformer metad` (0-based atoms, e.g. 'torsion:4,6,8,14').
    Any TrainConfig / ModelConfig field is a flag: --train.max-steps 500.
    """

    @staticmethod
    def add_arguments(parser: Any) -> None:
        from asecalc.cli._fields import add_dataclass_arguments
        from asecalc.config import ModelConfig, TrainConfig

        add = parser.add_argument
        add("seed", help="seed structures: ase.db or any ase.io file (labelled or not)")
        add(
            "--reference",
            default="xtb",
            help="labelling calculator: xtb, emt, lj or module:Class (any ASE "
            "calculator)",
        )
        add(
            "--explore",
            action="append",
            default=[],
            metavar="SPEC",
            help="exploration, repeatable: md:300,600,900 or "
            "metad:torsion:4,6,8,14[@T]",
        )
        add("--per-round", type=int, default=50, help="labels per round")
        add("--rounds", type=int, default=10, help="label rounds")
        add(
            "--label-budget",
            type=int,
            default=None,
            help="maximum new labels (default per-round x rounds)",
        )
        add("--ensemble", type=int, default=4, help="ensemble members K")
        add("--uncertainty", choices=("ensemble", "dropout"), default="ensemble")
        add("--dropout-samples", type=int, default=8, help="MC-dropout passes")
        add(
            "--strategy",
            choices=("uncertainty", "random"),
            default="uncertainty",
            help="selection: uncertainty + diversity (FPS) or random (baseline)",
        )
        add(
            "--sigma-stop",
            type=float,
            default=1.0,
            help="stop a trajectory when max per-atom force σ exceeds this (eV/Å)",
        )
        add(
            "--sigma-converged",
            type=float,
            default=0.05,
            help="stop the loop when max σ on exploration is below this (eV/Å)",
        )
        add(
            "--md-steps",
            type=int,
            default=2000,
            help="steps per exploration trajectory",
        )
        add("--interval", type=int, default=20, help="steps between candidate frames")
        add(
            "--explore-driver",
            choices=("first", "mean"),
            default="first",
            help="first: member 1 drives, σ every --interval steps (DP-GEN style, "
            "cheap); mean: the ensemble mean drives, σ at every step (K× cost)",
        )
        add("--timestep-fs", type=float, default=0.5, help="MD time step in fs")
        add(
            "--friction-per-fs",
            type=float,
            default=0.01,
            help="Langevin friction in 1/fs",
        )
        add(
            "--walkers",
            type=int,
            default=1,
            help="trajectories per method and temperature",
        )
        add("--metad-height", type=float, default=1.2, help="hill height in kJ/mol")
        add(
            "--metad-sigma",
            type=float,
            default=0.35,
            help="hill width in CV units (rad, nm)",
        )
        add("--metad-biasfactor", type=float, default=10.0)
        add("--metad-pace", type=int, default=50, help="steps between hills")
        add(
            "--retrain",
            action="store_true",
            help="train each round from scratch (default: fine-tune the last model)",
        )
        add(
            "--val-fraction",
            type=float,
            default=0.1,
            help="fraction of labels held out for validation and calibration",
        )
        add(
            "--test",
            help="held-out labelled test set (ase.db or extxyz) evaluated each round",
        )
        add("--preset", default="S", help="model size: S, M, L")
        add(
            "--pool-factor",
            type=float,
            default=3.0,
            help="FPS among the pool-factor x per-round most uncertain candidates",
        )
        add(
            "--attention-weight",
            type=float,
            default=0.0,
            help="weight of attention entropy in the acquisition score",
        )
        add(
            "--geometry-weight",
            type=float,
            default=0.0,
            help="weight of the short-distance outlier score in the acquisition",
        )
        add(
            "--density-weight",
            type=float,
            default=0.0,
            help="weight of the candidate's density in the descriptor space "
            "(information density: uncertain frames that stand for many others "
            "first; 1 weighs it like σ)",
        )
        add(
            "--sigma-window",
            default=None,
            metavar="LO,HI",
            help="trust window on a candidate's max force σ in eV/Å (DP-GEN "
            "f_trust_lo/hi): only candidates inside can be selected, by either "
            "strategy; 'LO,' for no upper limit; a bound pNN is that percentile "
            "of the round's candidates' σ (',p90': all but the top 10 %%) "
            "(default: all candidates)",
        )
        add(
            "--fps-descriptor",
            choices=("auto", "pooled", "atoms"),
            default="auto",
            help="descriptor for diversity (farthest-point sampling): the model's "
            "invariant features per atom, sorted within each element ('atoms'; "
            "needs one composition), or their mean and max over atoms ('pooled'); "
            "'auto' takes 'atoms' when all structures share one composition "
            "(default: auto)",
        )
        add(
            "--balance",
            choices=("none", "source"),
            default="none",
            help="'source': share each round's labels equally among the exploration "
            "trajectories (MD per temperature, metadynamics), each share picked by "
            "the strategy among its own candidates (default: none)",
        )
        add(
            "--workers",
            type=int,
            default=2,
            help="labelling processes (0: in this process)",
        )
        add(
            "--executor",
            default="process",
            help="labelling executor: process, thread, or dask[:SCHEDULER_ADDRESS]",
        )
        add("--threads", type=int, default=None, help="torch CPU threads")
        add(
            "--random-seed",
            type=int,
            default=0,
            help="seed of exploration and selection",
        )
        add("--output-dir", default="al-out", help="where everything goes")
        add(
            "--fork-from",
            metavar="RUN_DIR",
            help="start --output-dir as a copy of this run's labels and model up "
            "to --fork-round, then go on with this command's settings",
        )
        add(
            "--fork-round",
            type=int,
            default=None,
            help="round of --fork-from to branch after (default: its last "
            "evaluated round)",
        )
        add("--json", action="store_true", help="print the final report as JSON")
        add_dataclass_arguments(parser, "train", TrainConfig)
        add_dataclass_arguments(parser, "model", ModelConfig)

    @staticmethod
    def run(args: Any) -> int:
        import logging

        from asecalc.cli._common import print_json
        from asecalc.training.al import ActiveLearning

        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        log = logging.getLogger("eformer.al")
        if args.fork_from:
            from asecalc.training.al_fork import fork_run

            fork = fork_run(args.fork_from, args.output_dir, args.fork_round)
            log.info(
                "forked %s after round %d (%d labels)",
                fork["source"],
                fork["round"],
                fork["n_labels"],
            )
        elif args.fork_round is not None:
            raise ValueError("--fork-round needs --fork-from RUN_DIR")
        executor, close = _executor(args.executor, args.workers)
        try:
            report = ActiveLearning(config_from_args(args), executor=executor).run()
        finally:
            if close is not None:
                close()
        if args.json:
            print_json(report)
        else:
            log.info(
                "%s; %d labels; report in %s/al_report.json",
                report["stop_reason"],
                report["n_labels"],
                args.output_dir,
            )
        return 0


def config_from_args(args: Any) -> Any:
    """Build an :class:`~asecalc.training.al.ALConfig` from parsed arguments."""
    from ase import units

    from asecalc.cli._fields import collect
    from asecalc.config import TrainConfig
    from asecalc.training.al import ALConfig
    from asecalc.training.al_explore import ExploreSettings

    exploration = ExploreSettings(
        n_steps=args.md_steps,
        interval=args.interval,
        timestep=args.timestep_fs * units.fs,
        friction=args.friction_per_fs / units.fs,
        sigma_stop=args.sigma_stop,
        walkers=args.walkers,
        metad_height_kJmol=args.metad_height,
        metad_sigma=args.metad_sigma,
        metad_biasfactor=args.metad_biasfactor,
        metad_pace=args.metad_pace,
        driver=args.explore_driver,
    )
    return ALConfig(
        seed_data=args.seed,
        output_dir=args.output_dir,
        reference=args.reference,
        explore=tuple(args.explore or ["md:300,600,900"]),
        per_round=args.per_round,
        rounds=args.rounds,
        label_budget=args.label_budget,
        ensemble=args.ensemble,
        uncertainty=args.uncertainty,
        dropout_samples=args.dropout_samples,
        strategy=args.strategy,
        sigma_converged=args.sigma_converged,
        finetune=not args.retrain,
        val_fraction=args.val_fraction,
        test_data=args.test,
        preset=args.preset,
        model_overrides=collect(args, "model"),
        train=TrainConfig.from_dict(collect(args, "train")),
        exploration=exploration,
        pool_factor=args.pool_factor,
        weights=(args.attention_weight, args.geometry_weight, args.density_weight),
        sigma_window=parse_sigma_window(args.sigma_window),
        descriptor=args.fps_descriptor,
        balance=args.balance,
        workers=args.workers,
        seed=args.random_seed,
    )


def parse_sigma_window(text: str | None) -> tuple[Any, Any]:
    """``"0.05,0.3"`` -> (0.05, 0.3); ``"0.05,"`` -> (0.05, None); ``",p90"`` ->
    (0.0, "p90") (a percentile of the round's candidates' σ); None -> (0, None)."""
    from asecalc.training.al_select import check_sigma_window

    if text is None:
        return (0.0, None)
    parts = [part.strip() for part in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        lo: Any = parts[0] if parts[0].startswith("p") else float(parts[0] or 0.0)
        hi: Any = parts[1] if parts[1].startswith("p") else None
        if hi is None and parts[1]:
            hi = float(parts[1])
        check_sigma_window((lo, hi))
    except ValueError:
        raise ValueError(
            f"--sigma-window expects 'LO,HI', each in eV/Å or a percentile pNN of "
            f"the candidates' σ (e.g. 0.05,0.3 or 0.05, or ,p90), got {text!r}"
        ) from None
    return (lo, hi)


def _executor(kind: str, workers: int) -> tuple[Any, Any]:
    """An Executor for labelling and its shutdown function (None: the default pool)."""
    if kind == "process" or workers == 0:
        return None, None
    if kind == "thread":
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(workers)
        return pool, pool.shutdown
    if kind.startswith("dask"):
        try:
            from dask.distributed import Client
        except ImportError as err:
            raise ImportError(
                "--executor dask needs dask.distributed: "
                "pip install 'dask[distributed]'"
            ) from err
        address = kind.partition(":")[2] or None
        client = Client(address) if address else Client(n_workers=workers)
        return client.get_executor(), client.close
    raise ValueError(
        f"--executor must be process, thread or dask[:ADDRESS], got {kind!r}"
    )
