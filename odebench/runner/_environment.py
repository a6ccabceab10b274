"""What ``run.json`` says about the machine and software a run measured."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from typing import Any

from .._version import __version__

PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "scipy", "torchdiffeq", "torchode", "jax", "jaxlib", "diffrax",
            "equinox", "submitit", "matplotlib")  # fmt: skip


def _run(cmd: list[str], cwd: str | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(path: str | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the git checkout around ``path`` (the current directory)."""
    commit = _run(["git", "rev-parse", "HEAD"], cwd=path)
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path)
    return {"commit": commit, "dirty": bool(status)}


def cpu_info() -> dict[str, Any]:
    model = platform.processor() or None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": cores, "machine": platform.machine()}


def gpu_info() -> dict[str, Any] | None:
    """GPU name, driver and CUDA version from nvidia-smi (no torch import), or None."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if not out:
        return None
    first = [part.strip() for part in out.splitlines()[0].split(",")]
    header = _run(["nvidia-smi"]) or ""
    cuda = None
    if "CUDA Version:" in header:
        cuda = header.split("CUDA Version:", 1)[1].split()[0]
    return {"name": first[0], "driver": first[1] if len(first) > 1 else None,
            "memory": first[2] if len(first) > 2 else None, "count": len(out.splitlines()), "cuda": cuda}  # fmt: skip


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict[str, Any]:
    return {
        "odebench_version": __version__,
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "packages": package_versions(),
        "cpu": cpu_info(),
        "gpu": gpu_info(),
    }
