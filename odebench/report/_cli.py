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


def main(args: argparse.Namespace) -> int:
    from ._build import build_report

    output = build_report(args.runs, args.output, embed=not args.link_figures)
    print(output)
    return 0
