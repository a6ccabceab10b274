"""The results folder: one run at a time, and bad folders are bad input (exit 2, one line, nothing left)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cli_helpers import odebench

from odebench import load_results
from odebench.runner._folder import LOCK_FILE, ResultsFolder

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
QUICK = {"repeats": 1, "warmup": 0, "timeout_s": 120, "fd_check": False}


def _suite(tmp_path: Path, problem: str = "fault_problems:good", tolerances=(1e-3,)) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"name": "folder", "settings": QUICK, "problems": [problem],
                                    "methods": ["odebench.backprop"], "tolerances": list(tolerances)}))  # fmt: skip
    return path


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*tmp*"))


# ---------------------------------------------------------------- one run at a time


def test_a_second_run_on_a_held_folder_exits_2_naming_the_holder(tmp_path, capsys):
    suite = _suite(tmp_path, "fault_problems:sleeps")
    out = tmp_path / "run"
    with open(tmp_path / "first.txt", "w") as log:
        first = subprocess.Popen([sys.executable, "-m", "odebench", "run", str(suite), "-o", str(out), "--quiet"],
                                 stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / "run.json").exists():  # written once the folder is held
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.txt").read_text()
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "odebench", "run", str(suite), "-o", str(out), "--quiet"],
                                capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60)  # fmt: skip
        assert second.returncode == 2, second.stderr
        line = second.stderr.strip()
        assert "\n" not in line and str(out) in line and f"pid {first.pid} on " in line, line
        assert odebench("run", suite, "--resume", out, "--quiet") == 2  # --resume takes the same lock
        assert f"pid {first.pid} on " in _one_error_line(capsys)
        assert first.poll() is None  # the holder goes on undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    # The kernel drops the lock of a killed run: no stale lock is left behind.
    with ResultsFolder(out, fresh=False):
        pass
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()


# ---------------------------------------------------------------- folders that cannot be written


def test_output_under_a_file_exits_2(tmp_path, capsys):
    suite = _suite(tmp_path)
    (tmp_path / "afile").write_text("")
    assert odebench("run", suite, "-o", tmp_path / "afile" / "run") == 2
    assert str(tmp_path / "afile" / "run") in _one_error_line(capsys)
    assert odebench("run", suite, "-o", tmp_path / "afile") == 2
    assert "it is a file" in _one_error_line(capsys)
    assert (tmp_path / "afile").read_text() == ""


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    """A folder nothing can be made in: by its mode, or (as root, whom modes do not stop)
    by the operating system refusing to create anything there."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return

    def refuse(path) -> None:
        if Path(os.fsdecode(path)).parent == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    real_mkdir, real_open = os.mkdir, os.open

    def mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and not Path(os.fsdecode(path)).exists():
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    yield folder


def test_read_only_folder_exits_2(tmp_path, read_only_dir, capsys):
    suite = _suite(tmp_path)
    assert odebench("run", suite, "-o", read_only_dir / "run") == 2  # cannot make the folder
    assert str(read_only_dir / "run") in _one_error_line(capsys)
    assert odebench("run", suite, "-o", read_only_dir) == 2  # cannot write into it
    assert str(read_only_dir / LOCK_FILE) in _one_error_line(capsys)
    assert list(read_only_dir.iterdir()) == []


def _disk_full(monkeypatch, folder: Path, after_journal_lines: int) -> None:
    """Every sync of a file under ``folder`` fails with ENOSPC once that many journal lines
    have been synced (a full disk shows at the latest when written data is synced)."""
    real_fsync = os.fsync
    folder = folder.resolve()
    journal = str(folder / "records.jsonl")
    synced = []

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.startswith(f"{folder}{os.sep}") and len(synced) >= after_journal_lines:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)
        if target == journal:
            synced.append(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_full_disk_at_the_start_exits_2_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "new" / "run"
    _disk_full(monkeypatch, tmp_path / "new", after_journal_lines=0)
    assert odebench("run", _suite(tmp_path), "-o", out, "--quiet") == 2
    line = _one_error_line(capsys)
    assert str(out / "run.json") in line and os.strerror(errno.ENOSPC) in line, line
    assert not (tmp_path / "new").exists()  # the folders it made are gone again


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_full_disk_mid_run_exits_2_and_keeps_what_finished(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _disk_full(monkeypatch, out, after_journal_lines=1)
    assert odebench("run", _suite(tmp_path, tolerances=(1e-3, 1e-4, 1e-5)), "-o", out, "--quiet") == 2
    line = _one_error_line(capsys)
    assert str(out) in line and os.strerror(errno.ENOSPC) in line, line
    assert _leftovers(out) == []
    monkeypatch.undo()
    kept = load_results(out)
    assert len(kept) >= 1 and set(kept["status"]) == {"ok"}  # the first case, journalled before the disk filled


# ---------------------------------------------------------------- --resume with a damaged run.json


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"started_at": "2026-01-01T00:00:00Z"}), "key run_id"),
        (
            json.dumps({"run_id": "r", "started_at": "2026-01-01T00:00:00Z", "resumed_at": "yesterday"}),
            "key resumed_at",
        ),
    ],
    ids=["invalid", "list", "missing-key", "wrong-type"],
)
def test_resume_with_a_damaged_run_json_exits_2(tmp_path, capsys, content, named):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(content)
    assert odebench("run", _suite(tmp_path), "--resume", out, "--quiet") == 2
    line = _one_error_line(capsys)
    assert str(out / "run.json") in line and named in line, line
    assert (out / "run.json").read_text() == content
