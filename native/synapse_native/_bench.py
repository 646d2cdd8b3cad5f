"""Pure-C measurements for the benchmarks under ``bench/``, run in this process."""

from __future__ import annotations

from ._lib import lib
from .errors import raise_for


def c_ring_seconds(record_size: int, records: int, capacity: int = 1 << 22) -> float:
    """Seconds for a C producer thread to push, and the calling thread to pop and check,
    ``records`` records of ``record_size`` bytes through a ring of ``capacity`` bytes."""
    ns = lib.syn_bench_ring(capacity, record_size, records)
    if ns < 0:
        raise_for(ns, "run the C ring benchmark")
    return float(ns) / 1e9


def c_pumps_seconds(payload: int, frames: int) -> float:
    """Seconds to move ``frames`` frames of ``payload`` payload bytes from a sender pump to a
    receiver pump over loopback TCP, with a C producer thread and a C consumer (this thread)."""
    ns = lib.syn_bench_pumps(payload, frames)
    if ns < 0:
        raise_for(ns, "run the C pump benchmark")
    return float(ns) / 1e9
