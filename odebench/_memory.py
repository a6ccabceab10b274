"""Peak memory of one block of work, from the most precise source available.

- ``cuda``: the CUDA caching allocator's peak after a reset, minus what was allocated
  before the block (exact, deterministic).
- ``jax``: the device allocator's ``peak_bytes_in_use`` minus ``bytes_in_use`` before the
  block (JAX cannot reset its peak, so this needs a fresh process per case).
- ``rss``: the resident-set high-water mark of this process. On Linux the mark is reset
  to the current resident set by writing ``5`` to ``/proc/self/clear_refs``, so the
  block's own peak is measured even after earlier work; elsewhere a sampling thread
  watches the resident set. Only honest in a fresh process: memory freed earlier may
  still be held by the C allocator and reused without showing up.

Nothing here imports torch or jax; callers pass what they have.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass


def _status_bytes(key: str) -> int | None:
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return None


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return _status_bytes("VmHWM") is not None


def current_rss() -> int:
    value = _status_bytes("VmRSS")
    if value is not None:
        return value
    import psutil

    return int(psutil.Process().memory_info().rss)


class _Sampler(threading.Thread):
    """Polls the resident set where the kernel keeps no resettable high-water mark."""

    def __init__(self, interval: float = 0.001):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = current_rss()
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, current_rss())

    def stop(self) -> int:
        self._stop.set()
        self.join()
        return max(self.peak, current_rss())


@dataclass
class MemoryResult:
    peak_bytes: int
    source: str  # cuda | jax | rss


class MemoryProbe:
    """``with MemoryProbe(source, ...) as probe: work()``; then ``probe.result``.

    Args:
        source: ``rss``, ``cuda`` (pass the ``torch`` module and the device) or ``jax``
            (pass the jax device).
    """

    def __init__(self, source: str = "rss", *, torch=None, device=None):
        if source not in ("rss", "cuda", "jax"):
            raise ValueError(f"memory source must be rss, cuda or jax, got {source!r}")
        self.source = source
        self.torch = torch
        self.device = device
        self.result: MemoryResult | None = None

    def __enter__(self) -> MemoryProbe:
        if self.source == "cuda":
            self.torch.cuda.synchronize(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = self.torch.cuda.memory_allocated(self.device)
        elif self.source == "jax":
            stats = self.device.memory_stats() or {}
            self.baseline = int(stats.get("bytes_in_use", 0))
        else:
            self.sampler = None
            if not _reset_rss_peak():
                self.sampler = _Sampler()
                self.sampler.start()
            self.baseline = current_rss()
        return self

    def __exit__(self, *exc) -> None:
        if self.source == "cuda":
            self.torch.cuda.synchronize(self.device)
            peak = self.torch.cuda.max_memory_allocated(self.device)
        elif self.source == "jax":
            stats = self.device.memory_stats() or {}
            peak = int(stats.get("peak_bytes_in_use", self.baseline))
        elif self.sampler is not None:
            peak = self.sampler.stop()
        else:
            peak = _status_bytes("VmHWM") or current_rss()
        self.result = MemoryResult(peak_bytes=max(0, int(peak) - int(self.baseline)), source=self.source)


def jax_memory_source(device) -> str:
    """``jax`` where the device reports allocator statistics (GPUs), else ``rss``."""
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - backends differ in what they raise
        return "rss"
    return "jax" if stats and "peak_bytes_in_use" in stats else "rss"
