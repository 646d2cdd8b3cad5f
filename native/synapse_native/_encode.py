"""Encoding a message into one frame: header + payload, joined in a single copy.

The encoder refuses anything the decoder would reject, so a frame it writes always decodes.
"""

from __future__ import annotations

import numbers
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._action_wire import (
    ActionList,
    ActionRequest,
    ActionResult,
    encode_action_list,
    encode_action_request,
    encode_action_result,
)
from ._capture_wire import (
    CaptureDone,
    CaptureRequest,
    encode_capture_done,
    encode_capture_request,
)
from ._job_wire import JobStatus, RankSkew, encode_job_status, encode_rank_skew
from ._layout import (
    ACK_FIELDS,
    ACK_FIXED,
    ATTENTION_FIELDS,
    ATTENTION_FIXED,
    AUTH_DATA_SIZE,
    CONTROL_BUDGET,
    CONTROL_FIELDS,
    CONTROL_FIXED,
    COUNT_DTYPE,
    ERROR_FIELDS,
    ERROR_FIXED,
    GRAD_NORMS_FIXED,
    HEAD_STATS_FIXED,
    HELLO_FIELDS,
    HELLO_FIXED,
    INDEX_DTYPE,
    LAYER_ID_DTYPE,
    META_FIELDS,
    META_FIXED,
    METRIC_DTYPE,
    METRICS_FIXED,
    MOE_FIXED,
    NORM_DTYPE,
    OPTIMIZER_FIXED,
    PAIR_DTYPE,
    PROBE_CLIENT_DTYPE,
    PROBE_COST_FIELDS,
    PROBE_COST_FIXED,
    PROBE_STATS_FIELDS,
    PROBE_STATS_FIXED,
    RESIDUAL_FIXED,
    SITE_DTYPE,
    SPARSE_FIELDS,
    SPARSE_FIXED,
    STAT_DTYPE,
    SUMMARY_DTYPE,
    SUMMARY_FIXED,
    TOKEN_LEN_DTYPE,
    VALUE_DTYPE,
    WEIGHT_DTYPE,
    encode_text,
    field_codes,
    padded,
    zero_padded,
)
from ._messages import (
    AttentionPattern,
    BlockGradNorms,
    Control,
    ControlAck,
    ErrorReport,
    HeadStats,
    Hello,
    LayerSummaryBatch,
    Message,
    ModelMeta,
    MoeRouting,
    OptimizerStats,
    ProbeCost,
    ProbeStats,
    ResidualTokens,
    SparseActivations,
    TrainingMetrics,
    control_bits,
)
from ._site_table import check_site_table
from ._wire import (
    HEADER,
    HEADER_FIELDS,
    HIST_BINS,
    KNOWN_CONTROL_FIELDS,
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
    SEQ_MODULUS,
    VERSION,
    AckStatus,
    HeaderFlag,
    ProtocolError,
)

Part = bytes | memoryview
Payload = tuple[int, list[Part]]  # size in bytes, pieces to join

_KNOWN_HEADER_FLAGS = int(HeaderFlag.END_OF_STEP | HeaderFlag.BACKLOG | HeaderFlag.JOB)
_CODE_NAMES = {"B": "u8", "H": "u16", "I": "u32", "Q": "u64", "f": "f32", "s": "bytes"}
_U32_MAX = 0xFFFF_FFFF
_U16_MAX = 0xFFFF


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
    head = _pack(
        HEADER,
        "header",
        HEADER_FIELDS,
        (MAGIC, VERSION, message.TYPE, size, seq % SEQ_MODULUS, timestamp_ns, step, rank, flags),
    )
    return b"".join([head, *parts])


