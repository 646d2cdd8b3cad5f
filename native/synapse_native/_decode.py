"""Decoding one whole frame into a ``Frame``: every size is checked before anything is read.

The message comes from its family module's decoder (``_messages.CODECS``). Arrays in decoded
messages are views on the frame buffer (no copy); strings are decoded from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._messages import CODECS, Message
from ._wire import HEADER_SIZE, MAX_PAYLOAD, Header, MsgType, ProtocolError, peek_header

Buffer = bytes | bytearray | memoryview

_DECODERS: dict[int, Callable[[memoryview, int], Message]] = {
    msg_type: codec.decode for msg_type, codec in CODECS.items()
}


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: its header and its message."""

    header: Header
    message: Message


def byte_view(buf: Buffer) -> memoryview:
    """A flat unsigned-byte view of ``buf`` (no copy)."""
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def type_name(msg_type: int) -> str:
    """``MsgType`` name for known types, ``type N`` otherwise."""
    return msg_type.name if isinstance(msg_type, MsgType) else f"type {msg_type}"


def decode_frame(buf: Buffer, *, max_payload: int = MAX_PAYLOAD) -> Frame | None:
    """Decode exactly one whole frame; None when its type is unknown or reserved (skipped).

    Arrays in the message are views on ``buf``: read-only for ``bytes``, and changing with
    ``buf`` when it is mutable, so do not reuse a mutable ``buf`` while the message lives.
    """
    view = byte_view(buf)
    return decode_body(peek_header(view, max_payload=max_payload), view)


def decode_body(header: Header, frame: memoryview) -> Frame | None:
    """Decode ``frame`` (all of it) whose ``header`` is already checked."""
    expected = HEADER_SIZE + header.payload_length
    if len(frame) != expected:
        name = type_name(header.msg_type)
        if len(frame) < expected:
            raise ProtocolError(
                f"truncated {name} frame: {header.payload_length} payload bytes announced, "
                f"{len(frame) - HEADER_SIZE} present"
            )
        raise ProtocolError(f"{len(frame) - expected} trailing bytes after a {name} frame")
    decode = _DECODERS.get(header.msg_type)
    if decode is None:
        return None
    return Frame(header, decode(frame, header.payload_length))
