"""``odebench run SUITE.yaml``."""

from __future__ import annotations

import argparse

from ._suite import MAX_CASES


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="the suite file (YAML)")
    parser.add_argument("-o", "--output", help="results folder (default results/<suite>-<UTC timestamp>)")
    parser.add_argument("--only", metavar="PATTERN", help="run only cases whose label matches (glob, or substring)")
    parser.add_argument("--resume", metavar="DIR", help="continue DIR: run only its missing, failed or timed-out cases")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cases at once (default 1; concurrent cases perturb each other's timings)")  # fmt: skip
    parser.add_argument("--executor", choices=("local", "submitit"), default="local",
                        help="local worker processes, or a Slurm job array through submitit")  # fmt: skip
    parser.add_argument("--max-cases", type=int, default=MAX_CASES, metavar="N",
                        help=f"refuse a suite of more than N cases (default {MAX_CASES:,})")  # fmt: skip
    settings = parser.add_argument_group("settings (override the suite's)")
    settings.add_argument("--dtype", choices=("float32", "float64"))
    settings.add_argument("--device", choices=("cpu", "cuda", "auto"))
    settings.add_argument("--repeats", type=int)
    settings.add_argument("--warmup", type=int)
    settings.add_argument("--timeout", dest="timeout_s", type=float, metavar="SECONDS")
    settings.add_argument("--seed", type=int)
    settings.add_argument("--threads", type=int)
    settings.add_argument("--no-fd-check", dest="fd_check", action="store_const", const=False)
    slurm = parser.add_argument_group("submitit / Slurm (override settings.slurm)")
    slurm.add_argument("--partition")
    slurm.add_argument("--gpus-per-job", type=int)
    slurm.add_argument("--time-limit-min", type=int)
    slurm.add_argument("--array-parallelism", type=int)
    slurm.add_argument("--cases-per-job", type=int)
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def main(args: argparse.Namespace) -> int:
    from .._errors import UsageError
    from ._run import run_suite
    from ._suite import load_suite

    if args.max_cases < 1:
        raise UsageError(f"--max-cases must be at least 1, got {args.max_cases}")
    suite = load_suite(args.suite, max_cases=args.max_cases)
    slurm = {k: getattr(args, k) for k in ("partition", "gpus_per_job", "time_limit_min", "array_parallelism",
                                            "cases_per_job") if getattr(args, k) is not None}  # fmt: skip
    overrides = {
        k: getattr(args, k)
        for k in ("dtype", "device", "repeats", "warmup", "timeout_s", "seed", "threads", "fd_check")
    }
    if slurm:
        overrides["slurm"] = {**suite.settings.slurm, **slurm}
    result = run_suite(
        suite,
        args.output,
        only=args.only,
        resume=args.resume,
        jobs=args.jobs,
        executor=args.executor,
        progress=not args.quiet,
        summary=True,
        **overrides,
    )
    if result.interrupted:
        print(f"interrupted: finished cases are in {result.path}; continue with --resume {result.path}")
    return result.exit_code