def _pack(layout: struct.Struct, what: str, names: Sequence[str], values: Sequence[Any]) -> bytes:
    """``layout.pack(*values)``; a value that does not fit becomes a ProtocolError naming it."""
    try:
        return layout.pack(*values)
    except (struct.error, OverflowError) as exc:
        for name, code, value in zip(names, field_codes(layout), values, strict=True):
            try:
                struct.pack("<" + code, value)
            except (struct.error, OverflowError):
                kind = _CODE_NAMES.get(code[-1], code)
                raise ProtocolError(f"{what} {name} = {value!r} does not fit {kind}") from None
        raise ProtocolError(f"{what}: {exc}") from None  # pragma: no cover - names cover all


def _records(array: Any, dtype: np.dtype[Any], what: str) -> npt.NDArray[Any]:
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
        raise ProtocolError(f"{what} must be a 1-D numpy array of the protocol's record dtype")
    return np.ascontiguousarray(array)


def _vector(values: Any, dtype: np.dtype[Any], what: str) -> npt.NDArray[Any]:
    array = np.asarray(values)
    if array.ndim != 1 or array.dtype.kind not in "biuf":
        raise ProtocolError(f"{what} must be a 1-D array of numbers")
    if array.dtype.kind in "iu" and dtype.kind == "u" and array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > _U32_MAX:
            raise ProtocolError(f"{what} range {low}..{high} does not fit u32")
    if array.dtype.kind == "f" and dtype.kind == "u":
        raise ProtocolError(f"{what} must be integers")
    return np.ascontiguousarray(array, dtype=dtype)


def _array(
    values: Any, dtype: np.dtype[Any], shape: tuple[int, ...], what: str
) -> npt.NDArray[Any]:
    """``values`` as a contiguous array of the wire ``dtype`` and exactly ``shape``."""
    try:
        array = np.asarray(values)
    except ValueError:
        raise ProtocolError(f"{what} must be an array of numbers") from None
    if array.dtype.kind not in "biuf":
        raise ProtocolError(f"{what} must be an array of numbers")
    if array.shape != shape:
        raise ProtocolError(f"{what} has shape {array.shape}, {shape} expected")
    if dtype.kind == "u":
        if array.dtype.kind == "f":
            raise ProtocolError(f"{what} must be integers")
        if array.size:
            low, high = int(array.min()), int(array.max())
            if low < 0 or high > np.iinfo(dtype).max:
                kind = f"u{8 * dtype.itemsize}"
                raise ProtocolError(f"{what} range {low}..{high} does not fit {kind}")
    with np.errstate(over="ignore"):  # a float beyond the wire type's range is sent as inf
        return np.ascontiguousarray(array, dtype=dtype)


def _length(values: Any, what: str) -> int:
    """The length of the first axis of an array-like (0 for a scalar, checked later)."""
    try:
        return len(values)
    except TypeError:
        raise ProtocolError(f"{what} must be a 1-D array") from None


def _check_count(what: str, count: Any, low: int, high: int) -> None:
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool):
        raise ProtocolError(f"{what} = {count!r} is not an integer")
    if not low <= count <= high:
        raise ProtocolError(f"{what} is {count} ({low}..{high} allowed)")


def _pad_to_8(nbytes: int) -> bytes:
    return bytes(padded(nbytes) - nbytes)


def _flat_bytes(array: npt.NDArray[Any]) -> memoryview:
    return array.reshape(-1).view(np.uint8).data


def _hello(m: Hello) -> Payload:
    name = encode_text(m.name, "HELLO name", MAX_HELLO_NAME)
    if len(m.auth_data) != AUTH_DATA_SIZE:
        raise ProtocolError(f"HELLO auth_data is {len(m.auth_data)} bytes, 32 expected")
    if not 1 <= m.version_min <= m.version_max:
        raise ProtocolError(f"HELLO version range {m.version_min}..{m.version_max} is empty")
    fixed_values = (
        *(m.version_min, m.version_max, m.role, m.auth, len(name), m.capabilities),
        *(m.rank, m.world_size, bytes(m.auth_data), 0),
    )
    fixed = _pack(HELLO_FIXED, "HELLO", HELLO_FIELDS, fixed_values)
    return HELLO_FIXED.size + padded(len(name)), [fixed, zero_padded(name)]


