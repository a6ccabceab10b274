"""``run_suite``: cases -> isolated workers -> records, written as they finish.

The results folder is valid at every moment: each finished case is appended to
``records.jsonl`` (flushed and synced) and ``records.parquet`` is rewritten atomically
(at most every couple of seconds, and at the end). An interrupted run keeps every
finished case, and ``resume`` runs only what is missing, failed or timed out.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._errors import UsageError
from .._records import Record
from .._results import RECORDS_JOURNAL, RECORDS_PARQUET, RUN_INFO, append_journal, read_journal, write_parquet_atomic
from ._suite import Case, Suite, load_suite, override_settings

RERUN_STATUSES = ("failed", "timeout")


@dataclass
class RunResult:
    """What a run produced: where, which records, and which expectations failed."""

    path: Path
    records: list[Record]
    expectation_failures: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.expectation_failures else 0

    def frame(self):
        from .._results import records_to_frame

        return records_to_frame(self.records)


def utc_stamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _utc_iso() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ResultsStore:
    """The results folder of one run: the journal, the parquet table and run.json."""

    def __init__(self, path: Path, case_ids: Iterable[str]):
        self.path = path
        self.order = list(case_ids)
        self.records: dict[str, Record] = {}
        self._last_flush = 0.0

    def load_existing(self) -> list[Record]:
        journal = read_journal(self.path / RECORDS_JOURNAL)
        if not journal and (self.path / RECORDS_PARQUET).exists():
            from .._results import load_results

            journal = [Record.from_dict(row) for row in load_results(self.path).to_dict("records")]
        for record in journal:
            self.records[record.case_id] = record  # the latest record of a case wins
        return journal

    def add(self, record: Record) -> None:
        self.records[record.case_id] = record
        append_journal(record, self.path / RECORDS_JOURNAL)
        if time.monotonic() - self._last_flush > 2.0:
            self.flush()

    def ordered(self) -> list[Record]:
        """Records of this suite's cases, in suite order (stale ones from an older suite dropped)."""
        return [self.records[c] for c in self.order if c in self.records]

    def flush(self) -> None:
        write_parquet_atomic(self.ordered(), self.path / RECORDS_PARQUET)
        self._last_flush = time.monotonic()

    def write_info(self, info: dict[str, Any]) -> None:
        tmp = self.path / f".{RUN_INFO}.tmp"
        tmp.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
        tmp.replace(self.path / RUN_INFO)


def select(cases: list[Case], only: str | None) -> list[Case]:
    """``--only PATTERN``: a glob over case labels, or a substring when it has no wildcard."""
    if not only:
        return cases
    if any(ch in only for ch in "*?["):
        chosen = [c for c in cases if fnmatch.fnmatchcase(c.label, only)]
    else:
        chosen = [c for c in cases if only in c.label]
    if not chosen:
        raise UsageError(f"--only {only!r} matches none of the {len(cases)} cases (patterns match labels like "
                         f"{cases[0].label!r})")  # fmt: skip
    return chosen


def _resolve_auto_device(suite: Suite) -> Suite:
    if "auto" not in suite.settings.device:
        return suite
    try:
        import torch

        found = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        found = "cpu"
    devices = tuple(dict.fromkeys(found if d == "auto" else d for d in suite.settings.device))
    return replace(suite, settings=replace(suite.settings, device=devices))


def _preload(cases: list[Case]) -> tuple[str, ...]:
    from ._worker import BASE_PRELOAD

    extra = []
    names = {c.method.name.split(".")[0] for c in cases}
    if "torchdiffeq" in names:
        extra += ["torchdiffeq"]
    if "torchode" in names:
        extra += ["torchode"]
    if "diffrax" in names:
        extra += ["jax", "equinox", "diffrax"]
    import importlib.util

    return BASE_PRELOAD + tuple(m for m in extra if importlib.util.find_spec(m) is not None)


def _quick_unavailable(case: Case) -> str | None:
    """Unavailability known without a worker: a missing library, an unsupported solver."""
    from ..backends import make_method

    return make_method(case.method.name, case.method.params).unavailable_reason(case.device)


