"""Byte buffers crossing into C: zero-copy views of caller data going in, and records read in
place coming out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._lib import ffi
from .errors import raise_for

BytesLike = bytes | bytearray | memoryview

# Records described per C call when draining.
_PEEK_BATCH = 1024


def c_bytes(data: BytesLike) -> tuple[Any, int]:
    """``(pointer-compatible object, length in bytes)`` for data, without copying it.

    ``bytes`` go to C as they are; other buffers must be C-contiguous.
    """
    if type(data) is bytes:  # cffi passes bytes as a char pointer
        return data, len(data)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, bytearray or memoryview, not {type(data).__name__}")
    view = memoryview(data)
    if not view.c_contiguous:
        raise ValueError("the buffer must be C-contiguous")
    return ffi.from_buffer(view), view.nbytes


class RecordReader:
    """Copies records straight out of a ring's storage, once each.

    ``peek(handle, pairs, n)`` (a C function of ring.h's ``syn_ring_peek_batch`` contract)
    describes the oldest records as (offset, length) pairs without consuming them; slicing one
    cffi buffer over the storage turns each into ``bytes``, and ``consume(handle, n)`` then
    releases them. One C call per batch and one copy per record, whatever the record size. The
    caller holds the consumer lock.
    """

    def __init__(self, storage: Any, capacity: int) -> None:
        self._storage = ffi.buffer(ffi.cast("char *", storage), capacity)
        self._capacity = capacity
        self._pairs = ffi.new("uint64_t[]", 2 * _PEEK_BATCH)

    def read(
        self,
        peek: Callable[[Any, Any, int], int],
        consume: Callable[[Any, int], int],
        handle: Any,
        limit: int,
    ) -> list[bytes]:
        """Up to ``limit`` of the oldest records, oldest first."""
        records: list[bytes] = []
        append = records.append
        storage, capacity = self._storage, self._capacity
        while len(records) < limit:
            wanted = min(limit - len(records), _PEEK_BATCH)
            count = peek(handle, self._pairs, wanted)
            if count <= 0:
                break
            pairs = ffi.unpack(self._pairs, 2 * count)
            for i in range(0, 2 * count, 2):
                start = pairs[i]
                end = start + pairs[i + 1]
                if end <= capacity:
                    append(storage[start:end])
                else:  # the record wraps past the end of the storage
                    append(storage[start:capacity] + storage[: end - capacity])
            rc = consume(handle, count)
            if rc != 0:
                raise_for(rc, "release records")
            if count < wanted:
                break  # the ring is empty
        return records