def _model_meta(m: ModelMeta) -> Payload:
    if len(m.sites) > MAX_SITES:
        raise ProtocolError(f"MODEL_META has {len(m.sites)} sites (limit {MAX_SITES})")
    strings = [encode_text(m.model_name, "MODEL_META model name", MAX_TEXT)]
    rows = []
    offset = len(strings[0])
    for site in m.sites:
        name = encode_text(site.name, f"MODEL_META site {site.site_id} name", MAX_TEXT)
        numbers = (site.site_id, site.layer, site.neurons, site.grid_rows, site.grid_cols)
        rows.append((*numbers, site.kind, 0, offset, len(name)))
        strings.append(name)
        offset += len(name)
    table = np.zeros(len(rows), SITE_DTYPE)
    for column, field in enumerate(SITE_DTYPE.names or ()):
        limit = 0xFFFF if SITE_DTYPE[field].itemsize == 2 else _U32_MAX
        cells = [row[column] for row in rows]
        bad = [v for v in cells if not (isinstance(v, (int, np.integer)) and 0 <= v <= limit)]
        if bad:
            kind = "u16" if limit == 0xFFFF else "u32"
            raise ProtocolError(f"MODEL_META site {field} = {bad[0]!r} does not fit {kind}")
        table[field] = cells
    string_table = zero_padded(b"".join(strings))
    check_site_table(table, m.n_layers, len(string_table))
    fixed_values = (len(rows), m.n_layers, len(strings[0]), len(string_table))
    fixed = _pack(META_FIXED, "MODEL_META", META_FIELDS, fixed_values)
    size = META_FIXED.size + table.nbytes + len(string_table)
    return size, [fixed, table.data, string_table]


def _summary_batch(m: LayerSummaryBatch) -> Payload:
    records = _records(m.records, SUMMARY_DTYPE, "LAYER_SUMMARY_BATCH records")
    if len(records) > MAX_SITES:
        raise ProtocolError(f"LAYER_SUMMARY_BATCH has {len(records)} sites (limit {MAX_SITES})")
    fixed = SUMMARY_FIXED.pack(len(records), HIST_BINS, 0, 0)
    return SUMMARY_FIXED.size + records.nbytes, [fixed, records.data]


def _sparse(m: SparseActivations) -> Payload:
    indices = _vector(m.indices, INDEX_DTYPE, "SPARSE_ACTIVATIONS indices")
    values = _vector(m.values, VALUE_DTYPE, "SPARSE_ACTIVATIONS values")
    n = len(indices)
    if len(values) != n:
        raise ProtocolError(f"SPARSE_ACTIVATIONS has {n} indices but {len(values)} values")
    if n > m.n_above:
        raise ProtocolError(f"SPARSE_ACTIVATIONS carries {n} neurons but n_above is {m.n_above}")
    if n > 1 and not (indices[1:] > indices[:-1]).all():
        raise ProtocolError("SPARSE_ACTIVATIONS indices not strictly ascending")
    fixed_values = (m.site_id, m.threshold, n, m.n_above)
    fixed = _pack(SPARSE_FIXED, "SPARSE_ACTIVATIONS", SPARSE_FIELDS, fixed_values)
    return SPARSE_FIXED.size + 8 * n, [fixed, indices.data, values.data]


