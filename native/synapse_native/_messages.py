"""The v1 messages as dataclasses, plus helpers that build their contents.

Messages holding arrays compare by identity (``eq=False``); compare their arrays with numpy.
Decoded arrays are read-only views on the frame buffer when that buffer is ``bytes``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ._action_wire import ActionList, ActionRequest, ActionResult
from ._capture_wire import CaptureDone, CaptureRequest
from ._job_wire import JobStatus, RankSkew
from ._layout import AUTH_DATA_SIZE, PROBE_CLIENT_DTYPE, SUMMARY_DTYPE
from ._wire import (
    VERSION,
    AuthMode,
    Capability,
    ControlField,
    ErrorCode,
    MsgType,
    Role,
    SiteKind,
)

_NO_CAPABILITIES = Capability(0)


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame each way: who is speaking, which versions and features, auth material."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO

    role: Role | int
    name: str
    capabilities: Capability = _NO_CAPABILITIES
    rank: int = 0
    world_size: int = 1
    auth: AuthMode | int = AuthMode.NONE
    auth_data: bytes = bytes(AUTH_DATA_SIZE)
    version_min: int = VERSION
    version_max: int = VERSION


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """One hooked site: where it sits, how many neurons, how the app lays them out."""

    site_id: int
    layer: int
    kind: SiteKind | int
    name: str
    neurons: int
    grid_rows: int
    grid_cols: int


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """The model's site table, sent once per connection before any statistics."""

    TYPE: ClassVar[MsgType] = MsgType.MODEL_META

    model_name: str
    n_layers: int
    sites: tuple[SiteInfo, ...]


@dataclass(frozen=True, slots=True, eq=False)
class LayerSummaryBatch:
    """Per-site statistics of one step: a 1-D array of ``SUMMARY_DTYPE`` records."""

    TYPE: ClassVar[MsgType] = MsgType.LAYER_SUMMARY_BATCH

    records: npt.NDArray[np.void]


@dataclass(frozen=True, slots=True, eq=False)
class SparseActivations:
    """Neurons of one site whose mean |x| is above ``threshold`` (at most top-k of them)."""

    TYPE: ClassVar[MsgType] = MsgType.SPARSE_ACTIVATIONS

    site_id: int
    threshold: float
    n_above: int
    indices: npt.NDArray[np.uint32]
    values: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class ControlState:
    """The trainer's streaming settings in force."""

    threshold: float
    rate_hz: float
    site_kinds: int
    paused: bool
    top_k: int
    threshold_mode: int = 0  # ``ThresholdMode``: what ``threshold`` means


@dataclass(frozen=True, slots=True)
class Control:
    """A viewer's request to change some settings; ``None`` leaves a setting as it is.

    ``unknown_fields`` holds field bits this build does not know, so the trainer can reject them.
    """

    TYPE: ClassVar[MsgType] = MsgType.CONTROL

    request_id: int
    threshold: float | None = None
    rate_hz: float | None = None
    site_kinds: int | None = None
    paused: bool | None = None
    top_k: int | None = None
    unknown_fields: int = 0
    threshold_mode: int | None = None  # ``ThresholdMode``; sent only to THRESHOLD_MODES trainers
    budget: float | None = None  # the probe's share of the step time; only to GOVERNOR trainers
    # the rank whose full frames a job's serving rank relays (``NO_FULL_RANK``: none); only to
    # RANK_RELAY trainers
    full_rank: int | None = None

    @property
    def fields(self) -> ControlField:
        """The field bits present on the wire, unknown ones included."""
        return ControlField(control_bits(self))

    def applied_to(self, state: ControlState) -> ControlState:
        """``state`` with the present fields replaced (values are not judged here)."""
        changes = {
            name: getattr(self, name)
            for name, _ in _CONTROL_BITS
            if getattr(self, name) is not None
        }
        return dataclasses.replace(state, **changes)


