"""No process outlives a run: not the worker server, not a hung worker, not what a case started.

The runs here hang on purpose (``fault_problems:spawns`` starts ``sleep 1000`` and then
sleeps itself), so whatever is still alive afterwards was left behind by the runner.
Every process of a run carries a marker in its environment, so that one that escaped
the process tree (reparented after its parent died) is found as well.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from odebench import load_run_info
from odebench.runner import parse_suite, run_suite

psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
MARKER = "ODEBENCH_TEST_PROCESSES"
HANGING = {"repeats": 1, "warmup": 0, "timeout_s": 600, "fd_check": False}


def _hanging_suite(tmp_path: Path, settings: dict = HANGING, pidfile: Path | None = None) -> dict:
    params = {"pidfile": str(pidfile)} if pidfile else {}
    return {"name": "hangs", "settings": settings, "problems": [{"name": "fault_problems:spawns", "params": params}],
            "methods": ["odebench.backprop"], "tolerances": [1e-3]}  # fmt: skip


def _alive(process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _marked(marker: str) -> list:
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.pid != os.getpid() and process.environ().get(MARKER) == marker:
                found.append(process)
    return found


def _survivors(tree: list, marker: str, within_s: float) -> list:
    """The processes of the run still alive after ``within_s`` seconds (empty: all gone)."""
    deadline = time.monotonic() + within_s
    while True:
        alive = {p.pid: p for p in [*tree, *(_marked(marker) if marker else [])] if _alive(p)}
        if not alive or time.monotonic() > deadline:
            return list(alive.values())
        time.sleep(0.1)


def _describe(processes: list) -> list[str]:
    described = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            described.append(f"{process.pid} {' '.join(process.cmdline())[:100]}")
    return described


class HangingRun:
    """``python -m odebench run`` on a case that has started a child process and hangs."""

    def __init__(self, tmp_path: Path):
        self.marker = uuid.uuid4().hex
        suite = tmp_path / "hangs.yaml"
        suite.write_text(yaml.safe_dump(_hanging_suite(tmp_path)))
        self.out = tmp_path / "run"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]))
        env[MARKER] = self.marker
        self.log = tmp_path / "stderr.txt"
        with open(self.log, "w") as stderr:
            self.proc = subprocess.Popen([sys.executable, "-m", "odebench", "run", str(suite), "-o", str(self.out),
                                          "--quiet"], stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=ROOT)  # fmt: skip
        self.tree: list = []

    def wait_until_hanging(self, timeout_s: float = 120) -> None:
        """Until the case's own child (``sleep``) exists; remembers the whole process tree."""
        main = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with contextlib.suppress(psutil.Error):
                descendants = main.children(recursive=True)
                if any(p.name() == "sleep" for p in descendants):
                    self.tree = [main, *descendants]
                    return
            time.sleep(0.1)
        raise AssertionError(f"the case never started its child process: {self.log.read_text()}")

    def cleanup(self) -> None:
        for process in [*self.tree, *_marked(self.marker)]:
            with contextlib.suppress(psutil.Error):
                process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@pytest.fixture
def hanging_run(tmp_path):
    run = HangingRun(tmp_path)
    try:
        yield run
    finally:
        run.cleanup()


def test_sigkill_of_the_run_leaves_no_process(hanging_run):
    hanging_run.wait_until_hanging()
    # main, the worker server, the worker and its sleep (and the resource tracker)
    assert len(hanging_run.tree) >= 4, _describe(hanging_run.tree)
    hanging_run.proc.kill()
    hanging_run.proc.wait(timeout=10)
    left = _survivors(hanging_run.tree, hanging_run.marker, within_s=5)
    assert not left, f"still alive 5 s after SIGKILL of the run: {_describe(left)}"


def test_sighup_ends_the_run_like_sigterm(hanging_run):
    hanging_run.wait_until_hanging()
    hanging_run.proc.send_signal(signal.SIGHUP)
    assert hanging_run.proc.wait(timeout=30) == 130, hanging_run.log.read_text()
    left = _survivors(hanging_run.tree, hanging_run.marker, within_s=5)
    assert not left, f"still alive 5 s after SIGHUP of the run: {_describe(left)}"
    info = load_run_info(hanging_run.out)
    assert info["interrupted"] is True and info["finished_at"]


def test_timeout_kills_what_the_case_started(tmp_path):
    pidfile = tmp_path / "child.pid"
    # The reference job may evaluate the vector field too (to fingerprint the problem):
    # then it is that job whose time runs out, through the very same path.
    suite = parse_suite(_hanging_suite(tmp_path, {**HANGING, "timeout_s": 4, "reference_timeout_s": 4}, pidfile))
    result = run_suite(suite, tmp_path / "run", progress=False)
    assert len(result.records) == 1 and "exceeded" in result.records[0].error, result.records[0].error
    assert pidfile.exists(), "the case timed out before it started its child process"
    child = int(pidfile.read_text())
    try:
        left = _survivors([psutil.Process(child)] if psutil.pid_exists(child) else [], "", within_s=5)
        assert not left, f"the case's child outlived its timeout: {_describe(left)}"
    finally:
        with contextlib.suppress(psutil.Error):
            psutil.Process(child).kill()


def test_an_ignored_sighup_stays_ignored():
    """``nohup odebench run ...`` asks for a run that a closed terminal does not stop."""
    from odebench.runner._run import _stopping_signals

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with _stopping_signals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
    finally:
        signal.signal(signal.SIGHUP, previous)


WATCHED = """
import os, subprocess, sys, threading, time
from odebench.runner._lifeline import _watch
os.setpgid(0, 0)
child = subprocess.Popen(["sleep", "1000"])
print(child.pid, flush=True)
threading.Thread(target=_watch, args=(int(sys.argv[1]),), daemon=True).start()
time.sleep(1000)
"""


def test_a_worker_ends_with_its_group_when_the_run_is_gone():
    """The way out without PR_SET_PDEATHSIG: the end of file of a pipe from the run."""
    read, write = os.pipe()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    worker = subprocess.Popen([sys.executable, "-c", WATCHED, str(read)], pass_fds=(read,), stdout=subprocess.PIPE,
                              text=True, env=env)  # fmt: skip
    os.close(read)
    child = psutil.Process(int(worker.stdout.readline()))
    try:
        assert _alive(child) and worker.poll() is None
        os.close(write)  # the run is gone
        assert worker.wait(timeout=10) == -signal.SIGKILL
        left = _survivors([child], "", within_s=5)
        assert not left, f"the job's child outlived the run: {_describe(left)}"
    finally:
        with contextlib.suppress(psutil.Error):
            child.kill()
        if worker.poll() is None:
            worker.kill()
