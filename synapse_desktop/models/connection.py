"""Where the link to the trainer stands, in words the status bar can show."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from synapse_desktop.models.signal import Signal


class Phase(Enum):
    """The life of one endpoint's connection."""

    IDLE = "not connected"
    CONNECTING = "connecting"
    LIVE = "live"
    RETRYING = "retrying"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """A snapshot; ``retry_at`` is on the ``time.monotonic`` clock."""

    phase: Phase = Phase.IDLE
    endpoint: str = ""
    reason: str = ""
    retry_at: float | None = None
    attempt: int = 0
    peer: str = ""

    def describe(self, now: float) -> str:
        """One line, e.g. ``retrying in 3 s (connection refused)``."""
        where = f" {self.endpoint}" if self.endpoint else ""
        if self.phase is Phase.RETRYING and self.retry_at is not None:
            wait = max(0, math.ceil(self.retry_at - now))
            text = f"retrying{where} in {wait} s"
        elif self.phase is Phase.LIVE:
            text = f"live{where}" + (f" ({self.peer})" if self.peer else "")
            return text
        else:
            text = f"{self.phase.value}{where}"
        return f"{text}: {self.reason}" if self.reason else text


class ConnectionState:
    """Holds the current ``ConnectionStatus``; ``changed(status)`` fires on every change."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.status = ConnectionStatus()

    def set(self, **changes: Any) -> None:
        """Replace some fields of the status."""
        status = dataclasses.replace(self.status, **changes)
        if status != self.status:
            self.status = status
            self.changed.emit(status)