_CONTROL_BITS = (
    ("threshold", int(ControlField.THRESHOLD)),
    ("rate_hz", int(ControlField.RATE)),
    ("site_kinds", int(ControlField.SITE_KINDS)),
    ("paused", int(ControlField.PAUSED)),
    ("top_k", int(ControlField.TOP_K)),
    ("threshold_mode", int(ControlField.THRESHOLD_MODE)),
)


def control_bits(control: Control) -> int:
    """The CONTROL ``fields`` word of ``control`` as a plain int."""
    bits = control.unknown_fields
    for name, bit in _CONTROL_BITS:
        if getattr(control, name) is not None:
            bits |= bit
    if control.budget is not None:  # not part of ControlState: the governor keeps it
        bits |= int(ControlField.BUDGET)
    if control.full_rank is not None:  # not part of ControlState: the job keeps it
        bits |= int(ControlField.FULL_RANK)
    return bits


@dataclass(frozen=True, slots=True)
class ControlAck:
    """The trainer's answer to a CONTROL (``request_id`` 0: unsolicited state announcement)."""

    TYPE: ClassVar[MsgType] = MsgType.CONTROL_ACK

    request_id: int
    applied: bool
    state: ControlState
    error: str = ""


def _no_clients() -> npt.NDArray[np.void]:
    return np.zeros(0, PROBE_CLIENT_DTYPE)


@dataclass(frozen=True, slots=True, eq=False)
class ProbeStats:
    """The probe's own health: queue, drops, time spent on the training thread, per client."""

    TYPE: ClassVar[MsgType] = MsgType.PROBE_STATS

    frames_encoded: int
    frames_dropped: int
    queue_bytes: int
    queue_capacity: int
    probe_ns: int
    steps_sampled: int
    steps_seen: int
    clients: npt.NDArray[np.void] = field(default_factory=_no_clients)


@dataclass(frozen=True, slots=True)
class ProbeCost:
    """PROBE_COST: what the probe costs the training step, as its overhead governor sees it."""

    TYPE: ClassVar[MsgType] = MsgType.PROBE_COST

    budget: float  # share of the step time allowed (0: governor off)
    cost: float  # estimated share of the step time the probe spends at its current plan
    interval: int  # statistics measured every ``interval`` steps
    lens_interval: int  # lenses every ``lens_interval`` steps (0: no lens)
    step_ns: int  # step time without the probe
    stats_ns: int  # cost of one measured step (training thread, encoder, GPU)
    lens_ns: int  # cost of the lenses on a step they run


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """ERROR: why the sender is about to close the connection."""

    TYPE: ClassVar[MsgType] = MsgType.ERROR

    code: ErrorCode | int
    text: str


@dataclass(frozen=True, slots=True, eq=False)
class BlockGradNorms:
    """Per-block parameter-gradient L2 norms of one step (the frame's step), one per block.

    ``norms[i]`` is the L2 norm of every parameter gradient of block ``i``, NaN when the block
    had no gradient that step. Decoded norms are a read-only float32 view on the frame.
    """

    TYPE: ClassVar[MsgType] = MsgType.BLOCK_GRAD_NORMS

    norms: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TrainingMetrics:
    """Scalars the training script logged for one step (the frame's step): name -> value.

    Names are 1 to 24 bytes of UTF-8 without NUL, at most 256 of them; values are float64 and
    may be NaN or infinite. Decoding keeps the order of the wire.
    """

    TYPE: ClassVar[MsgType] = MsgType.TRAINING_METRICS

    values: dict[str, float]


