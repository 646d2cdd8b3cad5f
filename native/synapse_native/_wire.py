"""Wire constants of protocol v1: magic, limits, numbered enums, and the 32-byte frame header.

``docs/PROTOCOL.md`` is the byte-level specification; this module and ``_layout`` mirror it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import NamedTuple

MAGIC = b"SYNP"
VERSION = 1
HEADER = struct.Struct("<4sHHIIQIHH")
HEADER_FIELDS = (
    "magic",
    "version",
    "type",
    "payload_length",
    "seq",
    "timestamp_ns",
    "step",
    "rank",
    "flags",
)
HEADER_SIZE = HEADER.size  # 32

MAX_PAYLOAD = 16 * 1024 * 1024
MAX_SITES = 65536
MAX_LAYERS = 65536
MAX_TEXT = 1024
MAX_HELLO_NAME = 256
MAX_METRICS = 256
METRIC_NAME_SIZE = 24
HIST_BINS = 64
MAX_SAMPLED_TOKENS = 128
MAX_TOKEN_BYTES = 64
MAX_ATTENTION_PAIRS = 256
MAX_HEADS = 1024
MAX_EXPERTS = 1024
SEQ_MODULUS = 1 << 32


class ProtocolError(ValueError):
    """Bytes that break the wire protocol, or a message the wire cannot carry."""


class MsgType(IntEnum):
    """Message type (header offset 6). Reserved types are skipped by length in v1."""

    HELLO = 1
    MODEL_META = 2
    LAYER_SUMMARY_BATCH = 3
    SPARSE_ACTIVATIONS = 4
    CONTROL = 5
    CONTROL_ACK = 6
    PROBE_STATS = 7
    ERROR = 8
    BLOCK_GRAD_NORMS = 9
    ATTENTION = 16
    RESIDUAL = 17
    MOE_ROUTING = 18
    HEAD_STATS = 19
    PROBE_COST = 20
    OPTIMIZER_STATS = 28
    CAPTURE_REQUEST = 29
    CAPTURE_DONE = 30
    ACTION_LIST = 31
    TRAINING_METRICS = 32
    ACTION_REQUEST = 33
    ACTION_RESULT = 34
    RANK_SKEW = 36
    JOB_STATUS = 37


# Types named for later versions that this build skips by length (none at present).
RESERVED_TYPES: frozenset[MsgType] = frozenset()


class HeaderFlag(IntFlag):
    """Header flag bits (offset 30). Other bits are reserved: senders write 0, receivers ignore."""

    END_OF_STEP = 1
    # A frame replayed from the trainer's backlog on connect (sent before this client joined).
    BACKLOG = 2
    # The payload is merged over every rank of a job (the header's rank is the serving rank).
    JOB = 4


class SiteKind(IntEnum):
    """What a hooked site is. Decoders keep unknown numbers as plain ints."""

    OTHER = 0
    ATTN = 1
    MLP = 2
    RESIDUAL = 3
    # Reserved for later models; valid on the wire, no producer emits them yet.
    EMBED = 4
    ROUTER = 5
    EXPERT = 6


class Role(IntEnum):
    """Who sent a HELLO."""

    TRAINER = 1
    VIEWER = 2


class AuthMode(IntEnum):
    """How a viewer proves it holds the trainer's token."""

    NONE = 0
    HMAC_SHA256 = 1


class Capability(IntFlag):
    """What a peer can send or act on (HELLO ``capabilities``)."""

    SUMMARIES = 1
    SPARSE = 2
    CONTROL = 4
    GRADIENTS = 8
    PROBE_STATS = 16
    # A trainer that sends ATTENTION and HEAD_STATS.
    ATTENTION = 32
    # A trainer that sends RESIDUAL.
    RESIDUAL = 64
    # A trainer that sends MOE_ROUTING.
    MOE = 128
    # v1: a trainer that sends TRAINING_METRICS.
    METRICS = 256
    # v1: a trainer that sends BLOCK_GRAD_NORMS.
    GRAD_NORMS = 512
    # v1: a trainer that replays its backlog (frames flagged BACKLOG) to a viewer on connect.
    BACKLOG = 1024
    # v1: a trainer whose overhead governor sends PROBE_COST and acts on CONTROL's BUDGET.
    GOVERNOR = 2048
    # v1: a trainer that acts on CONTROL's THRESHOLD_MODE.
    THRESHOLD_MODES = 4096
    # v1: a trainer that sends OPTIMIZER_STATS.
    OPTIMIZER = 8192
    # v1: a job's serving rank: merged summaries (header flag JOB), RANK_SKEW, JOB_STATUS.
    JOB = 16384
    # v1: a trainer that answers CAPTURE_REQUEST with a capture file (attach(capture=True)).
    CAPTURE = 32768
    # v1: a trainer that sends ACTION_LIST and runs ACTION_REQUESTs (probe.on_request).
    ACTIONS = 65536
    # v1: a job's serving rank that relays one chosen rank's full frames (CONTROL FULL_RANK).
    RANK_RELAY = 131072