class Progress:
    """A progress bar on a terminal; one line per finished case otherwise (CI logs)."""

    def __init__(self, total: int, enabled: bool | None):
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.enabled = enabled if enabled is not None else True
        self.bar = None
        if self.enabled and self.tty and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="case", dynamic_ncols=True, file=sys.stderr)

    def update(self, case: Case, record: Record) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description_str(f"{case.problem.name} | {case.method.name}"[:60])
            self.bar.update(1)
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        err = f" err={record.grad_rel_err:.2e}" if record.grad_rel_err is not None else ""
        print(f"[{self.done}/{self.total} {elapsed:.0f}s eta {eta:.0f}s] {record.status}{err}  {case.label}",
              file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_suite(
    suite: Suite | str | Path,
    output: str | Path | None = None,
    *,
    only: str | None = None,
    resume: str | Path | None = None,
    jobs: int = 1,
    executor: str = "local",
    progress: bool | None = None,
    summary: bool = False,
    results_root: str | Path = "results",
    **settings_overrides: Any,
) -> RunResult:
    """Run a suite (a :class:`Suite` or a suite file) and write its results folder.

    Args:
        output: the results folder (default ``results/<suite>-<UTC timestamp>``).
        only: run only the cases whose label matches this glob (or substring).
        resume: an earlier results folder: run only its missing, failed or timed-out cases.
        jobs: cases run at once (concurrent cases perturb each other's timings).
        executor: ``local`` (worker processes here) or ``submitit`` (a Slurm job array).
        settings_overrides: ``dtype``, ``device``, ``repeats``, ... as in the suite's settings.
    """
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    if any(v is not None for v in settings_overrides.values()):
        suite = override_settings(suite, **settings_overrides)
    suite = _resolve_auto_device(suite)
    if executor not in ("local", "submitit"):
        raise UsageError(f"--executor must be local or submitit, got {executor!r}")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    cases = select(suite.cases(), only)

    if resume is not None:
        path = Path(resume)
        if not path.is_dir():
            raise UsageError(f"--resume {resume}: no such results folder")
        if output is not None and Path(output).resolve() != path.resolve():
            raise UsageError("give either -o DIR or --resume DIR, not both with different folders")
    else:
        path = Path(output) if output is not None else Path(results_root) / f"{suite.name}-{utc_stamp()}"
        if path.exists() and any((path / f).exists() for f in (RECORDS_JOURNAL, RECORDS_PARQUET)):
            raise UsageError(f"{path} already holds results; use --resume {path} to continue it, or another -o")
    path.mkdir(parents=True, exist_ok=True)

    store = ResultsStore(path, [c.case_id for c in cases])
    previous_info: dict[str, Any] = {}
    if resume is not None:
        store.load_existing()
        if (path / RUN_INFO).exists():
            previous_info = json.loads((path / RUN_INFO).read_text(encoding="utf-8"))
            if previous_info.get("suite_hash") not in (None, suite.hash):
                print(f"odebench run: warning: the suite changed since {path} was started; "
                      "cases no longer in it are dropped from records.parquet", file=sys.stderr)  # fmt: skip
    todo = [c for c in cases if c.case_id not in store.records or store.records[c.case_id].status in RERUN_STATUSES]
    run_id = previous_info.get("run_id") or path.name

    from ._environment import environment

    info = {
        "run_id": run_id,
        "suite": dict(suite.raw),
        "suite_file": suite.source,
        "suite_hash": suite.hash,
        **environment(),
        "started_at": previous_info.get("started_at", _utc_iso()),
        "resumed_at": [*previous_info.get("resumed_at", []), _utc_iso()] if resume is not None else [],
        "command": sys.argv,
        "jobs": jobs,
        "executor": executor,
        "n_cases": len(cases),
        "finished_at": None,
        "interrupted": False,
    }
    store.write_info(info)

    bar = Progress(len(todo), progress)
    interrupted = False
    previous_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # SIGTERM (a scheduler, a killed CI job) ends the run like Ctrl-C
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        pass
    try:
        execute = _execute_local if executor == "local" else _execute_submitit
        for case, record in execute(suite, todo, run_id, path, jobs):
            store.add(record)
            bar.update(case, record)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        try:
            signal.signal(signal.SIGTERM, previous_term)
        except ValueError:
            pass
        store.flush()
        info.update(finished_at=_utc_iso(), interrupted=interrupted, n_records=len(store.ordered()))
        store.write_info(info)

    result = RunResult(path=path, records=store.ordered(), interrupted=interrupted)
    if not interrupted:
        from ._expect import check_expectations

        result.expectation_failures = check_expectations(suite.expect, result.frame())
    if summary:
        from ._summary import print_summary

        print_summary(result, suite)
    return result


def _execute_local(suite: Suite, cases: list[Case], run_id: str, path: Path, jobs: int):
    """Reference gradients first (one isolated job per problem instance), then the cases."""
    from ._measure import base_record, compute_reference, finish, run_case
    from ._worker import ProcessPool

    settings = suite.settings
    ready: list[Case] = []
    for case in cases:
        reason = _quick_unavailable(case)
        if reason:
            yield case, finish({**base_record(case, run_id, suite.name), "status": "unavailable", "error": reason,
                                "repeats": settings.repeats}, time.perf_counter())  # fmt: skip
        else:
            ready.append(case)
    if not ready:
        return
    pool = ProcessPool(_preload(ready), jobs=jobs)
    try:
        problems = list(dict.fromkeys(c.problem for c in ready))
        ref_errors: dict[Any, str] = {}
        for result_key, result in _drain(pool, problems, lambda p: (compute_reference, (p.name, dict(p.params), settings.threads)),
                                         settings.reference_timeout_s, settings.memory_limit_mb):  # fmt: skip
            if not result.ok:
                ref_errors[result_key] = f"reference gradient: {result.error}"
        for case, result in _drain(pool, ready, lambda c: (run_case, (c, settings, run_id, suite.name)),
                                   settings.timeout_s, settings.memory_limit_mb,
                                   skip=lambda c: ref_errors.get(c.problem)):  # fmt: skip
            if result.ok:
                yield case, result.value
            else:
                fields = base_record(case, run_id, suite.name)
                fields.update(status=result.status, error=result.error, repeats=settings.repeats)
                yield case, finish(fields, time.perf_counter() - result.seconds)
    finally:
        pool.shutdown()


def _drain(pool, items: list, job: Callable, timeout_s: float, memory_limit_mb, skip: Callable | None = None):
    """Run one job per item on the pool, yielding ``(item, JobResult)`` as they finish."""
    from ._worker import JobResult

    pending = list(items)
    while pending or pool.running:
        while pending and pool.free:
            item = pending.pop(0)
            reason = skip(item) if skip else None
            if reason:
                yield item, JobResult(False, status="failed", error=reason)
                continue
            fn, args = job(item)
            pool.start(item, fn, args, timeout_s, memory_limit_mb)
        for item, result in pool.wait():
            yield item, result


def _execute_submitit(suite: Suite, cases: list[Case], run_id: str, path: Path, jobs: int):
    from ._slurm import execute_submitit

    yield from execute_submitit(suite, cases, run_id, path)
