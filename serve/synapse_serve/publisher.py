"""Stamping and encoding frames, and pushing them into the sender pump: thread-safe, never waits.

One lock orders every push (the pump's ring has a single producer), so ``seq`` rises by one per
broadcast frame in the order the frames reach the clients. A frame the ring cannot take is
dropped and counted (so is one too long for the pump, with a warning); nothing here ever
waits for a client. ``broadcast_many`` pushes several frames (a sampled step's) with one call
into the pump, numbered exactly as the same ``broadcast`` calls in a row would be.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from synapse_native.errors import ClosedError, RecordTooLargeError, UnknownClientError
from synapse_native.protocol import Message, encode

log = logging.getLogger(__name__)


class FrameSink(Protocol):
    """What the publisher needs of the sender pump."""

    def broadcast(self, frame: bytes) -> bool: ...

    def broadcast_many(self, frames: Sequence[bytes]) -> int: ...

    def send_to(self, client_id: int, frame: bytes) -> bool: ...


class Publisher:
    """Encodes messages with this trainer's rank, the stream's seq and the current step."""

    def __init__(self, sink: FrameSink, *, rank: int = 0) -> None:
        self.lock = threading.RLock()  # hold it to make several pushes one atomic sequence
        self.rank = rank
        self.step = 0  # the step of the latest broadcast, stamped on frames that have none
        self.frames_encoded = 0
        self.frames_dropped = 0
        self._sink = sink
        self._seq = 1  # seq 0 marks frames outside the broadcast sequence
        self._relay_seq: dict[int, int] = {}  # per relayed rank: its frames' own sequence
        self._closed = False
        self._warned_too_large = False
        # Called with every broadcast frame, under ``lock`` (the backlog, a recording): each
        # must only queue the frames, never wait.
        self.taps: list[Callable[[Sequence[bytes]], None]] = []

    def broadcast(self, message: Message, *, step: int | None = None, flags: int = 0) -> bool:
        """Send to every client; False when the frame was dropped (counted) or the sink closed."""
        with self.lock:
            if self._closed:
                return False
            if step is not None:
                self.step = step
            frame = encode(message, seq=self._seq, step=self.step, rank=self.rank, flags=flags)
            self._seq += 1
            self.frames_encoded += 1
            for tap in self.taps:
                tap((frame,))
            if self._push(self._sink.broadcast, frame):
                return True
            self.frames_dropped += 1
            return False

    def broadcast_many(
        self,
        messages: Sequence[Message],
        *,
        step: int | None = None,
        flags: Sequence[int] | None = None,
        rank: int | None = None,
    ) -> int:
        """``broadcast`` of each message in turn (``flags[i]`` on message i, default 0), pushed
        into the sink with one call. Returns how many frames were queued; the others were
        dropped and counted (when the ring fills, those at the end), or the sink is closed.

        ``rank``: frames relayed for another rank of a job, numbered in a sequence of that
        rank's own (a viewer checks ``seq`` per rank)."""
        if flags is not None and len(flags) != len(messages):
            raise ValueError(f"{len(flags)} flags for {len(messages)} messages")
        with self.lock:
            if self._closed:
                return 0
            if step is not None:
                self.step = step
            source = self.rank if rank is None else rank
            first = self._seq if source == self.rank else self._relay_seq.get(source, 1)
            frames = [
                encode(
                    message,
                    seq=first + i,
                    step=self.step,
                    rank=source,
                    flags=0 if flags is None else flags[i],
                )
                for i, message in enumerate(messages)
            ]
            if source == self.rank:
                self._seq += len(frames)
            else:
                self._relay_seq[source] = first + len(frames)
            self.frames_encoded += len(frames)
            for tap in self.taps:
                tap(frames)
            queued = self._push_many(frames)
            self.frames_dropped += len(frames) - queued
            return queued

    def send_to(self, client_id: int, message: Message) -> bool:
        """Send to one client, outside the broadcast sequence (seq 0)."""
        with self.lock:
            if self._closed:
                return False
            return self._push(partial(self._sink.send_to, client_id), self.frame(message))

    def send_frame_to(self, client_id: int, frame: bytes) -> bool:
        """Send an already encoded frame to one client (a replayed backlog frame)."""
        with self.lock:
            if self._closed:
                return False
            return self._push(partial(self._sink.send_to, client_id), frame)

    def frame(self, message: Message) -> bytes:
        """One frame for a single peer (seq 0, the latest step), e.g. for its handshake."""
        frame: bytes = encode(message, seq=0, step=self.step, rank=self.rank)
        return frame

    def _push(self, push: Callable[[bytes], bool], frame: bytes) -> bool:
        try:
            return push(frame)
        except RecordTooLargeError:
            if not self._warned_too_large:
                self._warned_too_large = True
                log.warning("dropping frames of %d bytes: over the sender's limit", len(frame))
            return False
        except (ClosedError, UnknownClientError):
            return False

    def _push_many(self, frames: list[bytes]) -> int:
        try:
            return self._sink.broadcast_many(frames)
        except RecordTooLargeError:
            # The pump refused the whole batch: push the frames one by one, so that only those
            # over the limit are dropped, as with broadcast().
            return sum(self._push(self._sink.broadcast, frame) for frame in frames)
        except ClosedError:
            return 0

    def close(self) -> None:
        """Refuse every later push (the sink is about to go away)."""
        with self.lock:
            self._closed = True
