"""Where the link to the trainer stands, in words the status bar can show."""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from collections.abc import Sequence
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
    rank: int = -1  # the trainer's rank, from its HELLO (-1: not known yet)
    capabilities: int = 0  # the trainer's HELLO capabilities (with several: those all share)
    links: tuple[ConnectionStatus, ...] = ()  # one per endpoint, when there are several

    def describe(self, now: float) -> str:
        """One line, e.g. ``retrying in 3 s (connection refused)``; with several endpoints
        ``1/2 ranks live; rank 1: retrying localhost:9001 in 3 s: connection refused``."""
        if self.links:
            live = sum(link.phase is Phase.LIVE for link in self.links)
            others = [link.labelled(now) for link in self.links if link.phase is not Phase.LIVE]
            return "; ".join([f"{live}/{len(self.links)} ranks live", *others])
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

    def labelled(self, now: float) -> str:
        """``describe`` after the rank, when known: ``rank 1: retrying ...``."""
        return f"rank {self.rank}: {self.describe(now)}" if self.rank >= 0 else self.describe(now)


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


_SUMMARY_ORDER = (Phase.LIVE, Phase.CONNECTING, Phase.RETRYING, Phase.FAILED, Phase.IDLE)


class LinkStates:
    """One ``ConnectionState`` per endpoint, summed up into ``summary`` on every change.

    With one endpoint the summary is that endpoint's status; with several it is live while any
    is (what arrives is shown), and its ``links`` hold every endpoint's status.
    """

    def __init__(self, summary: ConnectionState, endpoints: Sequence[str]) -> None:
        self.summary = summary
        self.parts = [ConnectionState() for _ in endpoints]
        for part, endpoint in zip(self.parts, endpoints, strict=True):
            part.status = ConnectionStatus(endpoint=endpoint)
            part.changed.connect(self._update)
        self._update()

    def _update(self, *_: object) -> None:
        statuses = [part.status for part in self.parts]
        if len(statuses) == 1:
            self.summary.set(**{f.name: getattr(statuses[0], f.name) for f in _FIELDS})
            return
        phase = next(p for p in _SUMMARY_ORDER if any(s.phase is p for s in statuses))
        retries = [s.retry_at for s in statuses if s.retry_at is not None]
        self.summary.set(
            phase=phase,
            endpoint=", ".join(s.endpoint for s in statuses),
            reason="; ".join(_why(s) for s in statuses if s.phase is not Phase.LIVE),
            retry_at=min(retries) if phase is Phase.RETRYING and retries else None,
            attempt=max(s.attempt for s in statuses),
            peer=next((s.peer for s in statuses if s.phase is Phase.LIVE), ""),
            rank=-1,
            capabilities=_shared_capabilities(statuses),
            links=tuple(statuses),
        )


def _shared_capabilities(statuses: Sequence[ConnectionStatus]) -> int:
    """What every live trainer can do (0 when none is live)."""
    live = [s.capabilities for s in statuses if s.phase is Phase.LIVE]
    return functools.reduce(operator.and_, live) if live else 0


def _why(status: ConnectionStatus) -> str:
    """An endpoint that is not live, and why (no countdown: this text is kept)."""
    text = f"{status.endpoint}: {status.phase.value}"
    return f"{text}: {status.reason}" if status.reason else text


_FIELDS = dataclasses.fields(ConnectionStatus)
