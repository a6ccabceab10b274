"""Set-up of the worker server, imported before anything else is loaded into it.

glibc keeps freed memory of medium-sized blocks in its heap and reuses it unseen, so the
resident set of a process says little about its live memory. Fixing the mmap threshold
at 64 KiB makes every tensor of 64 KiB or more a mapping of its own, returned to the
system when freed: the resident-set peak of a job then tracks the live memory of its
computation (the same for every method, so the comparison stays fair).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 * 1024


def _set_mmap_threshold() -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


MMAP_THRESHOLD_SET = _set_mmap_threshold()