@dataclass(frozen=True, slots=True, eq=False)
class AttentionPattern:
    """ATTENTION: softmax weights of sampled (layer, head) pairs over one sampled sequence.

    ``weights[p, q, k]`` is how much query token ``q`` attends to key token ``k`` in head
    ``heads[p]`` of block ``layers[p]``; causal, so entries with ``k > q`` are 0. ``tokens`` are
    the ``T`` token strings of batch row ``sequence``.
    """

    TYPE: ClassVar[MsgType] = MsgType.ATTENTION

    tokens: tuple[str, ...]
    layers: npt.NDArray[np.uint16]
    heads: npt.NDArray[np.uint16]
    weights: npt.NDArray[np.float16]
    sequence: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class HeadStats:
    """HEAD_STATS: per-head attention entropy (nats) and largest logit, ``[L, H]`` each.

    Row ``i`` belongs to block ``layers[i]``; ``tokens`` is how many query tokens were measured.
    """

    TYPE: ClassVar[MsgType] = MsgType.HEAD_STATS

    layers: npt.NDArray[np.uint16]
    entropy: npt.NDArray[np.float32]
    max_logit: npt.NDArray[np.float32]
    tokens: int


@dataclass(frozen=True, slots=True, eq=False)
class ResidualTokens:
    """RESIDUAL: per-token L2 norm of the residual stream after each block, ``norms[L, T]``."""

    TYPE: ClassVar[MsgType] = MsgType.RESIDUAL

    layers: npt.NDArray[np.uint16]
    norms: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, eq=False)
class MoeRouting:
    """MOE_ROUTING: one step's router decisions per MoE block.

    ``tokens[i, e]``: assignments to expert ``e`` of block ``layers[i]``; ``probs[i, e]``: its
    mean router probability; ``dropped[i]``: assignments dropped by a capacity limit.
    """

    TYPE: ClassVar[MsgType] = MsgType.MOE_ROUTING

    layers: npt.NDArray[np.uint16]
    tokens: npt.NDArray[np.uint32]
    probs: npt.NDArray[np.float32]
    dropped: npt.NDArray[np.uint32]
    top_k: int


@dataclass(frozen=True, slots=True, eq=False)
class OptimizerStats:
    """OPTIMIZER_STATS: what one optimizer step did to each block, ``[L]`` each.

    ``update_ratio[i]``: L2 norm of the step's parameter update over the L2 norm of the
    parameters before it, in block ``layers[i]``; ``grad_norm[i]``: L2 norm of the gradients the
    optimizer used; ``v_below_g2[i]``: for Adam-family optimizers, the fraction of parameters
    whose second-moment estimate (before the step) is below the squared gradient, NaN otherwise.
    """

    TYPE: ClassVar[MsgType] = MsgType.OPTIMIZER_STATS

    layers: npt.NDArray[np.uint16]
    update_ratio: npt.NDArray[np.float32]
    grad_norm: npt.NDArray[np.float32]
    v_below_g2: npt.NDArray[np.float32]


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


def summary_records(n: int) -> npt.NDArray[np.void]:
    """``n`` zeroed ``SUMMARY_DTYPE`` records for a producer to fill."""
    return np.zeros(n, SUMMARY_DTYPE)


def probe_client_records(n: int) -> npt.NDArray[np.void]:
    """``n`` zeroed ``PROBE_CLIENT_DTYPE`` records for a producer to fill."""
    return np.zeros(n, PROBE_CLIENT_DTYPE)


def grid_shape(neurons: int) -> tuple[int, int]:
    """A near-square ``(rows, cols)`` grid for ``neurons`` cells, ``rows <= cols``.

    Exact (``rows * cols == neurons``) when a factorisation with ``cols <= 2 * rows`` exists,
    e.g. 4096 -> (64, 64) and 14336 -> (112, 128); otherwise ``cols = ceil(sqrt(n))`` and
    ``rows = ceil(n / cols)``, e.g. 4099 -> (64, 65). Zero neurons -> (0, 0).
    """
    if neurons < 0:
        raise ValueError(f"neurons must be >= 0, got {neurons}")
    if neurons == 0:
        return 0, 0
    for rows in range(math.isqrt(neurons), 0, -1):
        cols, remainder = divmod(neurons, rows)
        if cols > 2 * rows:
            break
        if remainder == 0:
            return rows, cols
    cols = math.isqrt(neurons - 1) + 1
    return -(-neurons // cols), cols
