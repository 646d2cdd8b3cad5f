"""Every v1 message: the ``Message`` union and the codec table, one row per message type.

Each message family lives in its own ``_<family>_wire.py`` module: the dataclasses, the byte
layouts only it uses, its encoders and its decoders. ``CODECS`` is the one place that says which
family handles which ``MsgType``; ``_encode`` and ``_decode`` dispatch through it.

Messages holding arrays compare by identity (``eq=False``); compare their arrays with numpy.
Decoded arrays are read-only views on the frame buffer when that buffer is ``bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ._action_wire import (
    ActionList,
    ActionRequest,
    ActionResult,
    decode_action_list,
    decode_action_request,
    decode_action_result,
    encode_action_list,
    encode_action_request,
    encode_action_result,
)
from ._activation_wire import (
    LayerSummaryBatch,
    SparseActivations,
    decode_sparse,
    decode_summary_batch,
    encode_sparse,
    encode_summary_batch,
)
from ._attention_wire import (
    AttentionPattern,
    HeadStats,
    ResidualTokens,
    decode_attention,
    decode_head_stats,
    decode_residual,
    encode_attention,
    encode_head_stats,
    encode_residual,
)
from ._capture_wire import (
    CaptureDone,
    CaptureRequest,
    decode_capture_done,
    decode_capture_request,
    encode_capture_done,
    encode_capture_request,
)
from ._connection_wire import (
    ErrorReport,
    Hello,
    decode_error,
    decode_hello,
    encode_error,
    encode_hello,
)
from ._control_wire import (
    Control,
    ControlAck,
    decode_control,
    decode_control_ack,
    encode_control,
    encode_control_ack,
)
from ._job_wire import (
    JobStatus,
    RankSkew,
    decode_job_status,
    decode_rank_skew,
    encode_job_status,
    encode_rank_skew,
)
from ._layout import Payload
from ._meta_wire import ModelMeta, decode_model_meta, encode_model_meta
from ._metrics_wire import (
    BlockGradNorms,
    TrainingMetrics,
    decode_block_grad_norms,
    decode_training_metrics,
    encode_block_grad_norms,
    encode_training_metrics,
)
from ._optimizer_wire import OptimizerStats, decode_optimizer_stats, encode_optimizer_stats
from ._probe_wire import (
    ProbeCost,
    ProbeStats,
    decode_probe_cost,
    decode_probe_stats,
    encode_probe_cost,
    encode_probe_stats,
)
from ._routing_wire import MoeRouting, decode_moe_routing, encode_moe_routing
from ._wire import MsgType

# Every message class is re-exported here too (``_handshake`` imports ``Hello`` from this module).
__all__ = ["CODECS", "Codec", "Message"]

Message = (
    Hello
    | ModelMeta
    | LayerSummaryBatch
    | SparseActivations
    | Control
    | ControlAck
    | ProbeStats
    | ProbeCost
    | ErrorReport
    | BlockGradNorms
    | TrainingMetrics
    | AttentionPattern
    | HeadStats
    | ResidualTokens
    | MoeRouting
    | OptimizerStats
    | RankSkew
    | JobStatus
    | CaptureRequest
    | CaptureDone
    | ActionList
    | ActionRequest
    | ActionResult
)


class Codec(NamedTuple):
    """How one message type goes on the wire: its dataclass, its encoder and its decoder.

    ``encode(message)`` gives the payload's size and the pieces to join; ``decode(frame, size)``
    reads the message from a whole frame whose payload is ``size`` bytes.
    """

    message: type[Message]
    encode: Callable[[Any], Payload]
    decode: Callable[[memoryview, int], Message]


CODECS: dict[MsgType, Codec] = {
    MsgType.HELLO: Codec(Hello, encode_hello, decode_hello),
    MsgType.MODEL_META: Codec(ModelMeta, encode_model_meta, decode_model_meta),
    MsgType.LAYER_SUMMARY_BATCH: Codec(
        LayerSummaryBatch, encode_summary_batch, decode_summary_batch
    ),
    MsgType.SPARSE_ACTIVATIONS: Codec(SparseActivations, encode_sparse, decode_sparse),
    MsgType.CONTROL: Codec(Control, encode_control, decode_control),
    MsgType.CONTROL_ACK: Codec(ControlAck, encode_control_ack, decode_control_ack),
    MsgType.PROBE_STATS: Codec(ProbeStats, encode_probe_stats, decode_probe_stats),
    MsgType.PROBE_COST: Codec(ProbeCost, encode_probe_cost, decode_probe_cost),
    MsgType.ERROR: Codec(ErrorReport, encode_error, decode_error),
    MsgType.BLOCK_GRAD_NORMS: Codec(
        BlockGradNorms, encode_block_grad_norms, decode_block_grad_norms
    ),
    MsgType.TRAINING_METRICS: Codec(
        TrainingMetrics, encode_training_metrics, decode_training_metrics
    ),
    MsgType.ATTENTION: Codec(AttentionPattern, encode_attention, decode_attention),
    MsgType.HEAD_STATS: Codec(HeadStats, encode_head_stats, decode_head_stats),
    MsgType.RESIDUAL: Codec(ResidualTokens, encode_residual, decode_residual),
    MsgType.MOE_ROUTING: Codec(MoeRouting, encode_moe_routing, decode_moe_routing),
    MsgType.OPTIMIZER_STATS: Codec(OptimizerStats, encode_optimizer_stats, decode_optimizer_stats),
    MsgType.RANK_SKEW: Codec(RankSkew, encode_rank_skew, decode_rank_skew),
    MsgType.JOB_STATUS: Codec(JobStatus, encode_job_status, decode_job_status),
    MsgType.CAPTURE_REQUEST: Codec(CaptureRequest, encode_capture_request, decode_capture_request),
    MsgType.CAPTURE_DONE: Codec(CaptureDone, encode_capture_done, decode_capture_done),
    MsgType.ACTION_LIST: Codec(ActionList, encode_action_list, decode_action_list),
    MsgType.ACTION_REQUEST: Codec(ActionRequest, encode_action_request, decode_action_request),
    MsgType.ACTION_RESULT: Codec(ActionResult, encode_action_result, decode_action_result),
}

assert all(codec.message.TYPE is msg_type for msg_type, codec in CODECS.items())
