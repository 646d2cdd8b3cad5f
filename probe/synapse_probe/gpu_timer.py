"""GPU time of the probe's own launches, without a host sync.

A pair of CUDA timing events goes around each batch of launches (a site's kernels, a lens's
capture) on the current stream. ``collect``, called at a later step boundary, reads the pairs
whose end event has completed (``Event.query()`` never waits) and returns their elapsed times;
pairs still in flight stay for the next call. Events are reused.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

MAX_PENDING = 4096  # pairs waiting for their end event; beyond this, new pairs are not timed


class GpuTimer:
    """Event pairs around launches; ``collect`` returns ``(step, lens, ns)`` of completed ones."""

    def __init__(self) -> None:
        self._free: list[Any] = []
        self._pending: deque[tuple[int, bool, Any, Any]] = deque()

    def start(self) -> Any:
        """Record a start event on the current stream (None when too many are in flight)."""
        if len(self._pending) >= MAX_PENDING:
            return None
        event = self._event()
        event.record()
        return event

    def stop(self, start: Any, step: int, *, lens: bool = False) -> None:
        """Record the end event of the pair begun by ``start``."""
        if start is None:
            return
        end = self._event()
        end.record()
        self._pending.append((step, lens, start, end))

    def collect(self) -> list[tuple[int, bool, int]]:
        """Elapsed ns of the pairs that have completed, oldest first."""
        done: list[tuple[int, bool, int]] = []
        pending = self._pending
        while pending:
            step, lens, start, end = pending[0]
            if not end.query():
                break  # later pairs were recorded after it on the same stream
            pending.popleft()
            done.append((step, lens, int(start.elapsed_time(end) * 1e6)))
            self._free += (start, end)
        return done

    def _event(self) -> Any:
        if self._free:
            return self._free.pop()
        new_event: Any = torch.cuda.Event
        return new_event(enable_timing=True)
