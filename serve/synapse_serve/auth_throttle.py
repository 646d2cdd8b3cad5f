"""Backing off from a peer that keeps failing the token proof.

Each failed proof from a peer address doubles the time that peer must wait before its next
attempt (0.25 s after the first, up to 30 s); a connection that comes sooner is refused at once,
before any challenge, and counted. A success, or ten quiet minutes, forgets the peer. Failures
are logged at most once a minute, as one line with the count since the last line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.25
MAX_DELAY_S = 30.0
FORGET_AFTER_S = 600.0
LOG_EVERY_S = 60.0
MAX_PEERS = 4096  # peers remembered at once; beyond, the quietest are forgotten


class AuthThrottle:
    """Per-peer failure counts and waiting times for the token handshake (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = 0  # failed proofs since start
        self.refused = 0  # connections refused because their peer had to wait
        self._clock = clock
        self._lock = threading.Lock()
        self._peers: dict[str, tuple[int, float]] = {}  # peer -> (failures, not before)
        self._unlogged = 0
        self._last_log = -LOG_EVERY_S

    def wait_left(self, peer: str) -> float:
        """Seconds ``peer`` must still wait before it may try again (0: it may); a positive
        answer counts as a refused attempt."""
        now = self._clock()
        with self._lock:
            entry = self._peers.get(peer)
            if entry is None:
                return 0.0
            not_before = entry[1]
            if now - not_before > FORGET_AFTER_S:
                del self._peers[peer]
                return 0.0
            if now >= not_before:
                return 0.0
            self.refused += 1
            self._unlogged += 1
            self._maybe_log(now, peer)
            return not_before - now

    def failed(self, peer: str) -> float:
        """Record a failed proof; returns how long ``peer`` must now wait."""
        now = self._clock()
        with self._lock:
            failures = self._peers.get(peer, (0, now))[0] + 1
            delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** min(failures - 1, 16))
            if peer not in self._peers and len(self._peers) >= MAX_PEERS:
                del self._peers[min(self._peers, key=lambda p: self._peers[p][1])]
            self._peers[peer] = (failures, now + delay)
            self.failures += 1
            self._unlogged += 1
            self._maybe_log(now, peer)
            return delay

    def succeeded(self, peer: str) -> None:
        """A correct proof: forget the peer's failures."""
        with self._lock:
            self._peers.pop(peer, None)

    def _maybe_log(self, now: float, peer: str) -> None:
        if now - self._last_log < LOG_EVERY_S:
            return
        log.warning(
            "%d failed or too early token attempts in the last minute (latest from %s); "
            "%d failed proofs since start",
            self._unlogged,
            peer,
            self.failures,
        )
        self._unlogged = 0
        self._last_log = now
