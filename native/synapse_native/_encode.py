"""Encoding a message into one frame: header + payload, joined in a single copy.

The payload comes from the message's family module (``_messages.CODECS``). The encoder refuses
anything the decoder would reject, so a frame it writes always decodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._layout import Payload, pack_fields
from ._messages import CODECS, Message
from ._wire import (
    HEADER,
    HEADER_FIELDS,
    MAGIC,
    MAX_PAYLOAD,
    SEQ_MODULUS,
    VERSION,
    HeaderFlag,
    ProtocolError,
)

_KNOWN_HEADER_FLAGS = int(HeaderFlag.END_OF_STEP | HeaderFlag.BACKLOG | HeaderFlag.JOB)

_ENCODERS: dict[type, Callable[[Any], Payload]] = {
    codec.message: codec.encode for codec in CODECS.values()
}


def encode(
    message: Message,
    *,
    seq: int = 0,
    step: int = 0,
    rank: int = 0,
    flags: int = 0,
    timestamp_ns: int | None = None,
) -> bytes:
    """One frame carrying ``message``. ``seq`` is taken modulo 2**32; ``timestamp_ns`` None: now.

    Raises ProtocolError for anything the wire cannot carry (a value out of its field's range,
    a text over its limit, a payload over MAX_PAYLOAD, reserved header flag bits).
    """
    encoder = _ENCODERS.get(type(message))
    if encoder is None:
        raise TypeError(f"not a protocol message: {type(message).__name__}")
    size, parts = encoder(message)
    if size > MAX_PAYLOAD:
        raise ProtocolError(
            f"{message.TYPE.name} payload of {size} bytes exceeds the limit of {MAX_PAYLOAD} bytes"
        )
    if flags & ~_KNOWN_HEADER_FLAGS:
        raise ProtocolError(f"reserved header flag bits set: {flags & ~_KNOWN_HEADER_FLAGS:#x}")
    if timestamp_ns is None:
        timestamp_ns = time.time_ns()
    head = pack_fields(
        HEADER,
        "header",
        HEADER_FIELDS,
        (MAGIC, VERSION, message.TYPE, size, seq % SEQ_MODULUS, timestamp_ns, step, rank, flags),
    )
    return b"".join([head, *parts])
