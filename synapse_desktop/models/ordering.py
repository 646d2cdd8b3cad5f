"""Sequence numbers per source: duplicates and late frames are told apart from gaps.

Frames addressed to one client (HELLO, the MODEL_META and CONTROL_ACK sent on connect, ERROR)
carry ``seq = 0``, outside the broadcast sequence (docs/PROTOCOL.md): they are always taken and
leave the count alone.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

SEQ_MODULUS = 1 << 32
_HALF = SEQ_MODULUS // 2


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    LATE = "late"


class Skipped(NamedTuple):
    """A frame read but not applied (discarded to keep up): only its place in the sequence."""

    seq: int
    rank: int


class SeqGuard:
    """Per-source (rank) last sequence number, compared with 32-bit serial arithmetic."""

    def __init__(self) -> None:
        self._last: dict[int, int] = {}
        self.gaps = 0

    def reset(self, source: int) -> None:
        """A new stream from ``source`` (after its HELLO): any next number is accepted."""
        self._last.pop(source, None)

    def check(self, source: int, seq: int) -> Verdict:
        """Judge ``seq`` from ``source``; counts skipped numbers into ``gaps``."""
        if seq == 0:
            return Verdict.NEW
        last = self._last.get(source)
        if last is None:
            self._last[source] = seq
            return Verdict.NEW
        ahead = (seq - last) % SEQ_MODULUS
        if ahead == 0:
            return Verdict.DUPLICATE
        if ahead >= _HALF:
            return Verdict.LATE
        self.gaps += ahead - 1
        self._last[source] = seq
        return Verdict.NEW

    def check_run(self, source: int, first: int, count: int) -> Verdict:
        """Judge ``count`` consecutive numbers from ``first`` (none of them 0) at once.

        When the first is new the others are too (each one ahead of the one before it), and
        this is the same as checking them one by one; otherwise only the first was judged.
        """
        verdict = self.check(source, first)
        if verdict is Verdict.NEW and count > 1:
            self._last[source] = (first + count - 1) % SEQ_MODULUS
        return verdict
