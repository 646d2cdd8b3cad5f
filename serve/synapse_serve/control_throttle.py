"""A viewer's CONTROL rate limit: a token bucket per client, checked before decoding.

A person dragging a slider sends a few dozen requests a second; a viewer that sends far more
(a bug, a script, an attack) must not cost the training loop: every applied request is
acknowledged on the training thread, every refused one broadcast. Beyond ``RATE_HZ`` a second
(after a burst of ``BURST``) requests are dropped unread and counted; at most one drop a second
is answered, to that viewer alone, so it learns why its requests go unanswered.
"""

from __future__ import annotations

import time
from collections.abc import Callable

RATE_HZ = 100.0
BURST = 64
ANSWER_EVERY_S = 1.0


class ControlThrottle:
    """One client's bucket (used by the server's event thread only)."""

    __slots__ = ("_answered", "_clock", "_stamp", "_tokens", "dropped")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens = float(BURST)
        self._stamp = clock()
        self._answered = self._stamp - ANSWER_EVERY_S
        self.dropped = 0  # requests dropped unread

    def admit(self) -> bool:
        """Take a token for one request; False (counted) when there is none."""
        now = self._clock()
        self._tokens = min(float(BURST), self._tokens + (now - self._stamp) * RATE_HZ)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.dropped += 1
        return False

    def answer_due(self) -> bool:
        """Whether this drop is to be answered (True at most once every ANSWER_EVERY_S)."""
        now = self._clock()
        if now - self._answered < ANSWER_EVERY_S:
            return False
        self._answered = now
        return True
