"""``run_suite``: cases -> isolated workers -> records, written as they finish.

The results folder is this run's alone while it runs (:mod:`._folder`), and valid at
every moment: each finished case is appended to ``records.jsonl`` (flushed and synced)
and ``records.parquet`` is rewritten atomically (at most every couple of seconds, and at
the end). An interrupted run keeps every finished case, and ``resume`` runs only what is
missing, failed or timed out.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import json
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .._errors import UsageError
from .._records import Record
from .._results import (
    RECORDS_JOURNAL,
    RECORDS_PARQUET,
    RUN_INFO,
    ResultsError,
    append_journal,
    load_run_info,
    read_journal,
    replaced_atomically,
    write_parquet_atomic,
)
from ._folder import ResultsFolder, cannot
from ._suite import Case, Suite, load_suite, override_settings, resolve_factories

RERUN_STATUSES = ("failed", "timeout")
RESUME_KEYS = ("run_id", "started_at")  # what --resume carries over from run.json


@dataclass
class RunResult:
    """What a run produced: where, which records, and which expectations failed."""

    path: Path
    records: list[Record]
    expectation_failures: list[str] = field(default_factory=list)
    interrupted: bool = False
    #: wall seconds of this invocation's phases: ``references`` (local executor) and ``cases``
    phases: dict[str, float] = field(default_factory=dict)
    jobs: int = 1

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
        """Write ``run.json`` atomically (synced temporary file, then rename); nothing is left on failure."""
        target = self.path / RUN_INFO
        try:
            with replaced_atomically(target) as handle:
                handle.write(json.dumps(info, indent=2, default=str))
        except BaseException as exc:
            if isinstance(exc, OSError):
                raise cannot("write", target, exc) from exc
            raise


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


@runtime_checkable
class Executor(Protocol):
    """Where cases run: :class:`~._local.LocalExecutor` (worker processes here) or
    :class:`~._slurm.SubmititExecutor` (a Slurm job array)."""

    name: str
    phases: dict[str, float]  # wall seconds of the run's phases, filled in as they end

    def run(self, suite: Suite, cases: list[Case], run_id: str, path: Path) -> Iterator[tuple[Case, Record]]:
        """Yield ``(case, record)`` as cases finish; closing the iterator stops every worker."""
        ...


EXECUTORS = ("local", "submitit")


def make_executor(name: str, jobs: int = 1) -> Executor:
    """The executor called ``name`` (``--executor``), running up to ``jobs`` cases at once."""
    if name not in EXECUTORS:
        raise UsageError(f"--executor must be local or submitit, got {name!r}")
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if name == "local":
        from ._local import LocalExecutor

        return LocalExecutor(jobs)
    from ._slurm import SubmititExecutor

    return SubmititExecutor()


def run_suite(
    suite: Suite | str | Path,
    output: str | Path | None = None,
    *,
    only: str | None = None,
    resume: str | Path | None = None,
    jobs: int = 1,
    executor: str | Executor = "local",
    progress: bool | None = None,
    summary: bool = False,
    results_root: str | Path = "results",
    **settings_overrides: Any,
) -> RunResult:
    """Run a suite (a :class:`Suite` or a suite file) and write its results folder.

    Four steps: validate the input, prepare the results folder, execute the cases
    (records written as they finish), finish (expectations, summary).

    Args:
        output: the results folder (default ``results/<suite>-<UTC timestamp>``).
        only: run only the cases whose label matches this glob (or substring).
        resume: an earlier results folder: run only its missing, failed or timed-out cases.
        jobs: cases run at once (concurrent cases perturb each other's timings).
        executor: ``local`` (worker processes here), ``submitit`` (a Slurm job array), or
            an :class:`Executor` of your own.
        settings_overrides: ``dtype``, ``device``, ``repeats``, ... as in the suite's settings.
    """
    suite, cases, runner = _validate(suite, only, jobs, executor, settings_overrides)
    path = _folder_path(suite, output, resume, results_root)
    with ResultsFolder(path, fresh=resume is None):  # made where needed, and this run's alone until it ends
        store, info, todo = _prepare_folder(path, suite, cases, resume, runner, jobs)
        info["phases_s"] = runner.phases  # written with run.json when the run ends
        records = runner.run(suite, todo, info["run_id"], path)
        interrupted = _record(store, info, records, Progress(len(todo), progress))
    result = RunResult(path=path, records=store.ordered(), interrupted=interrupted, phases=runner.phases, jobs=jobs)
    return _finish_run(result, suite, only, summary)


def _validate(suite: Suite | str | Path, only: str | None, jobs: int, executor: str | Executor,
              overrides: dict[str, Any]) -> tuple[Suite, list[Case], Executor]:  # fmt: skip
    """The suite with its overrides, the selected cases (their factories imported) and the executor."""
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    if any(v is not None for v in overrides.values()):
        suite = override_settings(suite, **overrides)
    suite = _resolve_auto_device(suite)
    if not isinstance(executor, (str, Executor)):
        raise UsageError(f"executor must be local, submitit or an Executor, got {type(executor).__name__}")
    runner = make_executor(executor, jobs) if isinstance(executor, str) else executor
    cases = select(suite.cases(), only)
    resolve_factories(suite, cases)  # a suite is code: import only the factories of the cases that run
    return suite, cases, runner


def _folder_path(suite: Suite, output: str | Path | None, resume: str | Path | None, results_root: str | Path) -> Path:
    if resume is None:
        return Path(output) if output is not None else Path(results_root) / f"{suite.name}-{utc_stamp()}"
    path = Path(resume)
    if not path.is_dir():
        raise UsageError(f"--resume {resume}: no such results folder")
    if output is not None and Path(output).resolve() != path.resolve():
        raise UsageError("give either -o DIR or --resume DIR, not both with different folders")
    return path


def _prepare_folder(path: Path, suite: Suite, cases: list[Case], resume: str | Path | None, runner: Executor,
                    jobs: int) -> tuple[ResultsStore, dict[str, Any], list[Case]]:  # fmt: skip
    """The store (with a resumed run's records), ``run.json`` as written now, and the cases to run."""
    from ._environment import environment

    store = ResultsStore(path, [c.case_id for c in cases])
    previous_info: dict[str, Any] = {}
    if resume is not None:
        store.load_existing()
        previous_info = _previous_info(path)
        if previous_info.get("suite_hash") not in (None, suite.hash):
            print(f"odebench run: warning: the suite changed since {path} was started; "
                  "cases no longer in it are dropped from records.parquet", file=sys.stderr)  # fmt: skip
    todo = [c for c in cases if c.case_id not in store.records or store.records[c.case_id].status in RERUN_STATUSES]
    info = {
        "run_id": previous_info.get("run_id") or path.name,
        "suite": dict(suite.raw),
        "suite_file": suite.source,
        "suite_hash": suite.hash,
        **environment(),
        "started_at": previous_info.get("started_at", _utc_iso()),
        "resumed_at": [*previous_info.get("resumed_at", []), _utc_iso()] if resume is not None else [],
        "command": sys.argv,
        "jobs": jobs,
        "executor": runner.name,
        "n_cases": len(cases),
        "finished_at": None,
        "interrupted": False,
    }
    store.write_info(info)
    return store, info, todo


def _finish_run(result: RunResult, suite: Suite, only: str | None, summary: bool) -> RunResult:
    """Check the suite's expectations (unless interrupted) and print the summary if asked."""
    if not result.interrupted:
        from ._expect import check_expectations

        result.expectation_failures = check_expectations(suite.expect, result.frame(), subset=bool(only))
    if summary:
        from ._summary import print_summary

        print_summary(result, suite)
    return result


def _previous_info(path: Path) -> dict[str, Any]:
    """The ``run.json`` of a folder to resume (empty where there is none), checked."""
    if not (path / RUN_INFO).exists():
        return {}
    info = load_run_info(path)
    for key in RESUME_KEYS:
        if info.get(key) is None:
            raise ResultsError(f"{path / RUN_INFO}: key {key}: missing; it is not the run.json of an odebench run")
    return info


@contextlib.contextmanager
def _stopping_signals():
    """SIGTERM (a scheduler, a killed CI job) and SIGHUP (a closed terminal) end the run like Ctrl-C.

    A SIGHUP that is ignored (``nohup odebench run ...``) stays ignored.
    """

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None or (name == "SIGHUP" and signal.getsignal(signum) == signal.SIG_IGN):
            continue
        with contextlib.suppress(ValueError):  # not the main thread: the caller decides
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _record(store: ResultsStore, info: dict[str, Any], records, bar: Progress) -> bool:
    """Write each ``(case, record)`` as it arrives, then the table and ``run.json``.

    Returns whether the run was interrupted. On any other error, what finished is
    written as far as the folder allows (``run.json`` says ``interrupted``, so that
    ``--resume`` continues it) and the error goes on.
    """
    interrupted = False
    try:
        with _stopping_signals(), contextlib.closing(records):  # closing it kills the workers
            for case, record in records:
                store.add(record)
                bar.update(case, record)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        with contextlib.suppress(OSError, UsageError):
            _finish(store, info, interrupted=True)
        raise
    finally:
        bar.close()
    _finish(store, info, interrupted)
    return interrupted


def _finish(store: ResultsStore, info: dict[str, Any], interrupted: bool) -> None:
    store.flush()
    info.update(finished_at=_utc_iso(), interrupted=interrupted, n_records=len(store.ordered()))
    store.write_info(info)