class SummaryFlag(IntFlag):
    """Per-record flags of LAYER_SUMMARY_BATCH."""

    GRADIENT = 1
    # statistics of a fixed strided sample of the tokens (NaN/Inf still counted on all)
    SAMPLED = 2


class ControlField(IntFlag):
    """Which CONTROL fields are present."""

    THRESHOLD = 1
    RATE = 2
    SITE_KINDS = 4
    PAUSED = 8
    TOP_K = 16
    THRESHOLD_MODE = 32
    BUDGET = 64
    FULL_RANK = 128


KNOWN_CONTROL_FIELDS = int(
    ControlField.THRESHOLD
    | ControlField.RATE
    | ControlField.SITE_KINDS
    | ControlField.PAUSED
    | ControlField.TOP_K
    | ControlField.THRESHOLD_MODE
    | ControlField.BUDGET
    | ControlField.FULL_RANK
)
NO_FULL_RANK = 0xFFFFFFFF  # CONTROL ``full_rank``: no rank relayed in full


class ThresholdMode(IntEnum):
    """How the CONTROL threshold selects a site's neurons (the value means a different thing
    in each mode). Decoders keep unknown numbers as plain ints; the trainer rejects them."""

    # neurons whose mean |x| is above the value
    ABSOLUTE = 0
    # neurons whose mean |x| is above the site's neuron mean + value x their standard deviation
    SIGMA = 1
    # the value (a fraction, 0..1) of the site's neurons with the largest mean |x|
    TOP_FRACTION = 2


class AckStatus(IntEnum):
    """CONTROL_ACK status."""

    APPLIED = 0
    REJECTED = 1


class ErrorCode(IntEnum):
    """Why a peer sends ERROR and closes. Decoders keep unknown codes as plain ints."""

    VERSION = 1
    AUTH = 2
    MALFORMED = 3
    TOO_MANY_CLIENTS = 4
    INTERNAL = 5


_MSG_TYPES = {int(t): t for t in MsgType}


@dataclass(frozen=True, slots=True)
class Header:
    """The fixed 32-byte frame header (the magic is implied)."""

    msg_type: MsgType | int
    payload_length: int
    seq: int
    timestamp_ns: int
    step: int
    rank: int
    flags: int
    version: int = VERSION

    @property
    def end_of_step(self) -> bool:
        """True on the last frame of a sampled step."""
        return bool(self.flags & HeaderFlag.END_OF_STEP)


# The frames whose header step is the step they measured (docs/PROTOCOL.md section 2).
STEP_TYPES = frozenset(
    int(t)
    for t in (
        MsgType.LAYER_SUMMARY_BATCH,
        MsgType.SPARSE_ACTIVATIONS,
        MsgType.BLOCK_GRAD_NORMS,
        MsgType.ATTENTION,
        MsgType.RESIDUAL,
        MsgType.MOE_ROUTING,
        MsgType.HEAD_STATS,
        MsgType.TRAINING_METRICS,
    )
)


class HeaderFields(NamedTuple):
    """The routing fields of a frame's header, read without checks (``header_fields``)."""

    msg_type: int
    seq: int
    timestamp_ns: int
    step: int
    rank: int
    flags: int


_ROUTING = struct.Struct("<6xH4xIQIHH")  # HEADER's fields after magic, version and length
assert _ROUTING.size == HEADER.size


def header_fields(frame: bytes | bytearray | memoryview) -> HeaderFields:
    """The type, seq, timestamp, step, rank and flags of a whole frame, read without checks:
    for frames a pump or ``peek_header`` has already checked (a batch of thousands a tick)."""
    return HeaderFields._make(_ROUTING.unpack_from(frame))


def sparse_site(frame: bytes | bytearray | memoryview) -> int:
    """The site id of a checked SPARSE_ACTIVATIONS frame (its payload's first field)."""
    return int.from_bytes(frame[HEADER_SIZE : HEADER_SIZE + 4], "little")


def peek_header(buf: bytes | bytearray | memoryview, *, max_payload: int = MAX_PAYLOAD) -> Header:
    """Read and check the header at the start of ``buf`` (magic, version, payload limit).

    Only the first 32 bytes are read, so a stream reader can reject a frame before its body.
    """
    if len(buf) < HEADER_SIZE:
        raise ProtocolError(f"truncated header: {len(buf)} bytes, {HEADER_SIZE} expected")
    magic, version, msg_type, length, seq, timestamp_ns, step, rank, flags = HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {bytes(magic)!r} (expected {MAGIC!r})")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version} (this build speaks {VERSION})")
    if length > max_payload:
        raise ProtocolError(f"payload length {length} exceeds the limit of {max_payload} bytes")
    return Header(_MSG_TYPES.get(msg_type, msg_type), length, seq, timestamp_ns, step, rank, flags)
