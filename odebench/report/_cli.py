"""``odebench report RUN... [-o reports/NAME]``."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="results folders (or records files) to report on")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help="report folder (default: reports/<name of the run folder>)",
    )
    parser.add_argument(
        "--link-figures",
        action="store_true",
        help="index.html links figures/*.png instead of embedding them (smaller, e.g. to commit)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that is not empty and holds no earlier report; "
        "only the report's own files are written, the others are left alone",
    )


def main(args: argparse.Namespace) -> int:
    from .._runs import read_run
    from ._build import build_report

    for run in args.runs:
        read_run(run, "RUN")  # like every reader: a run without records, or unreadable, is exit 2 naming the file
    output = build_report(args.runs, args.output, embed=not args.link_figures, force=args.force)
    print(output)
    return 0
