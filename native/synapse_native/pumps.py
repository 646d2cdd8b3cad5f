"""The socket pumps: ``SenderPump`` (trainer side, one socket per client) and ``ReceiverPump``
(app side, one connection). Both move bytes in C threads that never take the GIL."""

from __future__ import annotations

from .receiver import ReceiverPump, ReceiverStats
from .sender import ClientStats, InboundEvent, SenderPump, SenderStats

__all__ = [
    "ClientStats",
    "InboundEvent",
    "ReceiverPump",
    "ReceiverStats",
    "SenderPump",
    "SenderStats",
]
