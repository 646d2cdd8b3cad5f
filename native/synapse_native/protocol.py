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

from ._action_wire import MAX_ACTIONS, ActionList, ActionRequest, ActionResult, ActionStatus
from ._action_wire import check_name as check_action_name
from ._activation_wire import SUMMARY_DTYPE, LayerSummaryBatch, SparseActivations, summary_records
from ._attention_wire import AttentionPattern, HeadStats, ResidualTokens
from ._capture_wire import MAX_CAPTURE_SITES, CaptureDone, CaptureRequest, CaptureStatus
from ._connection_wire import ErrorReport, Hello
from ._control_wire import Control, ControlAck, ControlState
from ._decode import Frame, decode_frame
from ._encode import encode
from ._handshake import AUTH_CONTEXT, check_hello_mac, hello_mac, negotiate_version, new_challenge
from ._job_wire import (
    NO_RANK,
    SKEW_DTYPE,
    JobState,
    JobStatus,
    RankSkew,
    SkewStatistic,
    skew_records,
)
from ._messages import Message
from ._meta_wire import SITE_DTYPE, ModelMeta, SiteInfo, grid_shape
from ._metrics_wire import METRIC_DTYPE, BlockGradNorms, TrainingMetrics
from ._optimizer_wire import OptimizerStats
from ._probe_wire import PROBE_CLIENT_DTYPE, ProbeCost, ProbeStats, probe_client_records
from ._routing_wire import MoeRouting
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
    NO_FULL_RANK,
    RESERVED_TYPES,
    STEP_TYPES,
    VERSION,
    AckStatus,
    AuthMode,
    Capability,
    ControlField,
    ErrorCode,
    Header,
    HeaderFields,
    HeaderFlag,
    MsgType,
    ProtocolError,
    Role,
    SiteKind,
    SummaryFlag,
    ThresholdMode,
    header_fields,
    peek_header,
    sparse_site,
)

__all__ = [
    "AUTH_CONTEXT",
    "HEADER",
    "HEADER_SIZE",
    "HIST_BINS",
    "MAGIC",
    "MAX_ACTIONS",
    "MAX_ATTENTION_PAIRS",
    "MAX_CAPTURE_SITES",
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
    "NO_FULL_RANK",
    "NO_RANK",
    "PROBE_CLIENT_DTYPE",
    "RESERVED_TYPES",
    "SITE_DTYPE",
    "SKEW_DTYPE",
    "STEP_TYPES",
    "SUMMARY_DTYPE",
    "VERSION",
    "AckStatus",
    "ActionList",
    "ActionRequest",
    "ActionResult",
    "ActionStatus",
    "AttentionPattern",
    "AuthMode",
    "BlockGradNorms",
    "Capability",
    "CaptureDone",
    "CaptureRequest",
    "CaptureStatus",
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
    "HeaderFields",
    "HeaderFlag",
    "Hello",
    "JobState",
    "JobStatus",
    "LayerSummaryBatch",
    "Message",
    "ModelMeta",
    "MoeRouting",
    "MsgType",
    "OptimizerStats",
    "ProbeCost",
    "ProbeStats",
    "ProtocolError",
    "RankSkew",
    "ResidualTokens",
    "Role",
    "SiteInfo",
    "SiteKind",
    "SkewStatistic",
    "SparseActivations",
    "SummaryFlag",
    "ThresholdMode",
    "TrainingMetrics",
    "check_action_name",
    "check_hello_mac",
    "decode_frame",
    "encode",
    "grid_shape",
    "header_fields",
    "hello_mac",
    "negotiate_version",
    "new_challenge",
    "peek_header",
    "probe_client_records",
    "skew_records",
    "sparse_site",
    "summary_records",
]
