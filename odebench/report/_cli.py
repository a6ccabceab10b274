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


def main(args: argparse.Namespace) -> int:
    from ._build import build_report

    output = build_report(args.runs, args.output)
    print(output)
    return 0