def _control(m: Control) -> Payload:
    if m.unknown_fields & KNOWN_CONTROL_FIELDS:
        raise ProtocolError(f"CONTROL unknown_fields {m.unknown_fields:#x} overlaps known fields")
    fixed_values = (
        m.request_id,
        control_bits(m),
        0.0 if m.threshold is None else m.threshold,
        0.0 if m.rate_hz is None else m.rate_hz,
        0 if m.site_kinds is None else m.site_kinds,
        int(bool(m.paused)),
        0 if m.top_k is None else m.top_k,
        0 if m.threshold_mode is None else m.threshold_mode,
    )
    fixed = _pack(CONTROL_FIXED, "CONTROL", CONTROL_FIELDS, fixed_values)
    if m.budget is None and m.full_rank is None:
        return CONTROL_FIXED.size, [fixed]
    tail = (0.0 if m.budget is None else m.budget, 0 if m.full_rank is None else m.full_rank)
    budget = _pack(CONTROL_BUDGET, "CONTROL", ("budget", "full_rank"), tail)
    return CONTROL_FIXED.size + CONTROL_BUDGET.size, [fixed, budget]


def _control_ack(m: ControlAck) -> Payload:
    error = encode_text(m.error, "CONTROL_ACK error", MAX_TEXT)
    status = AckStatus.APPLIED if m.applied else AckStatus.REJECTED
    s = m.state
    fixed_values = (
        *(m.request_id, status, s.threshold, s.rate_hz, s.site_kinds, int(bool(s.paused))),
        *(s.top_k, len(error), s.threshold_mode),
    )
    fixed = _pack(ACK_FIXED, "CONTROL_ACK", ACK_FIELDS, fixed_values)
    return ACK_FIXED.size + padded(len(error)), [fixed, zero_padded(error)]


def _probe_stats(m: ProbeStats) -> Payload:
    clients = _records(m.clients, PROBE_CLIENT_DTYPE, "PROBE_STATS clients")
    fixed_values = (
        *(len(clients), 0, m.frames_encoded, m.frames_dropped, m.queue_bytes),
        *(m.queue_capacity, m.probe_ns, m.steps_sampled, m.steps_seen),
    )
    fixed = _pack(PROBE_STATS_FIXED, "PROBE_STATS", PROBE_STATS_FIELDS, fixed_values)
    return PROBE_STATS_FIXED.size + clients.nbytes, [fixed, clients.data]


def _probe_cost(m: ProbeCost) -> Payload:
    fixed_values = (m.budget, m.cost, m.interval, m.lens_interval, m.step_ns, m.stats_ns, m.lens_ns)
    return PROBE_COST_FIXED.size, [
        _pack(PROBE_COST_FIXED, "PROBE_COST", PROBE_COST_FIELDS, fixed_values)
    ]


def _error(m: ErrorReport) -> Payload:
    text = encode_text(m.text, "ERROR text", MAX_TEXT)
    fixed = _pack(ERROR_FIXED, "ERROR", ERROR_FIELDS, (m.code, len(text), 0))
    return ERROR_FIXED.size + padded(len(text)), [fixed, zero_padded(text)]


def _block_grad_norms(m: BlockGradNorms) -> Payload:
    with np.errstate(over="ignore"):  # a norm beyond the f32 range is sent as +inf
        norms = _vector(m.norms, NORM_DTYPE, "BLOCK_GRAD_NORMS norms")
    n = len(norms)
    if n > MAX_LAYERS:
        raise ProtocolError(f"BLOCK_GRAD_NORMS has {n} layers (limit {MAX_LAYERS})")
    fixed = GRAD_NORMS_FIXED.pack(n, 0)
    padding = bytes(padded(norms.nbytes) - norms.nbytes)
    return GRAD_NORMS_FIXED.size + padded(norms.nbytes), [fixed, norms.data, padding]


