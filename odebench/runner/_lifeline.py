"""No process outlives its run.

A run is a tree of processes: the main process; the worker server it starts
(multiprocessing's fork server); one worker per job, forked from the server; and
whatever a job starts itself (a vector field that calls a program). When the main
process is killed outright (SIGKILL, the kernel's OOM killer) nothing of it may live on:

- the server asks the kernel for SIGTERM when the main process dies
  (``PR_SET_PDEATHSIG``, Linux), and on SIGTERM kills every worker's process group;
- each worker leads a process group of its own, so a timeout or a shutdown kills the
  job together with everything it started (:func:`kill_group`);
- each worker asks for SIGKILL when the server dies, and watches the main process
  through a pipe that reaches end of file when it is gone (the way out where there is
  no ``PR_SET_PDEATHSIG``; multiprocessing keeps that pipe, the parent sentinel).

Why the server ties itself to the main process and not only to the pipe it is given:
every worker holds a copy of the server's "main is alive" pipe, so the server waits for
its workers, and a hung worker would keep both alive forever.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int, parent: int) -> None:
    """Have the kernel send ``signum`` to this process when ``parent`` (its parent) ends.

    Linux only (elsewhere nothing is asked). The kernel sends the signal when the
    *thread* that started this process ends, which for the processes here is the main
    thread of the parent. If the parent has already gone, the signal is sent at once.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    # The parent may have died before the request was made: then no one will send it.
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)


def kill_group(pid: int) -> None:
    """SIGKILL the process group that the worker ``pid`` leads: the job and what it started.

    Nothing happens where there is no such group (the worker had not made it yet, and
    so had started nothing; the caller kills the worker itself as well).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# ---------------------------------------------------------------- the worker server


def _end_workers(signum, frame) -> None:
    """The server's SIGTERM: kill every worker with its group, then end at once."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children():
            kill_group(child.pid)
            with contextlib.suppress(psutil.Error):
                child.kill()
    os._exit(128 + signum)


def tie_server_to_run() -> None:
    """In the worker server: end it, and its workers with their groups, when the main process dies."""
    with contextlib.suppress(ImportError):
        import psutil  # noqa: F401 - loaded now, so that the handler does not wait for it
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _end_workers)
    die_with_parent(signal.SIGTERM, parent)


# ---------------------------------------------------------------- a worker


def _kill_own_group() -> None:
    if os.getpgrp() == os.getpid():  # never the group of the server (and the main process)
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    _kill_own_group()


def tie_worker_to_run() -> None:
    """In a worker, before its job: lead a process group, and end it when the run ends.

    A job starts with the server's signal handlers; SIGTERM is the default again here.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    die_with_parent(signal.SIGKILL, os.getppid())
    main = multiprocessing.parent_process()
    if main is not None:
        threading.Thread(target=_watch, args=(main.sentinel,), name="odebench-run-watch", daemon=True).start()
