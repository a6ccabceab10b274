"""Every job in a process of its own, forked from a server that has imported torch.

Isolation makes a failing case data: an exception, a segfault or abort, an out-of-
memory kill or a hang in one job becomes that job's result (the timeout is enforced by
killing the job's process group: the worker and whatever it started), and the suite goes
on. Forking from a preloaded server (the ``forkserver`` start method) keeps start-up to
tens of milliseconds instead of a fresh ``import torch`` per case, and every job still
starts from the same small, clean heap, so its memory figure is its own. No worker
outlives the run, however the run ends (see :mod:`._lifeline`).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._lifeline import kill_group, tie_worker_to_run

# Modules every worker needs; the suite adds its libraries (jax, diffrax, ...).
# torch.fx.experimental.symbolic_shapes (and sympy with it) is imported lazily by the first
# torch.autograd.grad with several outputs: a second of start-up per case if not preloaded.
BASE_PRELOAD = ("odebench.runner._server", "numpy", "torch", "torch.fx.experimental.symbolic_shapes",
                "odebench.ode", "odebench.problems", "odebench.fd", "odebench.backends._odebench",
                "odebench.backends._fd", "odebench.runner._measure")  # fmt: skip


@dataclass
class JobResult:
    """What came back from one job: its value, or why there is none."""

    ok: bool
    value: Any = None
    status: str = ""  # for failures: failed | timeout
    error: str = ""
    seconds: float = 0.0


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def _limit_memory(limit_mb: int | None) -> None:
    """Cap the address space at the current size plus ``limit_mb``: allocations beyond
    it fail inside the job (a MemoryError) instead of inviting the kernel's OOM killer."""
    if not limit_mb:
        return
    import resource

    with open("/proc/self/statm", encoding="ascii") as handle:
        current = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = current + int(limit_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child(conn, fn: Callable[..., Any], args: tuple, memory_limit_mb: int | None) -> None:
    # The parent decides what an interrupt means; a job just runs.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tie_worker_to_run()
    # What came from the server (the preloaded libraries: about a million objects) is not
    # garbage; frozen, it is no longer walked by each gc.collect() of a timed repeat
    # (0.3 s apiece for torch alone, most of a small case's time).
    gc.freeze()
    try:
        _limit_memory(memory_limit_mb)
        value = fn(*args)
        message = ("ok", value)
    except MemoryError:
        message = ("error", f"out of memory (memory_limit_mb={memory_limit_mb})")
    except BaseException as exc:  # noqa: BLE001 - anything a job raises is its result
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
        message = ("error", f"{type(exc).__name__}: {exc}{where}")
    try:
        conn.send(message)
        conn.close()
    finally:
        # Skip interpreter teardown (atexit handlers, GC of large graphs): the result is sent.
        os._exit(0)


@contextlib.contextmanager
def _main_module_hidden():
    """Start a process without telling it the caller's ``__main__``.

    multiprocessing runs the main script again in every new process, so a script without
    an ``if __name__ == "__main__":`` guard would start its run again in each worker. Jobs
    never need it: their functions live in odebench, and problems given as objects travel
    by value.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {key: main.__dict__[key] for key in ("__file__", "__spec__") if key in main.__dict__}
    try:
        main.__dict__.pop("__file__", None)
        main.__dict__["__spec__"] = None
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


@dataclass
class Running:
    key: Any
    process: Any
    conn: Any
    started: float
    deadline: float
    timeout_s: float


class ProcessPool:
    """Runs jobs in isolated processes, at most ``jobs`` at a time, with per-job timeouts."""

    def __init__(self, preload: tuple[str, ...] = BASE_PRELOAD, jobs: int = 1):
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(list(preload))
        self.running: list[Running] = []

    @property
    def free(self) -> int:
        return self.jobs - len(self.running)

    def start(
        self, key: Any, fn: Callable[..., Any], args: tuple, timeout_s: float, memory_limit_mb: int | None = None
    ) -> None:
        receive, send = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(target=_child, args=(send, fn, args, memory_limit_mb), daemon=True)
        with _main_module_hidden():
            process.start()
        send.close()
        started = time.monotonic()
        self.running.append(Running(key, process, receive, started, started + timeout_s, timeout_s))

    def _collect(self, job: Running) -> JobResult:
        seconds = time.monotonic() - job.started
        message = None
        try:
            if job.conn.poll():
                message = job.conn.recv()
        except (EOFError, OSError):
            message = None
        job.process.join(timeout=5)
        self._end(job)
        if message is not None:
            kind, payload = message
            if kind == "ok":
                return JobResult(True, payload, seconds=seconds)
            return JobResult(False, status="failed", error=payload, seconds=seconds)
        code = job.process.exitcode
        if code is not None and code < 0:
            name = _signal_name(-code)
            hint = " (killed: out of memory?)" if name == "SIGKILL" else ""
            return JobResult(False, status="failed", error=f"worker died with {name}{hint}", seconds=seconds)
        return JobResult(
            False, status="failed", error=f"worker exited with status {code} without a result", seconds=seconds
        )

    def _end(self, job: Running) -> None:
        """Kill the job's worker, and its process group: what the job started ends with it."""
        kill_group(job.process.pid)
        if job.process.is_alive():
            job.process.kill()
        job.process.join()
        job.conn.close()

    def wait(self, poll_s: float = 0.2) -> list[tuple[Any, JobResult]]:
        """Block until at least one job finishes or times out (or ``poll_s`` passes)."""
        if not self.running:
            return []
        now = time.monotonic()
        timeout = max(0.0, min(min(j.deadline for j in self.running) - now, poll_s))
        ready = multiprocessing.connection.wait(
            [j.conn for j in self.running] + [j.process.sentinel for j in self.running], timeout
        )
        done = []
        now = time.monotonic()
        for job in list(self.running):
            if job.conn in ready or job.process.sentinel in ready:
                done.append((job.key, self._collect(job)))
                self.running.remove(job)
            elif now >= job.deadline:
                self._end(job)
                self.running.remove(job)
                result = JobResult(False, status="timeout", error=f"exceeded timeout_s={job.timeout_s:g} (worker killed)",
                                   seconds=now - job.started)  # fmt: skip
                done.append((job.key, result))
        return done

    def shutdown(self) -> None:
        """Kill whatever still runs (an interrupted suite)."""
        for job in self.running:
            self._end(job)
        self.running.clear()
