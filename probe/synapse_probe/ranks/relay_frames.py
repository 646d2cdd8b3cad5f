"""A job's rank seen in full: its step frames packed for the trip to the serving rank.

The relayed rank encodes its own step frames (sparse activations and the lens frames) into one
byte string; the serving rank splits and decodes it, then broadcasts the messages under the
relayed rank's number (``Job``, ``Server.relay_step``). Summaries are not relayed: they are
merged.
"""

from __future__ import annotations

from collections.abc import Iterable

from synapse_native.protocol import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    Message,
    MsgType,
    ProtocolError,
    decode_frame,
    encode,
    peek_header,
)

RELAYED_TYPES = frozenset(
    int(t)
    for t in (
        MsgType.SPARSE_ACTIVATIONS,
        MsgType.ATTENTION,
        MsgType.HEAD_STATS,
        MsgType.RESIDUAL,
        MsgType.MOE_ROUTING,
    )
)
MAX_BYTES = 1 << 30  # one step's relayed frames: beyond this, the sender is not a probe


def pack(messages: Iterable[Message], *, step: int, rank: int) -> bytes:
    """The frames of ``messages`` that are relayed, encoded and joined."""
    return b"".join(
        encode(m, seq=0, step=step, rank=rank) for m in messages if int(m.TYPE) in RELAYED_TYPES
    )


def unpack(data: bytes) -> list[Message]:
    """The messages ``pack`` joined; ProtocolError on anything else."""
    view, offset = memoryview(data), 0
    messages: list[Message] = []
    while offset < len(view):
        header = peek_header(view[offset:], max_payload=MAX_PAYLOAD)
        end = offset + HEADER_SIZE + header.payload_length
        frame = decode_frame(view[offset:end]) if end <= len(view) else None
        if frame is None or int(header.msg_type) not in RELAYED_TYPES:
            raise ProtocolError(f"relayed frames end in a partial or foreign frame at {offset}")
        messages.append(frame.message)
        offset = end
    return messages
