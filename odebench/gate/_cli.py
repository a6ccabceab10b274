"""``odebench gate RUN --baseline BASE [--rules RULES.yaml]``: exit 0 pass, 1 regression, 2 bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="results folder or records file of the run to check")
    parser.add_argument(
        "--baseline", required=True, metavar="BASE", help="results folder or records file to check against"
    )
    parser.add_argument("--rules", metavar="RULES.yaml", help="thresholds, per-case overrides and ignored cases")
    parser.add_argument(
        "--summary", metavar="FILE", help="also append the markdown report to FILE (e.g. $GITHUB_STEP_SUMMARY)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON to FILE")


def _describe(path: str, info: dict) -> str:
    from ._gate import cpu_model

    commit = (info.get("git") or {}).get("commit") or ""
    cpu = cpu_model(info) or ""
    gpu = info.get("gpu")
    gpu = gpu.get("name") if isinstance(gpu, dict) else gpu
    extras = ", ".join(x for x in (commit[:10] and f"commit {commit[:10]}", cpu, gpu or "") if x)
    return f"`{path}`" + (f" ({extras})" if extras else "")


def main(args: argparse.Namespace) -> int:
    from .._runs import read_run, read_run_info
    from . import cpu_model, gate, load_rules
    from ._rules import Rules

    rules = load_rules(args.rules) if args.rules else Rules()
    baseline = read_run(args.baseline, "baseline")
    run = read_run(args.run, "run")
    run_info, baseline_info = read_run_info(args.run, "run"), read_run_info(args.baseline, "baseline")
    result = gate(run, baseline, rules, run_cpu=cpu_model(run_info), baseline_cpu=cpu_model(baseline_info))
    context = [
        f"run: {_describe(args.run, run_info)}",
        f"baseline: {_describe(args.baseline, baseline_info)}",
        f"rules: {rules.source}",
    ]
    report = result.to_markdown(context)
    print(report)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as handle:
            handle.write(report)
    if args.json:
        data = dict(result.to_dict(), run=str(args.run), baseline=str(args.baseline), rules=rules.source)
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"odebench gate: {result.verdict}")
    return 0 if result.passed else 1
