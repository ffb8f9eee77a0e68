"""``eformer merge``: combine labelled ase.db files, each frame once."""

from __future__ import annotations

from typing import Any


def parse_pair(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value) with value as int, float or str."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError(f"--set expects KEY=VALUE (KEY an identifier), got {text!r}")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


class CLICommand:
    """Copy the labelled rows of several ase.db files into one, once per frame uid.

    Rows keep their labels (energy, forces, stress), key-value pairs and data.
    A frame whose uid is already in DESTINATION is skipped, so merging again (or
    after a kill) copies only what is missing. Rows without a uid (databases not
    made by eformer) are identified by their geometry.

    Examples:
      eformer merge data/all.db run1.db run2.db
      eformer merge data/all.db water64.db --set recipe=liquid-water-64
    """

    @staticmethod
    def add_arguments(parser: Any) -> None:
        parser.add_argument("destination", help="ase.db file to add to (created)")
        parser.add_argument("sources", nargs="+", help="ase.db files to copy from")
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="key-value pair to set on every copied row (repeatable)",
        )
        parser.add_argument(
            "--select", help="ase.db query: copy only matching rows (e.g. 'recipe=g2')"
        )
        parser.add_argument("--json", action="store_true", help="print a JSON summary")

    @staticmethod
    def run(args: Any) -> int:
        from dataclasses import asdict

        from asecalc.cli._common import print_json
        from asecalc.training.dbtools import merge_databases

        extra = dict(parse_pair(text) for text in args.set)
        summary = merge_databases(
            args.destination, args.sources, extra=extra, select=args.select
        )
        if args.json:
            print_json(asdict(summary))
            return 0
        for path, written in summary.written.items():
            skipped = summary.skipped[path]
            print(f"{path}: {written} new rows, {skipped} already present")
        print(f"{summary.destination}: {summary.total_rows} rows")
        return 0
