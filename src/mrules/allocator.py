"""Keep the C allocator from holding on to memory a long run has freed.

glibc's malloc gives a block of 128 KiB or more its own mapping, returned to
the system as soon as it is freed. But each time it frees such a block it
raises that threshold to the block's size (up to 32 MiB), and from then on
the big blocks of a run (dict tables, lists of a commit's rows, SQLite's
buffers) come from the heap instead, where the holes they leave are kept and
fragment it. Over a 2M-event run that is tens of megabytes of peak memory
that nothing uses (bench/README.md, "The allocator's threshold").
`pin_mmap_threshold` sets the threshold to glibc's own default, which also
switches the raising off (mallopt(3)). It changes where blocks come from, not
what the program computes. Only `mrules run` calls it: a library that changed
its host process's allocator would surprise whoever imports it.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["DEFAULT_MMAP_THRESHOLD", "pin_mmap_threshold"]

DEFAULT_MMAP_THRESHOLD = 128 * 1024  # glibc's starting value (mallopt(3))
_M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>


def pin_mmap_threshold(size: int = DEFAULT_MMAP_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold at `size` bytes; True if glibc took it.

    Does nothing (False) off Linux, where the C library has no `mallopt`, or when
    the user set `MALLOC_MMAP_THRESHOLD_` in the environment: their choice stands.
    musl has a `mallopt` that ignores its arguments and says so (False).
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, size))
