"""``--executor submitit``: the cases as a Slurm job array, gathered into one results folder.

Each array task runs a chunk of cases exactly as a local run does (every case in its
own worker process, with the timeout) and appends its records to a shard journal in
the results folder; this process follows the shards, so records arrive as cases
finish, and writes them into the run's own journal and table. A task that dies (a
node failure, Slurm's own time limit) turns its unfinished cases into ``failed``
records, which ``--resume`` runs again.

The cluster is Slurm where one is reachable; ``ODEBENCH_SUBMITIT_CLUSTER=local`` (or
``debug``) runs the very same code path through submitit's local executor, without
Slurm, as the tests do.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

from .._errors import UsageError
from .._records import Record
from .._results import append_journal, read_journal
from ._local import LocalExecutor
from ._measure import base_record, finish
from ._suite import Case, Suite

DEFAULT_CASES_PER_JOB = 8
POLL_S = 1.0


def run_shard(suite: Suite, cases: list[Case], run_id: str, shard: str) -> int:
    """The body of one array task: run the cases in isolated workers, journal each record."""
    count = 0
    # the task's phase seconds are not reported (the submitting run times the cases as a whole)
    for _, record in LocalExecutor(jobs=1).run(suite, cases, run_id, Path(shard).parent):
        append_journal(record, Path(shard))
        count += 1
    return count


def _executor(suite: Suite, path: Path):
    try:
        import submitit
    except ImportError:
        raise UsageError("--executor submitit needs submitit: pip install 'odebench[slurm]'") from None
    slurm = dict(suite.settings.slurm)
    folder = Path(slurm.get("folder") or path / "slurm")
    cluster = os.environ.get("ODEBENCH_SUBMITIT_CLUSTER") or None
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    cases_per_job = int(slurm.get("cases_per_job", DEFAULT_CASES_PER_JOB))
    # A task must outlive its cases: their timeouts plus references and start-up.
    minutes = slurm.get("time_limit_min") or math.ceil(
        # reference_timeout_s is set (never None) by Settings.__post_init__
        (cases_per_job * (suite.settings.timeout_s + 30) + cast(float, suite.settings.reference_timeout_s)) / 60
    )
    params = {"timeout_min": int(minutes), "name": f"odebench-{suite.name}"}
    if "array_parallelism" in slurm:
        params["slurm_array_parallelism"] = int(slurm["array_parallelism"])
    if executor.cluster == "slurm":
        for key, target in (("partition", "slurm_partition"), ("gpus_per_job", "slurm_gpus_per_task"),
                            ("cpus_per_task", "slurm_cpus_per_task"), ("mem_gb", "slurm_mem_gb")):  # fmt: skip
            if key in slurm:
                params[target] = slurm[key]
    else:
        for key, target in (("gpus_per_job", "gpus_per_node"), ("cpus_per_task", "cpus_per_task")):
            if key in slurm:
                params[target] = slurm[key]
    executor.update_parameters(**params)
    return executor, cases_per_job


class SubmititExecutor:
    """Runs cases as a Slurm job array (see the module); ``phases`` gets ``cases`` only,
    since each task computes its own references."""

    name = "submitit"

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    def run(self, suite: Suite, cases: list[Case], run_id: str, path: Path) -> Iterator[tuple[Case, Record]]:
        """Yield ``(case, record)`` as the array tasks finish cases."""
        started = time.perf_counter()
        try:
            yield from _follow(suite, cases, run_id, path)
        finally:
            self.phases["cases"] = time.perf_counter() - started


def _follow(suite: Suite, cases: list[Case], run_id: str, path: Path) -> Iterator[tuple[Case, Record]]:
    """Submit the array and follow its shard journals."""
    if not cases:
        return
    executor, per_job = _executor(suite, path)
    chunks = [cases[i : i + per_job] for i in range(0, len(cases), per_job)]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    shards_dir = path / "shards"
    shards_dir.mkdir(exist_ok=True)
    shards = [str(shards_dir / f"{stamp}-{i:04d}.jsonl") for i in range(len(chunks))]
    jobs = executor.map_array(run_shard, [suite] * len(chunks), chunks, [run_id] * len(chunks), shards)
    by_id = {c.case_id: c for c in cases}
    seen: set[str] = set()

    def new_records(shard: str) -> list[Record]:
        fresh = [r for r in read_journal(Path(shard)) if r.case_id not in seen and r.case_id in by_id]
        seen.update(r.case_id for r in fresh)
        return fresh

    pending = list(range(len(jobs)))
    try:
        while pending:
            for i in list(pending):
                for record in new_records(shards[i]):
                    yield by_id[record.case_id], record
                if jobs[i].done():
                    pending.remove(i)
                    for record in new_records(shards[i]):
                        yield by_id[record.case_id], record
                    error = None
                    try:
                        jobs[i].result()
                    except Exception as exc:  # noqa: BLE001 - a dead task is data for its cases
                        error = f"array task {jobs[i].job_id} failed: {type(exc).__name__}: {str(exc)[-500:]}"
                    for case in chunks[i]:
                        if case.case_id not in seen:
                            seen.add(case.case_id)
                            fields = base_record(case, run_id, suite.name)
                            fields.update(status="failed", error=error or f"array task {jobs[i].job_id} ended without this case",
                                          repeats=suite.settings.repeats)  # fmt: skip
                            yield case, finish(fields, time.perf_counter())
            if pending:
                time.sleep(POLL_S)
    except BaseException:  # an interrupt, or the caller closing this generator: the tasks end with the run
        for i in pending:
            try:
                jobs[i].cancel(check=False)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        raise
