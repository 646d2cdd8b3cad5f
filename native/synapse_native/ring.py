"""``Ring``: the lock-free single-producer/single-consumer record ring, from Python.

Records are byte strings. One thread at a time may push and one at a time may pop; the wrapper
serialises each side with its own lock, so misuse from several threads stays safe while the
producer and the consumer still run in parallel (cffi releases the GIL during every C call).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ._buffers import BytesLike, RecordReader, c_bytes, c_packed
from ._closing import ClosesOnExit
from ._lib import ffi, lib
from .errors import ClosedError, RecordTooLargeError, raise_for

_push = lib.syn_ring_push
_push_packed = lib.syn_ring_push_packed
_from_buffer = ffi.from_buffer
_EFULL: int = lib.SYN_EFULL


class Ring(ClosesOnExit):
    """A bounded ring of variable-length records; ``push`` never blocks, ``pop`` never waits.

    ``capacity`` is a power of two between 64 bytes and 1 GiB. A record costs its length plus
    4 to 11 bytes (length prefix, padding to 8); the longest record is ``capacity - 8`` bytes.
    """

    def __init__(self, capacity: int) -> None:
        out = ffi.new("syn_ring **")
        rc = lib.syn_ring_new(_as_uint(capacity, "capacity"), out)
        if rc != 0:
            raise_for(rc, f"create a ring of {capacity} bytes (a power of two from 64 to 1 GiB)")
        self._ring: Any = ffi.gc(out[0], lib.syn_ring_free)
        self._capacity = int(lib.syn_ring_capacity(self._ring))
        self._max_record = int(lib.syn_ring_max_record(self._ring))
        self._push_lock = threading.Lock()
        self._pop_lock = threading.Lock()
        self._reader = RecordReader(lib.syn_ring_storage(self._ring), self._capacity)

    @property
    def capacity(self) -> int:
        """Size of the ring in bytes."""
        return self._capacity

    @property
    def max_record(self) -> int:
        """Length of the longest record the ring accepts."""
        return self._max_record

    @property
    def used_bytes(self) -> int:
        """Bytes in use, length prefixes and padding included (a snapshot)."""
        with self._push_lock:
            return int(lib.syn_ring_used_bytes(self._live()))

    def push(self, record: BytesLike) -> bool:
        """Appends one record; returns False (writing nothing) when there is no room now."""
        # The hot path of the probe's encoder: bytes skip c_bytes, and the C function and
        # constants are module globals rather than attribute lookups on lib.
        if type(record) is bytes:
            data: Any = record
            length = len(record)
        else:
            data, length = c_bytes(record)
        with self._push_lock:
            ring = self._ring
            if ring is None:
                raise ClosedError("the ring is closed")
            rc = _push(ring, data, length)
        if rc == 0:
            return True
        if rc == _EFULL:
            return False
        if rc == lib.SYN_ETOOBIG:
            raise RecordTooLargeError(
                f"a record of {length} bytes exceeds this ring's {self._max_record}-byte limit"
            )
        raise_for(rc, "push a record")

    def push_many(self, records: Sequence[BytesLike]) -> int:
        """Appends records in order with one C call; returns how many went in.

        All or prefix: it stops at the first record that does not fit now, so the records from
        the returned index on were not written (push them later, or drop them). The consumer
        sees the pushed ones all at once. A record longer than ``max_record`` raises
        RecordTooLargeError before any record is pushed; a bad record raises as ``push`` does.
        """
        data, lengths = c_packed(records)
        c_lengths = _from_buffer("uint32_t[]", lengths)
        with self._push_lock:
            ring = self._ring
            if ring is None:
                raise ClosedError("the ring is closed")
            pushed: int = _push_packed(ring, data, len(data), c_lengths, len(lengths))
        if pushed >= 0:
            return pushed
        if pushed == lib.SYN_ETOOBIG:
            length = next(n for n in lengths if n > self._max_record)
            raise RecordTooLargeError(
                f"a record of {length} bytes exceeds this ring's {self._max_record}-byte limit"
            )
        raise_for(pushed, "push records")

    def pop(self) -> bytes | None:
        """Removes and returns the oldest record, or None when the ring is empty."""
        records = self.drain(1)
        return records[0] if records else None

    def drain(self, max_records: int = 1024) -> list[bytes]:
        """Removes and returns up to ``max_records`` of the oldest records (oldest first)."""
        limit = _as_uint(max_records, "max_records")
        with self._pop_lock:
            return self._reader.read(
                lib.syn_ring_peek_batch, lib.syn_ring_consume, self._live(), limit
            )

    def close(self) -> None:
        """Frees the ring; later calls raise ClosedError. Safe to call twice."""
        with self._push_lock, self._pop_lock:
            if self._ring is not None:
                ffi.release(self._ring)
                self._ring = None

    def _live(self) -> Any:
        if self._ring is None:
            raise ClosedError("the ring is closed")
        return self._ring


def _as_uint(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value
