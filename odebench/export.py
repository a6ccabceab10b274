"""``odebench export RUN --format pytest-benchmark``: timings in pytest-benchmark's JSON layout.

The layout is the one ``pytest --benchmark-json`` writes (``machine_info``,
``commit_info``, ``benchmarks`` with ``stats``, ``datetime``, ``version``), so that
``pytest-benchmark compare`` and dashboards built for it read odebench runs. Only ok
cases with timing samples are exported; each sample is one round of one iteration.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMATS = ("pytest-benchmark",)
# The pytest-benchmark release whose layout this writes; `compare` reads it from 3.x on.
PYTEST_BENCHMARK_VERSION = "5.1.0"
# Recorded per benchmark in `extra_info`, next to the timings.
EXTRA_COLUMNS = (
    "case_id",
    "run_id",
    "backend",
    "solver",
    "nfe_forward",
    "nfe_backward",
    "grad_rel_err",
    "time_forward_s",
    "time_backward_s",
    "compile_time_s",
    "peak_memory_bytes",
    "memory_source",
)


def sample_stats(samples: Sequence[float]) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` of timing samples (seconds), its definitions exactly.

    Quartiles follow its Wikipedia methods 3 (odd count) and 2 (even count).
    """
    data = [float(x) for x in samples]
    if not data:
        raise ValueError("sample_stats needs at least one sample")
    ordered = sorted(data)
    n = len(data)
    mean = statistics.mean(data)
    stddev = statistics.stdev(data) if n > 1 else 0
    q1, q3 = _quartiles(ordered)
    iqr = q3 - q1
    low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    stddev_outliers = sum(1 for v in data if v < mean - stddev or v > mean + stddev)
    iqr_outliers = sum(1 for v in data if v < low or v > high)
    total = sum(data)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": n,
        "median": statistics.median(data),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": ordered[0] if n == 1 else ordered[bisect_left(ordered, low)],
        "hd15iqr": ordered[bisect_right(ordered, high) - 1],
        "ops": n / total if total else 0,
        "total": total,
        "data": data,
        "iterations": 1,
    }


def _quartiles(ordered: list[float]) -> tuple[float, float]:
    n = len(ordered)
    if n == 1:
        return ordered[0], ordered[0]
    if n % 2 == 0:
        return statistics.median(ordered[: n // 2]), statistics.median(ordered[n // 2 :])
    k, r = n // 4, n % 4
    if r == 1:
        return 0.25 * ordered[k - 1] + 0.75 * ordered[k], 0.75 * ordered[3 * k] + 0.25 * ordered[3 * k + 1]
    return 0.75 * ordered[k] + 0.25 * ordered[k + 1], 0.25 * ordered[3 * k + 1] + 0.75 * ordered[3 * k + 2]


def _benchmark(row: Mapping[str, Any]) -> dict[str, Any]:
    from ._cases import identity, method_label, params, problem_label, setting_label, value

    problem = problem_label(row)
    param = f"{problem}-{setting_label(row, sep='-')}"
    name = f"{method_label(row)}[{param}]"
    samples = value(row, "time_samples_s")
    return {
        # Grouped by problem and setting, so that `compare` ranks the methods of each.
        "group": f"{problem} {setting_label(row)}",
        "name": name,
        "fullname": f"{value(row, 'suite') or 'odebench'}::{name}",
        "params": identity(row) | {column: params(row, column) for column in ("problem_params", "method_params")},
        "param": param,
        "extra_info": {column: value(row, column) for column in EXTRA_COLUMNS},
        "options": {
            "disable_gc": False,
            "timer": "perf_counter",
            "min_rounds": len(samples),
            "max_time": None,
            "min_time": None,
            "precision": None,
            "warmup": False,
        },
        "stats": sample_stats(samples),
    }


def _machine_info(info: Mapping[str, Any]) -> dict[str, Any]:
    cpu = info.get("cpu") or {}
    python = str(info.get("python") or "")
    return {
        "node": "",
        "processor": cpu.get("model") or "",
        "machine": "",
        "python_compiler": "",
        "python_implementation": "CPython",
        "python_implementation_version": python,
        "python_version": python,
        "python_build": [],
        "release": "",
        "system": "",
        "cpu": {"brand_raw": cpu.get("model") or "", "count": cpu.get("cores")},
        "gpu": info.get("gpu"),
        "packages": info.get("packages") or {},
        "odebench_version": info.get("odebench_version"),
    }


def _commit_info(info: Mapping[str, Any]) -> dict[str, Any]:
    git = info.get("git") or {}
    suite = info.get("suite")
    return {
        "id": git.get("commit") or "unversioned",
        "time": None,
        "author_time": None,
        "dirty": bool(git.get("dirty")),
        "project": (suite.get("name") if isinstance(suite, dict) else suite) or "odebench",
        "branch": "(unknown)",
    }


def _timed(samples: Any) -> bool:
    return bool(samples) and all(math.isfinite(float(s)) for s in samples)


def to_pytest_benchmark(frame, run_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run as a pytest-benchmark JSON document (a dict); ``run_info`` is its run.json."""
    info = run_info or {}
    rows = [row for row in frame.to_dict("records") if row.get("status") == "ok" and _timed(row.get("time_samples_s"))]
    when = info.get("finished_at") or info.get("started_at") or datetime.now(UTC).isoformat()
    return {
        "machine_info": _machine_info(info),
        "commit_info": _commit_info(info),
        "benchmarks": [_benchmark(row) for row in rows],
        "datetime": when,
        "version": PYTEST_BENCHMARK_VERSION,
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="results folder or records file")
    parser.add_argument(
        "--format", default="pytest-benchmark", metavar="FORMAT", help=f"one of: {', '.join(FORMATS)} (default)"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def main(args: argparse.Namespace) -> int:
    from ._errors import UsageError
    from ._runs import read_run, read_run_info

    if args.format not in FORMATS:
        raise UsageError(f"unknown export format {args.format!r}; valid formats: {', '.join(FORMATS)}")
    frame = read_run(args.run, "RUN")
    document = to_pytest_benchmark(frame, read_run_info(args.run, "RUN"))
    text = json.dumps(document, indent=4, allow_nan=False, default=str) + "\n"
    exported, left_out = len(document["benchmarks"]), len(frame) - len(document["benchmarks"])
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        where = args.output
    else:
        sys.stdout.write(text)
        where = "standard output"
    note = f"; {left_out} cases not ok or without timing samples left out" if left_out else ""
    print(f"odebench export: {exported} benchmarks written to {where}{note}", file=sys.stderr)
    return 0
