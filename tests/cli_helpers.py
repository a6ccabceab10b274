"""Running the odebench command line from tests: in-process and as a subprocess.

``odebench.cli`` imports every command module to build its parser. In a checkout
where some command (say ``run``) is not there yet, the helpers leave out the commands
whose module cannot be found; with all of them present they run the real thing.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]

_SHIM = """
import importlib.util, sys
from odebench import cli

def found(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False

cli.COMMANDS = {k: v for k, v in cli.COMMANDS.items() if found(v[0])}
sys.exit(cli.main(sys.argv[1:]))
"""


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _available() -> dict:
    from odebench import cli

    return {name: spec for name, spec in cli.COMMANDS.items() if _found(spec[0])}


def odebench(*argv: object) -> int:
    """``odebench ARGV...`` through :func:`odebench.cli.main`; returns the exit status."""
    from odebench import cli

    with mock.patch.dict(cli.COMMANDS, _available(), clear=True):
        return cli.main([str(a) for a in argv])


def odebench_subprocess(*argv: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m odebench ARGV...`` in a fresh interpreter (text output captured)."""
    from odebench import cli

    if len(_available()) == len(cli.COMMANDS):
        command = [sys.executable, "-m", "odebench"]
    else:
        command = [sys.executable, "-c", _SHIM]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        command + [str(a) for a in argv], capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=120
    )


def parse(argv: list[str]):
    """The parsed arguments of ``odebench ARGV...`` (argparse exits 2 on bad ones)."""
    from odebench import cli

    with mock.patch.dict(cli.COMMANDS, _available(), clear=True):
        return cli.build_parser().parse_args(argv)
