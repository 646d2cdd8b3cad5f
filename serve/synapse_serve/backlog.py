"""The backlog: the last frames broadcast, replayed (flagged BACKLOG) to a viewer that connects.

A publisher tap (called under the publisher's lock) appends each broadcast frame and evicts the
oldest beyond the byte budget; the frames are the publisher's own ``bytes``, so keeping them
costs no copy. The MODEL_META and CONTROL_ACK in force when the oldest kept frame was sent
lead the replay, stamped just before the oldest frame, so the backlog reads on its own
(docs/PROTOCOL.md section 6).
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Sequence

from synapse_native.protocol import HeaderFlag, MsgType

DEFAULT_BACKLOG_BYTES = 64 << 20
_IN_FORCE = (int(MsgType.MODEL_META), int(MsgType.CONTROL_ACK))
_SKIPPED = int(MsgType.HELLO)  # each client gets its own
_NOT_BROADCAST = bytes(4)  # seq 0


def _msg_type(frame: bytes) -> int:
    return frame[6] | frame[7] << 8


def flagged(frame: bytes) -> bytes:
    """``frame`` with the BACKLOG header flag set."""
    flags = (frame[30] | frame[31] << 8) | int(HeaderFlag.BACKLOG)
    return b"".join((frame[:30], flags.to_bytes(2, "little"), frame[32:]))


def _stamped(frame: bytes, before_ns: int) -> bytes:
    """``frame`` stamped no earlier than just before ``before_ns``, so that the state in force
    leads the backlog in log time too (a recording's timeline starts with its data)."""
    if int.from_bytes(frame[16:24], "little") >= before_ns:
        return frame
    return b"".join((frame[:16], max(before_ns - 1, 0).to_bytes(8, "little"), frame[24:]))


class Backlog:
    """Recent broadcast frames within ``budget`` bytes. Frames outside the broadcast sequence
    (seq 0: the MODEL_META and CONTROL_ACK a server tap starts with) only set the state in
    force. Not locked: the owner serialises ``tap``, ``snapshot`` and ``since`` (the server
    holds the publisher's lock)."""

    def __init__(self, budget: int = DEFAULT_BACKLOG_BYTES) -> None:
        if budget < 0:
            raise ValueError(f"backlog budget must be >= 0 bytes, got {budget}")
        self.budget = budget
        self._frames: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._appended = 0  # frames ever appended: a mark for ``since``
        self._in_force: dict[int, bytes] = {}  # type -> frame, in force at the oldest kept one

    def tap(self, frames: Sequence[bytes]) -> None:
        """Keep ``frames`` (a publisher tap), evicting the oldest beyond the budget."""
        for frame in frames:
            if _msg_type(frame) == _SKIPPED:
                continue
            if frame[12:16] == _NOT_BROADCAST:  # the state a new client gets: in force now
                if _msg_type(frame) in _IN_FORCE:
                    self._in_force[_msg_type(frame)] = frame
                continue
            self._frames.append(frame)
            self._bytes += len(frame)
            self._appended += 1
        while self._bytes > self.budget and self._frames:
            old = self._frames.popleft()
            self._bytes -= len(old)
            if _msg_type(old) in _IN_FORCE:
                self._in_force[_msg_type(old)] = old

    def snapshot(self) -> tuple[list[bytes], int]:
        """The frames to replay (not yet flagged) and a mark for ``since``."""
        if not self._frames:
            return [], self._appended
        first = int.from_bytes(self._frames[0][16:24], "little")
        lead = [_stamped(self._in_force[t], first) for t in _IN_FORCE if t in self._in_force]
        return [*lead, *self._frames], self._appended

    def since(self, mark: int) -> list[bytes]:
        """The frames appended after ``mark`` that are still kept (not yet flagged)."""
        n = min(self._appended - mark, len(self._frames))
        return list(itertools.islice(reversed(self._frames), n))[::-1]

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._frames)
