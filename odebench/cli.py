"""The ``odebench`` command line: one sub-command per module, imported on demand.

Each command module exposes ``configure(parser)`` (cheap: no torch or jax import)
and ``main(args) -> int`` (the exit status); only the command that runs is imported. :class:`odebench.UsageError` (or an
``OSError``: a file that cannot be read or written) raised anywhere becomes a one-line
message and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ._errors import UsageError
from ._version import __version__

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("odebench.runner._cli", "run a suite file and write a results folder"),
    "report": ("odebench.report._cli", "write report.md, index.html and figures from results folders"),
    "compare": ("odebench.compare", "side-by-side table of two runs"),
    "gate": ("odebench.gate._cli", "check a run against a baseline; exit 1 on regression"),
    "export": ("odebench.export", "export timings in pytest-benchmark's JSON layout"),
    "list": ("odebench.runner._list", "list problems or methods, with what is unavailable and why"),
    "history": ("odebench.history", "trends of each case's metrics across runs (commits), with the jumps named"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, only the command it names is configured (imported).

    Importing a command module only when that command runs keeps ``odebench gate``
    free of the runner's imports, and a broken optional command out of the others' way.
    """
    wanted = None if argv is None else next((a for a in argv if a in COMMANDS), "")
    parser = argparse.ArgumentParser(
        prog="odebench",
        description="How right, how fast and how big is the gradient of an ODE solve, for every way of computing it?",
    )
    parser.add_argument("--version", action="version", version=f"odebench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if wanted is None or name == wanted:
            importlib.import_module(module).configure(cmd)
        cmd.set_defaults(_module=module)
    return parser


def _one_line_warning(command: str, default):
    """``warnings.showwarning`` that prints results warnings as one ``odebench CMD: warning: ...`` line."""
    from ._results import ResultsWarning

    shown: set[str] = set()  # a file read twice (a check, then the work) warns once

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ResultsWarning):
            if str(message) not in shown:
                shown.add(str(message))
                print(f"odebench {command}: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command, warnings.showwarning)
            return int(importlib.import_module(args._module).main(args) or 0)
    except UsageError as exc:
        print(f"odebench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder that cannot be read or written is bad input too
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"odebench {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("odebench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
