"""glibc's heap set for a long-running app: a fixed mmap threshold.

glibc serves a block above its mmap threshold (128 KiB at start) with a mapping of its own, but
each time such a block is freed it raises the threshold to that block's size (up to 32 MiB), so
from then on blocks of that size come from the heap. The app allocates and frees large buffers of
many sizes every frame (numpy arrays, vertex data, textures, frames); from the heap, they
fragment it: in a 10-minute run its main arena grew ~22 MiB while the bytes in use stayed flat,
and the app's resident memory with it (docs/RELIABILITY.md, soak). Setting the threshold
(``mallopt(M_MMAP_THRESHOLD)``) fixes it at 128 KiB and turns that adjustment off: large blocks
are mapped and given back whole. Only the app does this; the probe never touches the trainer's
allocator.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD = 128 * 1024
_USER_SETTING = "MALLOC_MMAP_THRESHOLD_"  # glibc's own environment variable


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold for this process at ``threshold`` bytes. False, changing
    nothing, off glibc (macOS, Windows, musl) or where the user set ``MALLOC_MMAP_THRESHOLD_``."""
    if not sys.platform.startswith("linux") or _USER_SETTING in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
