"""Byte buffers crossing into C: zero-copy views of caller data going in, and records read in
place coming out."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._lib import ffi
from .errors import RecordTooLargeError, raise_for

BytesLike = bytes | bytearray | memoryview

# The array typecode of uint32_t, the C type of a batch's record lengths.
_U32 = next(code for code in "IL" if array(code).itemsize == 4)
_BYTES_ONLY = {bytes}
_BYTES_LIKE = (bytes, bytearray, memoryview)

# Records described per C call when draining.
_PEEK_BATCH = 1024


def c_bytes(data: BytesLike) -> tuple[Any, int]:
    """``(pointer-compatible object, length in bytes)`` for data, without copying it.

    ``bytes`` go to C as they are; other buffers must be C-contiguous.
    """
    if type(data) is bytes:  # cffi passes bytes as a char pointer
        return data, len(data)
    view = _checked_view(data)
    return ffi.from_buffer(view), view.nbytes


def _checked_view(data: BytesLike) -> memoryview:
    if not isinstance(data, _BYTES_LIKE):
        raise TypeError(f"expected bytes, bytearray or memoryview, not {type(data).__name__}")
    view = memoryview(data)
    if not view.c_contiguous:
        raise ValueError("the buffer must be C-contiguous")
    return view


def c_packed(records: Sequence[BytesLike]) -> tuple[bytes, array[int]]:
    """``(data, lengths)`` for the batched C calls: the records joined end to end, and a
    ``uint32_t`` array of their lengths in bytes (pass it as ``ffi.from_buffer("uint32_t[]",
    lengths)``).

    Each record must be what ``c_bytes`` accepts (TypeError / ValueError as there). A batch of
    ``bytes`` costs one ``join`` and one ``map(len)``, both in C; other buffers are checked one by
    one. Raises RecordTooLargeError for a record of 4 GiB or more (no ring takes one).
    """
    if isinstance(records, (str, *_BYTES_LIKE)):
        raise TypeError(f"expected a sequence of records, not one {type(records).__name__}")
    if not isinstance(records, (list, tuple)):
        records = list(records)
    if set(map(type, records)) <= _BYTES_ONLY:
        lengths: Iterable[int] = map(len, records)
    else:
        # Check each as push() does (a memoryview's len() counts items, not bytes, and join
        # would take any buffer).
        lengths = [_checked_view(record).nbytes for record in records]
    data = b"".join(records)
    try:
        return data, array(_U32, lengths)
    except OverflowError:
        raise RecordTooLargeError("a record of 4 GiB or more fits no ring") from None


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
