"""The results folder of a run: made, held by one run at a time, and not left half-made.

A run holds an exclusive ``flock`` on ``run.lock`` in its folder for its whole life, so a
second ``odebench run -o DIR`` or ``--resume DIR`` at the same time stops at once (exit
status 2) naming the folder and the run that holds it (pid, host, start time, as that
run wrote them into the lock file). The kernel drops a flock when its process ends,
however it ends, so a killed run never leaves a stale lock behind.

``fcntl`` directly rather than the ``filelock`` package: filelock truncates the lock
file whenever it *tries* the lock, which would erase the holder's name before the
second run could read it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import warnings
from pathlib import Path

from .._results import RECORDS_JOURNAL, RECORDS_PARQUET, ResultsError, ResultsWarning

LOCK_FILE = "run.lock"


def cannot(action: str, path: Path, exc: OSError) -> ResultsError:
    """The one-line error for a file or folder that cannot be made or written."""
    return ResultsError(f"cannot {action} {path}: {exc.strerror or exc}")


def _holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started_at']}"
    except (OSError, ValueError, TypeError, KeyError):
        return "holder unknown"  # it took the lock a moment ago and has not written its name yet


class ResultsFolder:
    """``with ResultsFolder(path, fresh=...)``: the folder, made where needed and locked.

    ``fresh``: a new run (``-o``): the folder may exist but must hold no results yet;
    otherwise (``--resume``) it must exist. When the block fails before anything but
    the lock file is in a folder it made, the folder is removed again.
    """

    def __init__(self, path: Path, *, fresh: bool):
        self.path = Path(path)
        self.fresh = fresh
        self._made: Path | None = None  # the topmost folder this run made
        self._fd: int | None = None

    def __enter__(self) -> ResultsFolder:
        self._make()
        try:
            self._lock()
            if self.fresh and any((self.path / f).exists() for f in (RECORDS_JOURNAL, RECORDS_PARQUET)):
                raise ResultsError(f"{self.path} already holds results; use --resume {self.path} to continue it, "
                                   "or another -o")  # fmt: skip
        except BaseException:
            self._release(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._release(failed=exc_type is not None)

    def _make(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ResultsError(f"cannot use {self.path} as the results folder: it is a file")
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cannot("make the results folder", self.path, exc) from exc
        self._made = missing[-1] if missing else None

    def _lock(self) -> None:
        lock = self.path / LOCK_FILE
        try:
            self._fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise cannot("write", lock, exc) from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _holder(self._fd)
            raise ResultsError(f"{self.path} is in use by another run ({other}); wait for it to end, "
                               "or choose another folder") from None  # fmt: skip
        except OSError as exc:  # a file system without locks: run, but unguarded
            warnings.warn(f"cannot lock {lock} ({exc.strerror}); a second run could write into this folder too",
                          ResultsWarning, stacklevel=3)  # fmt: skip
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(holder).encode("utf-8"), 0)
        except OSError as exc:
            raise cannot("write", lock, exc) from exc

    def _release(self, failed: bool) -> None:
        if failed and self._made is not None:
            self._remove_made()
        if self._fd is not None:
            os.close(self._fd)  # the lock goes with the descriptor
            self._fd = None

    def _remove_made(self) -> None:
        """Remove the folders this run made, unless something besides the lock is in them."""
        with contextlib.suppress(OSError):
            if set(os.listdir(self.path)) <= {LOCK_FILE}:
                (self.path / LOCK_FILE).unlink(missing_ok=True)
                for folder in (self.path, *self.path.parents):
                    folder.rmdir()
                    if folder == self._made:
                        break
