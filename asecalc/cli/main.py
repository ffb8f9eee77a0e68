"""Entry point of the ``eformer`` command.

Each subcommand lives in its own module ``asecalc.cli.<name>`` that defines a
``CLICommand`` class with a docstring (its help), ``add_arguments(parser)`` and
``run(args)``. Command modules import heavy packages (torch, phonopy, plumed)
inside ``run`` only, so ``eformer --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
from typing import Any

from asecalc._version import __version__

#: (subcommand, module) in the order ``--help`` lists them.
COMMANDS: list[tuple[str, str]] = [
    ("run", "asecalc.cli.run"),
    ("bench", "asecalc.cli.bench"),
    ("train", "asecalc.cli.train"),
    ("eval", "asecalc.cli.evaluate"),
    ("datagen", "asecalc.cli.datagen"),
    ("merge", "asecalc.cli.merge"),
    ("nve", "asecalc.cli.nve"),
    ("metad", "asecalc.cli.metad"),
    ("fes", "asecalc.cli.fes"),
    ("phonons", "asecalc.cli.phonons"),
    ("ti", "asecalc.cli.ti"),
    ("scale", "asecalc.cli.scale"),
    ("al", "asecalc.cli.al"),
]


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _available_commands() -> list[tuple[str, Any]]:
    found = []
    for name, module_name in COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # subcommand not written yet
                continue
            raise
        found.append((name, module.CLICommand))
    return found


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="eformer",
        description="eformer: E(3)-equivariant transformer potentials for ASE.",
    )
    parser.add_argument("--version", action="version", version=f"eformer {__version__}")
    parser.add_argument(
        "-T",
        "--traceback",
        action="store_true",
        help="show the full traceback on error",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in _available_commands():
        doc = inspect.cleandoc(command.__doc__ or "")
        short = doc.splitlines()[0] if doc else name
        p = sub.add_parser(
            name,
            help=short,
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``eformer``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "_command", None):
        parser.print_help()
        return 1
    try:
        result = args._command.run(args)
    except KeyboardInterrupt:
        print("eformer: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.traceback:
            raise
        print(
            f"eformer {args.command}: error: {type(err).__name__}: {err}",
            file=sys.stderr,
        )
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
