"""``ReceiverPump``: the app side of the stream. One C thread per connection reads frames.

The pump thread checks each frame header (magic, version, payload limit) before it buffers the
payload, and pushes whole frames into a ring that ``drain`` empties without blocking. While the
ring is full the pump stops reading, so TCP flow control slows the trainer's pump for this
client (which then drops and counts) and memory stays bounded. ``send`` queues an outbound frame
(a CONTROL message, say) that the pump thread writes: the caller never makes a socket call.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from ._buffers import BytesLike, RecordReader, c_bytes
from ._closing import ClosesOnExit
from ._lib import ffi, lib
from .errors import ClosedError, RecordTooLargeError, raise_for

# Longest single blocking wait in C: longer waits are sliced so that Ctrl-C stays responsive.
_WAIT_SLICE_S = 0.25


@dataclass(frozen=True, slots=True)
class ReceiverStats:
    """A snapshot of the pump's counters and state."""

    frames_in: int
    bytes_in: int
    frames_out: int
    bytes_out: int
    ring_used_bytes: int
    ring_capacity: int
    closed: bool
    close_reason: str | None


class ReceiverPump(ClosesOnExit):
    """Reads one connection from a C thread; see the module docstring.

    One thread at a time drains/waits and one at a time sends (each side has its own lock);
    ``stats``, ``closed`` and ``close`` may be called from any thread.
    """

    def __init__(
        self, sock: socket.socket, ring_capacity: int = 1 << 25, max_payload: int = 1 << 24
    ) -> None:
        fd = os.dup(sock.fileno())
        out = ffi.new("syn_receiver **")
        try:
            rc = lib.syn_receiver_new(fd, ring_capacity, max_payload, out)
        except BaseException:
            os.close(fd)
            raise
        if rc != 0:
            os.close(fd)
            raise_for(
                rc,
                "start a receiver pump (ring_capacity must be a power of two from 64 bytes to "
                "1 GiB with room for a whole frame of max_payload bytes, and sock a connected "
                "stream socket)",
            )
        self._receiver: Any = ffi.gc(out[0], lib.syn_receiver_free)
        self._drain_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._reader = RecordReader(
            lib.syn_receiver_storage(self._receiver),
            int(lib.syn_receiver_ring_capacity(self._receiver)),
        )
        self._stats = ffi.new("syn_receiver_stats *")
        self._reason = ffi.new("char[]", lib.SYN_REASON_MAX)
        self._final: ReceiverStats | None = None

    def drain(self, max_frames: int = 4096) -> list[bytes]:
        """Removes and returns up to ``max_frames`` whole frames (oldest first); never blocks."""
        if max_frames < 0:
            raise ValueError(f"max_frames must not be negative, got {max_frames}")
        with self._drain_lock:
            return self._reader.read(
                lib.syn_receiver_peek_batch, lib.syn_receiver_consume, self._live(), max_frames
            )

    def wait(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for a frame. True: a frame is ready to drain;
        False: timed out, or the stream closed with nothing left to drain."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._drain_lock:
            receiver = self._live()
            while True:
                left = deadline - time.monotonic()
                rc = lib.syn_receiver_wait(receiver, max(0, round(min(left, _WAIT_SLICE_S) * 1000)))
                if rc == 1:
                    return True
                if rc == lib.SYN_ECLOSED or left <= _WAIT_SLICE_S:
                    return False

    def send(self, frame: BytesLike) -> bool:
        """Queues a frame for the pump thread to write; never blocks. False: the outbound queue
        is full or the stream has closed."""
        data, length = c_bytes(frame)
        with self._send_lock:
            rc = lib.syn_receiver_send(self._live(), data, length)
        if rc == 0:
            return True
        if rc in (lib.SYN_EFULL, lib.SYN_ECLOSED):
            return False
        if rc == lib.SYN_ETOOBIG:
            raise RecordTooLargeError(
                f"a frame of {length} bytes exceeds the "
                f"{lib.SYN_RECEIVER_OUTBOUND_BYTES - 8}-byte outbound limit"
            )
        raise_for(rc, "send a frame")

    @property
    def closed(self) -> bool:
        """True once the stream has ended (frames may still wait to be drained)."""
        return self.stats().closed

    @property
    def close_reason(self) -> str | None:
        """Why the stream ended ("peer closed the connection", "bad magic ..."), or None."""
        return self.stats().close_reason

    def stats(self) -> ReceiverStats:
        """Counters and state; after ``close`` the final snapshot."""
        with self._state_lock:
            if self._final is not None:
                return self._final
            return self._snapshot()

    def close(self) -> None:
        """Shuts the connection down, joins the thread and frees the pump. Safe to call twice."""
        with self._state_lock:
            if self._receiver is None:
                return
            lib.syn_receiver_close(self._receiver)  # also wakes a wait() blocked in C
            self._final = self._snapshot()
            with self._drain_lock, self._send_lock:
                ffi.release(self._receiver)
                self._receiver = None

    def _live(self) -> Any:
        if self._receiver is None:
            raise ClosedError("the receiver pump is closed")
        return self._receiver

    def _snapshot(self) -> ReceiverStats:
        receiver = self._live()
        s = self._stats
        lib.syn_receiver_stats_get(receiver, s)
        closed = s.state == lib.SYN_STREAM_CLOSED
        reason = None
        if closed:
            lib.syn_receiver_close_reason(receiver, self._reason, lib.SYN_REASON_MAX)
            reason = ffi.string(self._reason).decode("utf-8", "replace")
        return ReceiverStats(
            frames_in=int(s.frames_in),
            bytes_in=int(s.bytes_in),
            frames_out=int(s.frames_out),
            bytes_out=int(s.bytes_out),
            ring_used_bytes=int(s.ring_used_bytes),
            ring_capacity=int(s.ring_capacity),
            closed=closed,
            close_reason=reason,
        )
