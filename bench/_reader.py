"""A viewer process for the overhead benchmarks: reads and decodes every frame, as the app would.

On a machine whose cores all train (torch's threads take every core), the viewer's decoding
comes out of the step time although it is not the probe's: each reader therefore reports its
CPU time, and ``viewer_core`` can give the readers a core of their own.
"""

from __future__ import annotations

import os
import time
from typing import Any


def read_frames(
    host: str, port: int, stop: Any, count: Any, cpu_ns: Any = None, core: int | None = None
) -> None:
    """Read and decode frames from ``host:port`` until ``stop`` is set; count them in ``count``,
    and add this process's CPU time to ``cpu_ns`` (a shared value) when given. ``core``: the
    one CPU to run on."""
    from synapse_native.client import StreamClient

    if core is not None:
        os.sched_setaffinity(0, {core})
    start = time.process_time_ns()  # after the imports: the reading alone is counted
    try:
        with StreamClient.connect(host, port) as client:
            while not stop.is_set():
                for _ in client.frames(timeout=0.1):
                    count.value += 1
    finally:
        if cpu_ns is not None:
            with cpu_ns.get_lock():
                cpu_ns.value += time.process_time_ns() - start


def viewer_core() -> int:
    """Keep the last CPU of this process's set for the viewers: this process (and its torch
    threads, one per CPU left) runs on the others. Returns the viewers' CPU."""
    import torch

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--viewer-core needs at least 2 CPUs")
    os.sched_setaffinity(0, cpus[:-1])
    torch.set_num_threads(len(cpus) - 1)
    return cpus[-1]