def _training_metrics(m: TrainingMetrics) -> Payload:
    if not isinstance(m.values, dict):
        raise ProtocolError("TRAINING_METRICS values must be a dict of name -> number")
    count = len(m.values)
    if count > MAX_METRICS:
        raise ProtocolError(f"TRAINING_METRICS has {count} metrics (limit {MAX_METRICS})")
    table = np.zeros(count, METRIC_DTYPE)
    for i, (name, value) in enumerate(m.values.items()):
        if not isinstance(name, str):
            raise ProtocolError(f"TRAINING_METRICS name {name!r} is not a string")
        raw = encode_text(name, f"TRAINING_METRICS name {name!r}", METRIC_NAME_SIZE)
        if not raw or b"\0" in raw:
            raise ProtocolError(f"TRAINING_METRICS name {name!r} is empty or holds a NUL")
        if not isinstance(value, numbers.Real):
            raise ProtocolError(f"TRAINING_METRICS {name} = {value!r} is not a number")
        try:
            table[i] = (raw, float(value))
        except OverflowError:
            raise ProtocolError(f"TRAINING_METRICS {name} = {value!r} does not fit f64") from None
    fixed = METRICS_FIXED.pack(count, 0, 0)
    return METRICS_FIXED.size + table.nbytes, [fixed, table.data]


def _attention(m: AttentionPattern) -> Payload:
    if isinstance(m.tokens, (str, bytes)) or not isinstance(m.tokens, Sequence):
        raise ProtocolError("ATTENTION tokens must be a sequence of strings")
    n_tokens = len(m.tokens)
    _check_count("ATTENTION token_count", n_tokens, 1, MAX_SAMPLED_TOKENS)
    raws = []
    for i, token in enumerate(m.tokens):
        if not isinstance(token, str):
            raise ProtocolError(f"ATTENTION token {i} is {type(token).__name__}, not str")
        raws.append(encode_text(token, f"ATTENTION token {i}", MAX_TOKEN_BYTES))
    n_pairs = _length(m.layers, "ATTENTION layers")
    _check_count("ATTENTION pair_count", n_pairs, 1, MAX_ATTENTION_PAIRS)
    pairs = np.zeros(n_pairs, PAIR_DTYPE)
    pairs["layer"] = _array(m.layers, LAYER_ID_DTYPE, (n_pairs,), "ATTENTION layers")
    pairs["head"] = _array(m.heads, LAYER_ID_DTYPE, (n_pairs,), "ATTENTION heads")
    shape = (n_pairs, n_tokens, n_tokens)
    weights = _array(m.weights, WEIGHT_DTYPE, shape, "ATTENTION weights")
    fixed = _pack(ATTENTION_FIXED, "ATTENTION", ATTENTION_FIELDS, (n_tokens, n_pairs, m.sequence))
    token_table = np.array([len(raw) for raw in raws], TOKEN_LEN_DTYPE).tobytes() + b"".join(raws)
    parts: list[Part] = [
        fixed,
        zero_padded(pairs.tobytes()),
        zero_padded(token_table),
        _flat_bytes(weights),
        _pad_to_8(weights.nbytes),
    ]
    size = ATTENTION_FIXED.size + padded(pairs.nbytes) + padded(len(token_table))
    return size + padded(weights.nbytes), parts


def _layer_ids(values: Any, what: str) -> npt.NDArray[Any]:
    count = _length(values, what)
    _check_count(f"{what} count", count, 1, _U16_MAX)
    return _array(values, LAYER_ID_DTYPE, (count,), what)


def _head_stats(m: HeadStats) -> Payload:
    layers = _layer_ids(m.layers, "HEAD_STATS layers")
    n_heads = np.shape(m.entropy)[-1] if np.ndim(m.entropy) == 2 else 0
    _check_count("HEAD_STATS head_count", n_heads, 1, MAX_HEADS)
    _check_count("HEAD_STATS tokens", m.tokens, 1, MAX_SAMPLED_TOKENS)
    shape = (len(layers), n_heads)
    entropy = _array(m.entropy, STAT_DTYPE, shape, "HEAD_STATS entropy")
    max_logit = _array(m.max_logit, STAT_DTYPE, shape, "HEAD_STATS max_logit")
    fixed = HEAD_STATS_FIXED.pack(len(layers), n_heads, int(m.tokens), 0)
    parts: list[Part] = [
        fixed,
        zero_padded(layers.tobytes()),
        _flat_bytes(entropy),
        _flat_bytes(max_logit),
    ]
    size = HEAD_STATS_FIXED.size + padded(layers.nbytes) + entropy.nbytes + max_logit.nbytes
    return size, parts


