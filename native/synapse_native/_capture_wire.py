"""Capture messages: CAPTURE_REQUEST (29) and CAPTURE_DONE (30), layout and codec.

A viewer asks a trainer that announces ``Capability.CAPTURE`` to write the full tensors of a few
sites at its next step; the trainer answers the requesting viewer with where the file is, or
why not. ``docs/PROTOCOL.md`` sections 5.18 and 5.19 specify the bytes. Same rules as the other
codecs: sizes checked before any read, texts UTF-8 with a limit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

import numpy as np

from ._layout import decode_text, encode_text, padded, zero_padded
from ._wire import HEADER_SIZE, MAX_TEXT, MsgType, ProtocolError

MAX_CAPTURE_SITES = 64  # site ids in one CAPTURE_REQUEST (a trainer may allow fewer)
MAX_CAPTURE_PATH = 4096  # bytes of UTF-8 in CAPTURE_DONE's path

REQUEST_FIXED = struct.Struct("<IHH")  # then site_ids u32[n], zero-padded to 8
REQUEST_FIELDS = ("request_id", "site_count", "reserved")
DONE_FIXED = struct.Struct("<IBBHQQHHI")  # then the path, padded to 8, then the text, padded
DONE_FIELDS = (
    "request_id",
    "status",
    "reserved",
    "site_count",
    "step",
    "bytes",
    "path_len",
    "text_len",
    "reserved",
)

assert REQUEST_FIXED.size == 8 and DONE_FIXED.size == 32


class CaptureStatus(IntEnum):
    """CAPTURE_DONE ``status``. Decoders keep unknown numbers as plain ints."""

    WRITTEN = 0  # the file at ``path`` holds the capture
    DISABLED = 1  # the trainer was not attached with capture=True
    BUSY = 2  # another capture is in flight
    TOO_LARGE = 3  # the tensors exceed the trainer's size cap
    BAD_REQUEST = 4  # no sites, too many, or ids the trainer does not have
    FAILED = 5  # writing failed (``text`` says why)


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    """CAPTURE_REQUEST: write the full tensors of ``site_ids`` at the next step."""

    TYPE: ClassVar[MsgType] = MsgType.CAPTURE_REQUEST

    request_id: int
    site_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CaptureDone:
    """CAPTURE_DONE: the answer to one CAPTURE_REQUEST, to the viewer that sent it.

    ``step``: the step captured; ``sites``: how many sites the file holds; ``size``: its bytes;
    ``path``: where the trainer wrote it (on the trainer's machine); ``text``: a human reason
    when ``status`` is not WRITTEN.
    """

    TYPE: ClassVar[MsgType] = MsgType.CAPTURE_DONE

    request_id: int
    status: CaptureStatus | int
    step: int = 0
    sites: int = 0
    size: int = 0
    path: str = ""
    text: str = ""


def _pack(layout: struct.Struct, what: str, *values: Any) -> bytes:
    try:
        return layout.pack(*values)
    except (struct.error, OverflowError) as exc:
        raise ProtocolError(f"{what} field out of range: {exc}") from None


def encode_capture_request(m: CaptureRequest) -> tuple[int, list[bytes | memoryview]]:
    """CAPTURE_REQUEST payload: its size and the pieces to join."""
    n = len(m.site_ids)
    if not 1 <= n <= MAX_CAPTURE_SITES:
        raise ProtocolError(f"CAPTURE_REQUEST has {n} sites (1..{MAX_CAPTURE_SITES} allowed)")
    ids = np.asarray(m.site_ids)
    if ids.dtype.kind not in "iu" or int(ids.min()) < 0 or int(ids.max()) > 0xFFFF_FFFF:
        raise ProtocolError("CAPTURE_REQUEST site_ids must be integers in 0..2**32-1")
    fixed = _pack(REQUEST_FIXED, "CAPTURE_REQUEST", m.request_id, n, 0)
    return REQUEST_FIXED.size + padded(4 * n), [fixed, zero_padded(ids.astype("<u4").tobytes())]


def encode_capture_done(m: CaptureDone) -> tuple[int, list[bytes | memoryview]]:
    """CAPTURE_DONE payload: its size and the pieces to join."""
    path = encode_text(m.path, "CAPTURE_DONE path", MAX_CAPTURE_PATH)
    text = encode_text(m.text, "CAPTURE_DONE text", MAX_TEXT)
    fixed = _pack(
        DONE_FIXED,
        "CAPTURE_DONE",
        *(m.request_id, int(m.status), 0, m.sites, m.step, m.size, len(path), len(text), 0),
    )
    size = DONE_FIXED.size + padded(len(path)) + padded(len(text))
    return size, [fixed, zero_padded(path), zero_padded(text)]


def decode_capture_request(frame: memoryview, size: int) -> CaptureRequest:
    """CAPTURE_REQUEST from a whole frame whose payload is ``size`` bytes."""
    if size < REQUEST_FIXED.size:
        raise ProtocolError(f"CAPTURE_REQUEST payload is {size} bytes, at least 8 expected")
    request_id, n, _ = REQUEST_FIXED.unpack_from(frame, HEADER_SIZE)
    if not 1 <= n <= MAX_CAPTURE_SITES:
        raise ProtocolError(f"CAPTURE_REQUEST announces {n} sites (1..{MAX_CAPTURE_SITES})")
    if size != REQUEST_FIXED.size + padded(4 * n):
        raise ProtocolError(
            f"CAPTURE_REQUEST payload is {size} bytes, 8 + {padded(4 * n)} expected"
        )
    ids = np.frombuffer(frame, "<u4", n, HEADER_SIZE + REQUEST_FIXED.size)
    return CaptureRequest(request_id, tuple(int(i) for i in ids))


_STATUSES = {int(s): s for s in CaptureStatus}


def decode_capture_done(frame: memoryview, size: int) -> CaptureDone:
    """CAPTURE_DONE from a whole frame whose payload is ``size`` bytes."""
    if size < DONE_FIXED.size:
        raise ProtocolError(f"CAPTURE_DONE payload is {size} bytes, at least 32 expected")
    request_id, status, _, sites, step, nbytes, path_len, text_len, _ = DONE_FIXED.unpack_from(
        frame, HEADER_SIZE
    )
    if path_len > MAX_CAPTURE_PATH:
        raise ProtocolError(f"CAPTURE_DONE path_len is {path_len} (limit {MAX_CAPTURE_PATH})")
    if text_len > MAX_TEXT:
        raise ProtocolError(f"CAPTURE_DONE text_len is {text_len} (limit {MAX_TEXT})")
    expected = DONE_FIXED.size + padded(path_len) + padded(text_len)
    if size != expected:
        raise ProtocolError(f"CAPTURE_DONE payload is {size} bytes, {expected} expected")
    start = HEADER_SIZE + DONE_FIXED.size
    path = decode_text(frame, start, path_len, "CAPTURE_DONE path")
    text = decode_text(frame, start + padded(path_len), text_len, "CAPTURE_DONE text")
    return CaptureDone(request_id, _STATUSES.get(status, status), step, sites, nbytes, path, text)
