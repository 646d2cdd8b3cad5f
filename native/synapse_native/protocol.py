"""The Synapse wire protocol, version 1: frames as dataclasses, a codec that does no I/O.

``docs/PROTOCOL.md`` is the byte-level specification; in short:

- A frame is a 32-byte header (magic ``b"SYNP"``, version, message type, payload length, seq,
  timestamp, step, rank, flags; all little-endian) followed by the payload.
- Payloads start 8-aligned and every array in them is aligned to its element size from the
  frame start, so decoding returns numpy views on the frame bytes instead of copies.
- Limits (payload size, site and layer counts, text length) are checked before anything is
  allocated; every count must match the payload length exactly.
- Frames of unknown or reserved types are skipped by length; any other violation raises
  ``ProtocolError`` and the connection is not trusted again.

Producers call ``encode``; consumers call ``decode_frame`` on one whole frame or feed a
``Decoder`` with stream bytes. This module imports neither torch nor Qt.
"""

from __future__ import annotations

from ._decode import Frame, decode_frame
from ._encode import encode
from ._handshake import AUTH_CONTEXT, check_hello_mac, hello_mac, negotiate_version, new_challenge
from ._layout import METRIC_DTYPE, PROBE_CLIENT_DTYPE, SITE_DTYPE, SUMMARY_DTYPE
from ._messages import (
    AttentionPattern,
    BlockGradNorms,
    Control,
    ControlAck,
    ControlState,
    ErrorReport,
    HeadStats,
    Hello,
    LayerSummaryBatch,
    Message,
    ModelMeta,
    MoeRouting,
    ProbeStats,
    ResidualTokens,
    SiteInfo,
    SparseActivations,
    TrainingMetrics,
    grid_shape,
    probe_client_records,
    summary_records,
)
from ._stream import Decoder
from ._wire import (
    HEADER,
    HEADER_SIZE,
    HIST_BINS,
    MAGIC,
    MAX_ATTENTION_PAIRS,
    MAX_EXPERTS,
    MAX_HEADS,
    MAX_HELLO_NAME,
    MAX_LAYERS,
    MAX_METRICS,
    MAX_PAYLOAD,
    MAX_SAMPLED_TOKENS,
    MAX_SITES,
    MAX_TEXT,
    MAX_TOKEN_BYTES,
    METRIC_NAME_SIZE,
    RESERVED_TYPES,
    VERSION,
    AckStatus,
    AuthMode,
    Capability,
    ControlField,
    ErrorCode,
    Header,
    HeaderFlag,
    MsgType,
    ProtocolError,
    Role,
    SiteKind,
    SummaryFlag,
    peek_header,
)

__all__ = [
    "AUTH_CONTEXT",
    "HEADER",
    "HEADER_SIZE",
    "HIST_BINS",
    "MAGIC",
    "MAX_ATTENTION_PAIRS",
    "MAX_EXPERTS",
    "MAX_HEADS",
    "MAX_HELLO_NAME",
    "MAX_LAYERS",
    "MAX_METRICS",
    "MAX_PAYLOAD",
    "MAX_SAMPLED_TOKENS",
    "MAX_SITES",
    "MAX_TEXT",
    "MAX_TOKEN_BYTES",
    "METRIC_DTYPE",
    "METRIC_NAME_SIZE",
    "PROBE_CLIENT_DTYPE",
    "RESERVED_TYPES",
    "SITE_DTYPE",
    "SUMMARY_DTYPE",
    "VERSION",
    "AckStatus",
    "AttentionPattern",
    "AuthMode",
    "BlockGradNorms",
    "Capability",
    "Control",
    "ControlAck",
    "ControlField",
    "ControlState",
    "Decoder",
    "ErrorCode",
    "ErrorReport",
    "Frame",
    "HeadStats",
    "Header",
    "HeaderFlag",
    "Hello",
    "LayerSummaryBatch",
    "Message",
    "ModelMeta",
    "MoeRouting",
    "MsgType",
    "ProbeStats",
    "ProtocolError",
    "ResidualTokens",
    "Role",
    "SiteInfo",
    "SiteKind",
    "SparseActivations",
    "SummaryFlag",
    "TrainingMetrics",
    "check_hello_mac",
    "decode_frame",
    "encode",
    "grid_shape",
    "hello_mac",
    "negotiate_version",
    "new_challenge",
    "peek_header",
    "probe_client_records",
    "summary_records",
]
