"""glibc's malloc told to keep the memory a stream processor frees and takes back at once.

Every batch allocates and frees the same large buffers (a read of 1 MiB, its lines joined, a
window's encoded rows), and the sinks' threads their own. With glibc's defaults the top of a heap
goes back to the kernel once 128 KiB of it is free (the main heap by brk, a thread's heap by
madvise), so the next batch faults every page in again: on 1 M Nexmark events, file -> file, about
a million minor page faults and as much system CPU as user CPU. A trim threshold of 64 MiB (as
much as a thread's heap can hold, so it is never shrunk) and a fixed mmap threshold of 4 MiB (below
it, from a heap; glibc's own moves up to 32 MiB as large blocks are freed) keep those pages: about
60 thousand faults (32 MiB kept the faults). Memory stays bounded: what is freed is reused, and at
most 64 MiB of a heap's top is kept unused.

Only where the C library is glibc (mallopt is a no-op or missing elsewhere), and a threshold set in
the environment (MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_, or glibc.malloc.* tunables) is
left as it was set.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 64 << 20
MMAP_THRESHOLD = 4 << 20


def keep_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds (see the module docstring); True when they were set."""
    if platform.libc_ver()[0] != "glibc" or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    done = True
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        done = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and done
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and done
    return done
