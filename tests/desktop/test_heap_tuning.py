"""The app fixes glibc's mmap threshold, so large blocks freed and allocated again every frame
are mapped and given back whole instead of fragmenting the heap (docs/RELIABILITY.md, soak)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from synapse_desktop.heap_tuning import fix_mmap_threshold

# Frees an 8 MiB block (glibc then raises its mmap threshold to 8 MiB), allocates 1 MiB and prints
# how many more blocks are mapped: 0 when the 1 MiB came from the heap, 1 when it was mapped.
PROBE = """
import ctypes, sys
from synapse_desktop.heap_tuning import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold()
big = bytearray(8 << 20)
del big
before = mallinfo2().hblks
block = bytearray(1 << 20)
print(mallinfo2().hblks - before)
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")


def mapped_blocks(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@glibc
def test_a_large_block_is_mapped_after_a_larger_one_was_freed() -> None:
    assert mapped_blocks("default") == 0  # glibc's own rule: the threshold followed the free
    assert mapped_blocks("fixed") == 1


def test_a_users_own_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False
