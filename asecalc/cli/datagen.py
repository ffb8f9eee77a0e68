"""``eformer datagen``: build a labelled ase.db training set."""

from __future__ import annotations

from typing import Any


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"--temperatures expects comma-separated numbers in K, got {text!r}"
        ) from None


class CLICommand:
    """Sample and label structures with a reference method into an ase.db file.

    Structures come from files (any format ase.io reads) and/or built-in recipes
    (g2, g2-holdout, peptides, water-cluster, liquid-water, ice). Recipes are
    sampled by Langevin MD, normal-mode and random displacements at the given
    temperatures; files are labelled as they are. Labels (energy, forces, and
    stress for periodic cells) come from --reference (default GFN2-xTB via
    tblite) and are written as each worker task finishes: re-run the same
    command to resume a killed run without relabelling.

    Examples:
      eformer datagen --recipe g2 --recipe water-cluster --temperatures 300,600,1000 \\
          --n-per-structure 30 --workers 2 --output data.db
      eformer datagen structures.xyz --reference xtb --output labelled.db
    """

    @staticmethod
    def add_arguments(parser: Any) -> None:
        parser.add_argument(
            "structures", nargs="*", help="structure files to label as they are"
        )
        parser.add_argument(
            "--recipe",
            action="append",
            default=[],
            help="built-in structure recipe (repeatable; see --list-recipes), or "
            "smiles:SMILES for one molecule built with RDKit",
        )
        parser.add_argument(
            "--list-recipes", action="store_true", help="list the recipes and exit"
        )
        parser.add_argument(
            "--temperatures",
            default="300,600,1000",
            help="comma-separated sampling temperatures in K",
        )
        parser.add_argument(
            "--n-per-structure",
            type=int,
            default=20,
            help="frames per recipe structure (split over samplers and T)",
        )
        parser.add_argument(
            "--samplers",
            default=None,
            help="comma-separated override of the recipe samplers "
            "(md, normal-modes, random)",
        )
        parser.add_argument(
            "--md-interval", type=int, default=30, help="MD steps between stored frames"
        )
        parser.add_argument(
            "--equilibration-steps",
            type=int,
            default=100,
            help="MD steps before the first frame",
        )
        parser.add_argument(
            "--timestep-fs", type=float, default=0.5, help="MD time step in fs"
        )
        parser.add_argument(
            "--frames-per-task",
            type=int,
            default=10,
            help="frames per worker task (one MD trajectory each)",
        )
        parser.add_argument("--seed", type=int, default=0, help="master random seed")
        parser.add_argument(
            "--reference",
            default="xtb",
            help="labelling calculator: xtb (GFN2-xTB), emt, lj, module:Class",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=2,
            help="worker processes (0: run in this process)",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="stop scheduling new tasks once this many new frames are planned "
            "(whole tasks, so a few more may be labelled)",
        )
        parser.add_argument(
            "--retry-failed",
            action="store_true",
            help="retry frames listed in <output>.failures.jsonl",
        )
        parser.add_argument(
            "--output", default="datagen-out/data.db", help="ase.db file"
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="hide the progress bar"
        )
        parser.add_argument("--json", action="store_true", help="print a JSON summary")

    @staticmethod
    def run(args: Any) -> int:
        from dataclasses import asdict

        from ase import units

        from asecalc.cli._common import print_json
        from asecalc.training import datagen
        from asecalc.training.recipes import RECIPES

        if args.list_recipes:
            for name, recipe in RECIPES.items():
                print(
                    f"{name:15s} samplers={','.join(recipe.samplers)} "
                    f"max_T={recipe.max_temperature_K:g} K"
                )
            return 0
        if not args.structures and not args.recipe:
            raise ValueError(
                "give structure files and/or --recipe NAME (see --list-recipes)"
            )
        config = datagen.SamplingConfig(
            temperatures_K=_floats(args.temperatures),
            n_per_structure=args.n_per_structure,
            samplers=tuple(args.samplers.split(",")) if args.samplers else None,
            md_interval=args.md_interval,
            equilibration_steps=args.equilibration_steps,
            timestep=args.timestep_fs * units.fs,
            frames_per_task=args.frames_per_task,
            seed=args.seed,
        )
        tasks = datagen.plan_file_tasks(args.structures)
        tasks += datagen.plan_recipe_tasks(args.recipe, config) if args.recipe else []
        summary = datagen.label_database(
            args.output,
            tasks,
            reference=args.reference,
            workers=args.workers,
            limit=args.limit,
            retry_failed=args.retry_failed,
            progress=not args.no_progress,
        )
        if args.json:
            print_json(asdict(summary))
        else:
            print(
                f"{summary.output}: {summary.written} written, "
                f"{summary.skipped} already present, {summary.failed} failed, "
                f"{summary.not_run} not run (limit)"
            )
        return 1 if summary.failed and not summary.written else 0
