"""Capped, jittered exponential backoff between reconnection attempts."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial * factor**n``, capped at ``cap``, each scaled by 1 +- ``jitter``."""

    def __init__(
        self,
        initial: float = 0.5,
        cap: float = 10.0,
        factor: float = 2.0,
        jitter: float = 0.25,
        rng: random.Random | None = None,
    ) -> None:
        self.initial, self.cap, self.factor, self.jitter = initial, cap, factor, jitter
        self._rng = rng or random.Random()
        self.attempts = 0

    def next(self) -> float:
        """The delay before the next attempt (and count that attempt)."""
        base = min(self.cap, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return base * (1.0 + self.jitter * (2.0 * self._rng.random() - 1.0))

    def reset(self) -> None:
        """After a connection that worked: start again from ``initial``."""
        self.attempts = 0
