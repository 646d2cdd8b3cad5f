"""Which steps are measured: at most ``rate_hz`` per second, none while paused."""

from __future__ import annotations

import time


class Sampler:
    """Decides, at a step boundary, whether the coming step is measured.

    A step is due once ``1 / rate_hz`` seconds have passed since the last measured step began, so
    slow steps are all measured and fast ones are thinned to the rate. ``rate_hz <= 0`` or
    ``paused`` measures nothing; ``math.inf`` measures every step.
    """

    def __init__(self, rate_hz: float, *, paused: bool = False) -> None:
        self.rate_hz = rate_hz
        self.paused = paused
        self._last_ns: int | None = None

    def due(self, now_ns: int | None = None) -> bool:
        """True when the coming step should be measured (and then counts as measured)."""
        if self.paused or self.rate_hz <= 0:
            return False
        now = time.monotonic_ns() if now_ns is None else now_ns
        if self._last_ns is not None and now - self._last_ns < 1e9 / self.rate_hz:
            return False
        self._last_ns = now
        return True
