"""Throughput of the record ring: pure C, through the Python wrapper, and queue.Queue.

For 64 B, 4 KiB and 64 KiB records, in one process and one run (the machine is noisy, so the
ratios between lines of the same run are what to read):

- C: a C producer thread pushes while a C consumer pops and checks each record
  (``syn_bench_ring``); no Python in the loop.
- wrapper: one Python thread pushes a batch of records with ``Ring.push`` (one C call per
  record) and takes them back with ``Ring.drain`` (one C call per batch), over and over.
- batched: the same, but the batch goes in with one ``Ring.push_many`` (one ``join``, a lengths
  array and one C call per batch), as a producer with a burst of records in hand would do.
- queue.Queue: the same pattern with ``put_nowait`` / ``get_nowait``, the usual Python baseline.

Run: ``python bench/bench_ring.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import queue
import time
from collections.abc import Callable

from synapse_native._bench import c_ring_seconds
from synapse_native.ring import Ring

SIZES = {"64 B": 64, "4 KiB": 4096, "64 KiB": 65536}
BATCH = 1024


def records_for(size: int, quick: bool) -> int:
    """About 64 MiB of data per measurement (at least 20,000 records), less with --quick."""
    total = max(20_000, (64 << 20) // size)
    return total // 8 if quick else total


def wrapper_seconds(size: int, records: int) -> float:
    record = bytes(size)
    batch = max(1, min(BATCH, (8 << 20) // (size + 8)))  # a batch fits the 16 MiB ring
    with Ring(1 << 24) as ring:
        push, drain = ring.push, ring.drain
        start = time.perf_counter()
        done = 0
        while done < records:
            n = min(batch, records - done)
            for _ in range(n):
                push(record)
            done += len(drain(n))
        return time.perf_counter() - start


def batched_seconds(size: int, records: int) -> float:
    record = bytes(size)
    batch = max(1, min(BATCH, (8 << 20) // (size + 8)))
    full = [record] * batch
    with Ring(1 << 24) as ring:
        push_many, drain = ring.push_many, ring.drain
        start = time.perf_counter()
        done = 0
        while done < records:
            n = min(batch, records - done)
            pushed = push_many(full if n == batch else full[:n])
            assert pushed == n  # the ring is drained after every batch
            done += len(drain(n))
        return time.perf_counter() - start


def queue_seconds(size: int, records: int) -> float:
    record = bytes(size)
    q: queue.Queue[bytes] = queue.Queue()
    put, get = q.put_nowait, q.get_nowait
    start = time.perf_counter()
    done = 0
    while done < records:
        n = min(BATCH, records - done)
        for _ in range(n):
            put(record)
        for _ in range(n):
            get()
        done += n
    return time.perf_counter() - start


def best_of(repeats: int, run: Callable[[int, int], float], size: int, records: int) -> float:
    return min(run(size, records) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records, one repeat")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3

    print(
        f"{'record':>7} {'C M rec/s':>10} {'wrapper M/s':>12} {'batched M/s':>12} "
        f"{'Queue M/s':>10} {'wrapper/Queue':>14} {'batched/Queue':>14} {'C/wrapper':>10} "
        f"{'C/batched':>10} {'C GB/s':>7}"
    )
    for label, size in SIZES.items():
        records = records_for(size, args.quick)
        c = records / best_of(repeats, c_ring_seconds, size, records) / 1e6
        wrapped = records / best_of(repeats, wrapper_seconds, size, records) / 1e6
        batched = records / best_of(repeats, batched_seconds, size, records) / 1e6
        q = records / best_of(repeats, queue_seconds, size, records) / 1e6
        print(
            f"{label:>7} {c:10.2f} {wrapped:12.2f} {batched:12.2f} {q:10.2f} "
            f"{wrapped / q:13.2f}x {batched / q:13.2f}x {c / wrapped:9.1f}x {c / batched:9.1f}x "
            f"{c * size / 1e3:7.2f}"
        )


if __name__ == "__main__":
    main()
