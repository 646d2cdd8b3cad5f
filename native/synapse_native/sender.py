"""``SenderPump``: the trainer side of the stream. One C thread fans frames out to every client.

``broadcast`` and ``send_to`` copy a frame into a lock-free ring and return at once; they never
wait for a client. The pump thread copies each frame into each target client's bounded queue
and writes it without blocking; a frame that does not fit a client's queue is dropped for that
client alone (and counted), so a client that stops reading loses only its own frames. Frames the
clients send, and clients that go away, come back as ``InboundEvent``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._buffers import BytesLike, c_bytes, c_packed
from ._closing import ClosesOnExit
from ._lib import ffi, lib
from .errors import ClosedError, RecordTooLargeError, UnknownClientError, raise_for

_broadcast = lib.syn_sender_broadcast
_broadcast_packed = lib.syn_sender_broadcast_packed
_from_buffer = ffi.from_buffer
# Longest single blocking wait in C: longer waits are sliced so that Ctrl-C stays responsive.
_WAIT_SLICE_S = 0.25


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """A frame a client sent (``frame``), or the end of a client (``closed_reason``)."""

    client_id: int
    frame: bytes | None
    closed_reason: str | None


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters of one connected client."""

    client_id: int
    frames_sent: int
    frames_dropped: int
    bytes_sent: int
    bytes_queued: int
    frames_received: int


@dataclass(frozen=True, slots=True)
class SenderStats:
    """A snapshot of the pump: ring drops happen in ``broadcast``/``send_to``, before any
    client; per-client drops are in ``clients``."""

    ring_drops: int
    ring_used_bytes: int
    ring_capacity: int
    frames_unroutable: int
    clients: list[ClientStats]


