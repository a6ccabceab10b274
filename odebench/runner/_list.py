"""``odebench list problems|methods``: what exists, and what is unavailable here and why."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=("problems", "methods"))


def _methods() -> str:
    from ..backends import method_class, method_names

    lines = []
    for name in method_names():
        cls = method_class(name)
        missing = cls.missing_dependency()
        state = f"UNAVAILABLE: {missing}" if missing else "available"
        lines.append(f"{name}  [{state}]")
        lines.append(f"    {cls.description}")
        lines.append(f"    solvers: {', '.join(cls.solvers)}; devices: {', '.join(cls.devices)}")
        lines.append("    params:")
        lines += [f"      {key}={option.default!r}: {option.doc}" for key, option in cls.options.items()]
    return "\n".join(lines)


def _problems() -> str:
    from ..problems import list_problems

    lines = []
    for info in list_problems():
        kind = "analytic" if info.analytic else "tight"
        stiff = ", stiff" if info.stiff else ""
        lines.append(f"{info.name}  [reference: {kind}{stiff}; n_state={info.n_state}, n_params={info.n_params}]")
        lines.append(f"    {info.summary}")
        params = ", ".join(f"{k}={v!r}" for k, v in info.parameters.items())
        lines.append(f"    params: {params}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    print(_methods() if args.what == "methods" else _problems())
    return 0
