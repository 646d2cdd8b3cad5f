"""A viewer process for the overhead benchmarks: reads and decodes every frame, as the app would."""

from __future__ import annotations

from typing import Any


def read_frames(host: str, port: int, stop: Any, count: Any) -> None:
    """Read and decode frames from ``host:port`` until ``stop`` is set; count them in ``count``."""
    from synapse_native.client import StreamClient

    with StreamClient.connect(host, port) as client:
        while not stop.is_set():
            for _ in client.frames(timeout=0.1):
                count.value += 1