class SenderPump(ClosesOnExit):
    """Fans frames out to connected clients from a C thread; see the module docstring.

    ``broadcast``/``send_to`` may be called from any thread (they are serialised; the C side has
    a single producer), as may ``add_client``, ``remove_client``, ``next_event`` and ``stats``.
    """

    def __init__(
        self,
        ring_capacity: int = 1 << 24,
        client_queue_bytes: int = 1 << 22,
        max_inbound_payload: int = 1 << 16,
    ) -> None:
        out = ffi.new("syn_sender **")
        rc = lib.syn_sender_new(ring_capacity, client_queue_bytes, max_inbound_payload, out)
        if rc != 0:
            raise_for(
                rc,
                "start a sender pump (ring_capacity and client_queue_bytes must be powers of "
                "two from 64 bytes to 1 GiB)",
            )
        self._sender: Any = ffi.gc(out[0], lib.syn_sender_free)
        self._max_frame = int(lib.syn_sender_max_frame(self._sender))
        self._produce_lock = threading.Lock()
        self._event_lock = threading.Lock()
        self._admin_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._event = ffi.new("syn_event *")
        self._event_cap = int(lib.syn_sender_max_event(self._sender))
        self._event_buf = ffi.new("char[]", self._event_cap)
        self._stats = ffi.new("syn_sender_stats *")
        self._client_stats = ffi.new("syn_client_stats[]", 16)

    @property
    def max_frame(self) -> int:
        """Longest frame ``broadcast``/``send_to`` accept (bounded by the client queue size)."""
        return self._max_frame

    def add_client(self, sock: socket.socket) -> int:
        """Hands a connected stream socket to the pump and returns the client's id.

        The pump works on a duplicate of the descriptor, so the caller may close its socket
        object; the shared connection becomes non-blocking (and TCP_NODELAY for TCP).
        """
        fd = os.dup(sock.fileno())
        try:
            with self._admin_lock:
                client_id = lib.syn_sender_add_client(self._live(), fd)
            if client_id < 0:
                raise_for(client_id, "add a client")
        except BaseException:
            os.close(fd)
            raise
        return int(client_id)

    def remove_client(self, client_id: int) -> None:
        """Closes a client's connection; no event is reported for it. Unknown ids raise
        UnknownClientError; removing a client that already left is a no-op."""
        with self._admin_lock:
            rc = lib.syn_sender_remove_client(self._live(), _client_id(client_id))
        if rc != 0:
            raise_for(rc, f"remove client {client_id}")

    def broadcast(self, frame: BytesLike) -> bool:
        """Queues a frame for every client; never blocks. False: the ring was full, the frame
        was dropped and counted in ``stats().ring_drops``."""
        if type(frame) is bytes:  # the hot path: no c_bytes call, no attribute lookups
            data: Any = frame
            length = len(frame)
        else:
            data, length = c_bytes(frame)
        with self._produce_lock:
            sender = self._sender
            if sender is None:
                raise ClosedError("the sender pump is closed")
            rc = _broadcast(sender, data, length)
        return rc == 0 or self._produced(rc, length)

    def broadcast_many(self, frames: Sequence[BytesLike]) -> int:
        """Queues frames for every client, in order, with one C call; never blocks. Returns how
        many were queued: a prefix, as ``Ring.push_many``; the frames from that index on did not
        fit the ring and were dropped and counted in ``stats().ring_drops``. A frame longer than
        ``max_frame`` raises RecordTooLargeError before any frame is queued."""
        data, lengths = c_packed(frames)
        c_lengths = _from_buffer("uint32_t[]", lengths)
        with self._produce_lock:
            sender = self._sender
            if sender is None:
                raise ClosedError("the sender pump is closed")
            queued: int = _broadcast_packed(sender, data, len(data), c_lengths, len(lengths))
        if queued >= 0:
            return queued
        if queued == lib.SYN_ETOOBIG:
            length = next(n for n in lengths if n > self._max_frame)
            raise RecordTooLargeError(
                f"a frame of {length} bytes exceeds this pump's {self._max_frame}-byte limit"
            )
        raise_for(queued, "queue frames")

    def send_to(self, client_id: int, frame: BytesLike) -> bool:
        """Queues a frame for one client; never blocks. False as for ``broadcast``."""
        data, length = c_bytes(frame)
        target = _client_id(client_id)
        with self._produce_lock:
            rc = lib.syn_sender_send_to(self._live(), target, data, length)
        return self._produced(rc, length)

    def next_event(self, timeout: float | None = 0.0) -> InboundEvent | None:
        """The oldest inbound event, waiting up to ``timeout`` seconds for one (None: forever).

        Returns None on timeout, or when the pump is closed while waiting.
        """
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        with self._event_lock:
            sender = self._live()
            while True:
                event = self._pop_event(sender)
                if event is not None:
                    return event
                left = _WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return None
                rc = lib.syn_sender_wait_event(sender, _slice_ms(left))
                if rc == lib.SYN_ECLOSED:
                    return self._pop_event(sender)

    def stats(self) -> SenderStats:
        """Counters of the pump and of every connected client."""
        with self._admin_lock:
            sender = self._live()
            while True:
                cap = len(self._client_stats)
                count = lib.syn_sender_stats_get(sender, self._stats, self._client_stats, cap)
                if count <= cap:
                    break
                self._client_stats = ffi.new("syn_client_stats[]", 2 * count)
            s = self._stats
            clients = [
                ClientStats(
                    client_id=int(c.client_id),
                    frames_sent=int(c.frames_sent),
                    frames_dropped=int(c.frames_dropped),
                    bytes_sent=int(c.bytes_sent),
                    bytes_queued=int(c.bytes_queued),
                    frames_received=int(c.frames_received),
                )
                for c in self._client_stats[0:count]
            ]
            return SenderStats(
                ring_drops=int(s.ring_drops),
                ring_used_bytes=int(s.ring_used_bytes),
                ring_capacity=int(s.ring_capacity),
                frames_unroutable=int(s.frames_unroutable),
                clients=clients,
            )

    def close(self) -> None:
        """Stops the pump, closes every client connection, frees the pump. Safe to call twice."""
        with self._close_lock:
            if self._sender is None:
                return
            lib.syn_sender_stop(self._sender)  # also wakes a next_event() waiting in C
            with self._produce_lock, self._event_lock, self._admin_lock:
                ffi.release(self._sender)
                self._sender = None

    def _live(self) -> Any:
        if self._sender is None:
            raise ClosedError("the sender pump is closed")
        return self._sender

    def _produced(self, rc: int, length: int) -> bool:
        if rc == 0:
            return True
        if rc == lib.SYN_EFULL:
            return False
        if rc == lib.SYN_ETOOBIG:
            raise RecordTooLargeError(
                f"a frame of {length} bytes exceeds this pump's {self._max_frame}-byte limit"
            )
        raise_for(rc, "queue a frame")

    def _pop_event(self, sender: Any) -> InboundEvent | None:
        length = lib.syn_sender_pop_event(sender, self._event, self._event_buf, self._event_cap)
        if length == lib.SYN_EEMPTY:
            return None
        if length < 0:
            raise_for(length, "read an event")
        payload = ffi.buffer(self._event_buf, length)[:]
        client_id = int(self._event.client_id)
        if self._event.kind == lib.SYN_EVENT_CLOSED:
            return InboundEvent(client_id, None, payload.decode("utf-8", "replace"))
        return InboundEvent(client_id, payload, None)


def _client_id(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"a client id is an int, not {type(value).__name__}")
    if not 0 < value < 1 << 32:
        raise UnknownClientError(f"no client has id {value}")
    return value


def _slice_ms(seconds: float) -> int:
    return max(1, round(min(seconds, _WAIT_SLICE_S) * 1000))