def _residual(m: ResidualTokens) -> Payload:
    layers = _layer_ids(m.layers, "RESIDUAL layers")
    n_tokens = np.shape(m.norms)[-1] if np.ndim(m.norms) == 2 else 0
    _check_count("RESIDUAL token_count", n_tokens, 1, MAX_SAMPLED_TOKENS)
    norms = _array(m.norms, STAT_DTYPE, (len(layers), n_tokens), "RESIDUAL norms")
    fixed = RESIDUAL_FIXED.pack(len(layers), n_tokens, 0)
    parts: list[Part] = [
        fixed,
        zero_padded(layers.tobytes()),
        _flat_bytes(norms),
        _pad_to_8(norms.nbytes),
    ]
    return RESIDUAL_FIXED.size + padded(layers.nbytes) + padded(norms.nbytes), parts


def _moe_routing(m: MoeRouting) -> Payload:
    layers = _layer_ids(m.layers, "MOE_ROUTING layers")
    n_experts = np.shape(m.tokens)[-1] if np.ndim(m.tokens) == 2 else 0
    _check_count("MOE_ROUTING expert_count", n_experts, 1, MAX_EXPERTS)
    _check_count("MOE_ROUTING top_k", m.top_k, 1, n_experts)
    shape = (len(layers), n_experts)
    tokens = _array(m.tokens, COUNT_DTYPE, shape, "MOE_ROUTING tokens")
    probs = _array(m.probs, STAT_DTYPE, shape, "MOE_ROUTING probs")
    dropped = _array(m.dropped, COUNT_DTYPE, (len(layers),), "MOE_ROUTING dropped")
    fixed = MOE_FIXED.pack(len(layers), n_experts, int(m.top_k), 0)
    parts: list[Part] = [
        fixed,
        zero_padded(layers.tobytes()),
        _flat_bytes(tokens),
        _flat_bytes(probs),
        dropped.data,
        _pad_to_8(dropped.nbytes),
    ]
    size = MOE_FIXED.size + padded(layers.nbytes) + tokens.nbytes + probs.nbytes
    return size + padded(dropped.nbytes), parts


def _optimizer_stats(m: OptimizerStats) -> Payload:
    layers = _layer_ids(m.layers, "OPTIMIZER_STATS layers")
    shape = (len(layers),)
    columns = [
        _array(getattr(m, name), STAT_DTYPE, shape, f"OPTIMIZER_STATS {name}")
        for name in ("update_ratio", "grad_norm", "v_below_g2")
    ]
    fixed = OPTIMIZER_FIXED.pack(len(layers), 0, 0)
    values = 12 * len(layers)
    parts: list[Part] = [
        fixed,
        zero_padded(layers.tobytes()),
        *(column.data for column in columns),
        _pad_to_8(values),
    ]
    return OPTIMIZER_FIXED.size + padded(layers.nbytes) + padded(values), parts


_ENCODERS: dict[type, Callable[[Any], Payload]] = {
    Hello: _hello,
    ModelMeta: _model_meta,
    LayerSummaryBatch: _summary_batch,
    SparseActivations: _sparse,
    Control: _control,
    ControlAck: _control_ack,
    ProbeStats: _probe_stats,
    ProbeCost: _probe_cost,
    ErrorReport: _error,
    BlockGradNorms: _block_grad_norms,
    TrainingMetrics: _training_metrics,
    AttentionPattern: _attention,
    HeadStats: _head_stats,
    ResidualTokens: _residual,
    MoeRouting: _moe_routing,
    OptimizerStats: _optimizer_stats,
    RankSkew: encode_rank_skew,
    JobStatus: encode_job_status,
    CaptureRequest: encode_capture_request,
    CaptureDone: encode_capture_done,
    ActionList: encode_action_list,
    ActionRequest: encode_action_request,
    ActionResult: encode_action_result,
}
