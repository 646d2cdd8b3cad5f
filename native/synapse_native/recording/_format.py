"""What Synapse puts in an MCAP file: channels, metadata, the step index (``docs/RECORDING.md``)."""

from __future__ import annotations

import struct

import numpy as np
from numpy.typing import NDArray

from .._wire import HEADER, MAGIC, MAX_PAYLOAD, MsgType, ProtocolError

PROFILE = "synapse"
MESSAGE_ENCODING = "synapse-frame-v1"
METADATA_NAME = "synapse"
STEP_INDEX_NAME = "synapse-step-index"
STEP_INDEX_MEDIA_TYPE = "application/x-synapse-step-index"

# The writer closes a chunk once it holds its chunk size (at most MAX_CHUNK_SIZE), so a chunk
# is at most that plus one record holding a whole frame. A chunk header claiming more is damage:
# the reader never holds more than one chunk's bytes at once.
MAX_CHUNK_SIZE = 16 << 20
MAX_CHUNK_BYTES = MAX_CHUNK_SIZE + MAX_PAYLOAD + (1 << 20)


# One step-index entry: u32 step, u32 zero, u64 log time of the step's first frame (ns).
STEP_ENTRY = np.dtype([("step", "<u4"), ("reserved", "<u4"), ("log_time_ns", "<u8")])

_HEAD = struct.Struct("<4sHHIIQIHH")
assert _HEAD.format == HEADER.format


def frame_key(frame: bytes | bytearray | memoryview) -> tuple[int, int, int, int]:
    """(rank, type, step, timestamp_ns) of a wire frame; ``ProtocolError`` if it is not one."""
    if len(frame) < _HEAD.size:
        raise ProtocolError(f"a frame is at least {_HEAD.size} bytes, got {len(frame)}")
    magic, _version, msg_type, length, _seq, timestamp_ns, step, rank, _flags = _HEAD.unpack_from(
        frame
    )
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {bytes(magic)!r} (expected {MAGIC!r})")
    if length != len(frame) - _HEAD.size:
        raise ProtocolError(
            f"frame of {len(frame)} bytes announces a {length}-byte payload (not one whole frame)"
        )
    return rank, msg_type, step, timestamp_ns


def topic(rank: int, msg_type: int) -> str:
    """The channel topic of (rank, type), e.g. ``/synapse/rank0/LAYER_SUMMARY_BATCH``."""
    try:
        name = MsgType(msg_type).name
    except ValueError:
        name = f"type{msg_type}"
    return f"/synapse/rank{rank}/{name}"


def pack_step_index(steps: NDArray[np.uint32], times: NDArray[np.uint64]) -> bytes:
    """The step-index attachment: entries sorted by step."""
    entries = np.zeros(len(steps), STEP_ENTRY)
    entries["step"] = steps
    entries["log_time_ns"] = times
    return entries.tobytes()


def unpack_step_index(data: bytes) -> tuple[NDArray[np.uint32], NDArray[np.uint64]]:
    """Inverse of ``pack_step_index``; ``ValueError`` unless ``data`` is whole entries."""
    if len(data) % STEP_ENTRY.itemsize:
        raise ValueError(f"step index of {len(data)} bytes is not a multiple of 16")
    entries = np.frombuffer(data, STEP_ENTRY)
    return entries["step"].astype(np.uint32), entries["log_time_ns"].astype(np.uint64)
