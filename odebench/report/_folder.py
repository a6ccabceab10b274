"""The report folder: odebench replaces only the files it wrote there itself.

A report folder holds a manifest, ``.odebench-report.json``, listing the files the last
report wrote. A new report is drawn into a staging folder inside it, then moved in; files of
the old report that the new one does not write again are removed, and nothing else is ever
touched. A folder that is not empty and has no manifest belongs to someone else: it is
refused unless the caller forces it, and even then only the report's own file names are
written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .._errors import UsageError

MANIFEST = ".odebench-report.json"
STAGING_PREFIX = ".odebench-staging-"
FORMAT = 1


@dataclass(frozen=True)
class ReportFolder:
    """A folder claimed for a report; ``owned`` are the files (relative, POSIX) its last report wrote."""

    path: Path
    owned: frozenset[str]


def _checked_name(name: object, manifest: Path) -> str:
    """A manifest entry: a relative path inside the folder, not the manifest itself."""
    if not isinstance(name, str) or not name:
        raise UsageError(f"{manifest}: key files: expected relative file names; got {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or name == MANIFEST:
        raise UsageError(f"{manifest}: key files: {name!r} is not a file inside the report folder")
    return path.as_posix()


def read_manifest(folder: Path) -> frozenset[str] | None:
    """The files listed in ``folder``'s manifest; ``None`` where there is none."""
    manifest = folder / MANIFEST
    if not manifest.exists():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{manifest}: cannot read the report manifest: {exc}") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise UsageError(f"{manifest}: key files: expected a list of the files the report wrote")
    return frozenset(_checked_name(name, manifest) for name in files)


def claim(path: str | os.PathLike, *, force: bool = False) -> ReportFolder:
    """Check that a report may be written to ``path``; :class:`UsageError` if not.

    Allowed: a missing or empty folder, or one with a manifest (a report of odebench);
    with ``force``, any folder (its files that the report does not name stay).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"the report folder {path} is a file")
    owned = read_manifest(path) if path.is_dir() else frozenset()
    if owned is None:
        others = [p for p in path.iterdir() if not p.name.startswith(STAGING_PREFIX)]
        if others and not force:
            raise UsageError(
                f"{path} is not empty and holds no odebench report ({MANIFEST} is missing): "
                "give an empty or new folder, or --force to write the report's files there and leave the others"
            )
        owned = frozenset()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the report folder {path}: {exc.strerror or exc}") from exc
    if not os.access(path, os.W_OK):
        raise UsageError(f"the report folder {path} is not writable")
    return ReportFolder(path, owned)


@contextmanager
def staging(folder: ReportFolder) -> Iterator[Path]:
    """A fresh hidden folder inside the report folder to draw the report in; removed afterwards."""
    stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder.path))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _write_manifest(folder: Path, files: Sequence[str]) -> None:
    manifest = folder / MANIFEST
    temporary = manifest.with_name(manifest.name + ".tmp")
    text = json.dumps({"format": FORMAT, "written_by": "odebench report", "files": sorted(files)}, indent=1)
    temporary.write_text(text + "\n", encoding="utf-8")
    os.replace(temporary, manifest)


def publish(folder: ReportFolder, stage: Path, files: Sequence[str]) -> None:
    """Move ``files`` (relative to ``stage``) into the report folder and remove the old report's others.

    The manifest names old and new files until the move is done, so that an interrupted
    report leaves nothing that a later one would take for someone else's.
    """
    new = sorted({PurePosixPath(f).as_posix() for f in files})
    _write_manifest(folder.path, sorted(folder.owned | set(new)))
    for name in new:
        target = folder.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / name, target)
    for name in sorted(folder.owned - set(new)):
        stale = folder.path / name
        if stale.is_file() or stale.is_symlink():
            stale.unlink()
    _write_manifest(folder.path, new)
