"""Decoding one whole frame into a ``Frame``: every size is checked before anything is read.

Arrays in decoded messages are views on the frame buffer (no copy); strings are decoded from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._action_wire import decode_action_list, decode_action_request, decode_action_result
from ._capture_wire import decode_capture_done, decode_capture_request
from ._job_wire import decode_job_status, decode_rank_skew
from ._layout import (
    ACK_FIXED,
    ATTENTION_FIXED,
    CONTROL_BUDGET,
    CONTROL_FIXED,
    COUNT_DTYPE,
    ERROR_FIXED,
    GRAD_NORMS_FIXED,
    HEAD_STATS_FIXED,
    HELLO_FIXED,
    INDEX_DTYPE,
    LAYER_ID_DTYPE,
    META_FIXED,
    METRIC_DTYPE,
    METRICS_FIXED,
    MOE_FIXED,
    NORM_DTYPE,
    OPTIMIZER_FIXED,
    PAIR_DTYPE,
    PROBE_CLIENT_DTYPE,
    PROBE_COST_FIXED,
    PROBE_STATS_FIXED,
    RESIDUAL_FIXED,
    SITE_DTYPE,
    SPARSE_FIXED,
    STAT_DTYPE,
    SUMMARY_DTYPE,
    SUMMARY_FIXED,
    TOKEN_LEN_DTYPE,
    VALUE_DTYPE,
    WEIGHT_DTYPE,
    decode_text,
    padded,
)
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
    OptimizerStats,
    ProbeCost,
    ProbeStats,
    ResidualTokens,
    SiteInfo,
    SparseActivations,
    TrainingMetrics,
)
from ._site_table import check_site_table
from ._wire import (
    HEADER_SIZE,
    HIST_BINS,
    KNOWN_CONTROL_FIELDS,
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
    AckStatus,
    AuthMode,
    Capability,
    ControlField,
    ErrorCode,
    Header,
    MsgType,
    ProtocolError,
    Role,
    SiteKind,
    ThresholdMode,
    peek_header,
)

Buffer = bytes | bytearray | memoryview

P = HEADER_SIZE  # payload offset inside the frame

_ROLES = {int(r): r for r in Role}
_AUTH_MODES = {int(a): a for a in AuthMode}
_SITE_KINDS = {int(k): k for k in SiteKind}
_THRESHOLD_MODES = {int(m): m for m in ThresholdMode}
_ERROR_CODES = {int(c): c for c in ErrorCode}
_HAS_THRESHOLD, _HAS_RATE, _HAS_SITE_KINDS, _HAS_PAUSED, _HAS_TOP_K, _HAS_MODE, _HAS_BUDGET = (
    int(f)
    for f in (
        ControlField.THRESHOLD,
        ControlField.RATE,
        ControlField.SITE_KINDS,
        ControlField.PAUSED,
        ControlField.TOP_K,
        ControlField.THRESHOLD_MODE,
        ControlField.BUDGET,
    )
)
_HAS_FULL_RANK = int(ControlField.FULL_RANK)


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


def _fail_size(name: str, size: int, layout: str) -> ProtocolError:
    return ProtocolError(f"{name} payload is {size} bytes, {layout} expected")


def _check_fixed(name: str, size: int, fixed: int) -> None:
    if size < fixed:
        raise _fail_size(name, size, f"at least {fixed}")


def _check_text_len(what: str, length: int, limit: int) -> None:
    if length > limit:
        raise ProtocolError(f"{what} is {length} bytes (limit {limit})")


def _paused(name: str, raw: int) -> bool:
    if raw > 1:
        raise ProtocolError(f"{name} paused is {raw}, 0 or 1 expected")
    return raw == 1


def _threshold_mode(raw: int) -> int:
    """A ``ThresholdMode``; an unknown number is kept (the trainer rejects it by name)."""
    return _THRESHOLD_MODES.get(raw, raw)


def _hello(frame: memoryview, size: int) -> Hello:
    _check_fixed("HELLO", size, HELLO_FIXED.size)
    (v_min, v_max, role, auth, name_len, caps, rank, world, auth_data, _) = HELLO_FIXED.unpack_from(
        frame, P
    )
    _check_text_len("HELLO name", name_len, MAX_HELLO_NAME)
    if size != HELLO_FIXED.size + padded(name_len):
        raise _fail_size("HELLO", size, f"64 + {padded(name_len)}")
    if not 1 <= v_min <= v_max:
        raise ProtocolError(f"HELLO version range {v_min}..{v_max} is empty or starts below 1")
    name = decode_text(frame, P + HELLO_FIXED.size, name_len, "HELLO name")
    return Hello(
        role=_ROLES.get(role, role),
        name=name,
        capabilities=Capability(caps),
        rank=rank,
        world_size=world,
        auth=_AUTH_MODES.get(auth, auth),
        auth_data=auth_data,
        version_min=v_min,
        version_max=v_max,
    )


def _model_meta(frame: memoryview, size: int) -> ModelMeta:
    _check_fixed("MODEL_META", size, META_FIXED.size)
    n_sites, n_layers, name_len, strings_len = META_FIXED.unpack_from(frame, P)
    if n_sites > MAX_SITES:
        raise ProtocolError(f"MODEL_META announces {n_sites} sites (limit {MAX_SITES})")
    if strings_len % 8:
        raise ProtocolError(f"MODEL_META string table of {strings_len} bytes is not padded to 8")
    if size != META_FIXED.size + n_sites * SITE_DTYPE.itemsize + strings_len:
        raise _fail_size("MODEL_META", size, f"16 + {n_sites} x 32 + {strings_len}")
    _check_text_len("MODEL_META model name", name_len, MAX_TEXT)
    if name_len > strings_len:
        raise ProtocolError(
            f"MODEL_META model name of {name_len} bytes overruns the {strings_len}-byte "
            "string table"
        )
    table = np.frombuffer(frame, SITE_DTYPE, n_sites, P + META_FIXED.size)
    check_site_table(table, n_layers, strings_len)
    strings_at = P + META_FIXED.size + table.nbytes
    sites = tuple(
        SiteInfo(
            site_id=site_id,
            layer=layer,
            kind=_SITE_KINDS.get(kind, kind),
            name=decode_text(frame, strings_at + offset, length, f"MODEL_META site {site_id} name"),
            neurons=neurons,
            grid_rows=rows,
            grid_cols=cols,
        )
        for site_id, layer, neurons, rows, cols, kind, _, offset, length in table.tolist()
    )
    model_name = decode_text(frame, strings_at, name_len, "MODEL_META model name")
    return ModelMeta(model_name=model_name, n_layers=n_layers, sites=sites)


def _summary_batch(frame: memoryview, size: int) -> LayerSummaryBatch:
    _check_fixed("LAYER_SUMMARY_BATCH", size, SUMMARY_FIXED.size)
    n_sites, n_bins, _, _ = SUMMARY_FIXED.unpack_from(frame, P)
    if n_bins != HIST_BINS:
        raise ProtocolError(
            f"LAYER_SUMMARY_BATCH has {n_bins} histogram bins, {HIST_BINS} expected"
        )
    if n_sites > MAX_SITES:
        raise ProtocolError(f"LAYER_SUMMARY_BATCH announces {n_sites} sites (limit {MAX_SITES})")
    if size != SUMMARY_FIXED.size + n_sites * SUMMARY_DTYPE.itemsize:
        raise _fail_size("LAYER_SUMMARY_BATCH", size, f"16 + {n_sites} x 336")
    records = np.frombuffer(frame, SUMMARY_DTYPE, n_sites, P + SUMMARY_FIXED.size)
    return LayerSummaryBatch(records)


def _sparse(frame: memoryview, size: int) -> SparseActivations:
    _check_fixed("SPARSE_ACTIVATIONS", size, SPARSE_FIXED.size)
    site_id, threshold, n, n_above = SPARSE_FIXED.unpack_from(frame, P)
    if size != SPARSE_FIXED.size + 8 * n:
        raise _fail_size("SPARSE_ACTIVATIONS", size, f"16 + {n} x 8")
    if n > n_above:
        raise ProtocolError(f"SPARSE_ACTIVATIONS carries {n} neurons but n_above is {n_above}")
    at = P + SPARSE_FIXED.size
    indices = np.frombuffer(frame, INDEX_DTYPE, n, at)
    values = np.frombuffer(frame, VALUE_DTYPE, n, at + 4 * n)
    if n > 1:
        rising = indices[1:] > indices[:-1]
        if not rising.all():
            i = int(np.argmin(rising))
            raise ProtocolError(
                f"SPARSE_ACTIVATIONS indices not strictly ascending: "
                f"{indices[i]} then {indices[i + 1]} at position {i + 1}"
            )
    return SparseActivations(site_id, threshold, n_above, indices, values)


def _control(frame: memoryview, size: int) -> Control:
    if size not in (CONTROL_FIXED.size, CONTROL_FIXED.size + CONTROL_BUDGET.size):
        raise _fail_size("CONTROL", size, "32 or 40")
    request_id, fields, threshold, rate_hz, site_kinds, paused, top_k, mode = (
        CONTROL_FIXED.unpack_from(frame, P)
    )
    budget = full_rank = None
    if fields & (_HAS_BUDGET | _HAS_FULL_RANK):
        if size == CONTROL_FIXED.size:
            bit, name = ("BUDGET", "budget") if fields & _HAS_BUDGET else ("FULL_RANK", "full_rank")
            raise ProtocolError(f"CONTROL sets {bit} but has no {name} field (32 bytes, not 40)")
        budget, full_rank = CONTROL_BUDGET.unpack_from(frame, P + CONTROL_FIXED.size)
    return Control(
        request_id=request_id,
        threshold=threshold if fields & _HAS_THRESHOLD else None,
        rate_hz=rate_hz if fields & _HAS_RATE else None,
        site_kinds=site_kinds if fields & _HAS_SITE_KINDS else None,
        paused=_paused("CONTROL", paused) if fields & _HAS_PAUSED else None,
        top_k=top_k if fields & _HAS_TOP_K else None,
        unknown_fields=fields & ~KNOWN_CONTROL_FIELDS,
        threshold_mode=_threshold_mode(mode) if fields & _HAS_MODE else None,
        budget=budget if fields & _HAS_BUDGET else None,
        full_rank=full_rank if fields & _HAS_FULL_RANK else None,
    )


def _control_ack(frame: memoryview, size: int) -> ControlAck:
    _check_fixed("CONTROL_ACK", size, ACK_FIXED.size)
    request_id, status, threshold, rate_hz, site_kinds, paused, top_k, error_len, mode = (
        ACK_FIXED.unpack_from(frame, P)
    )
    _check_text_len("CONTROL_ACK error", error_len, MAX_TEXT)
    if size != ACK_FIXED.size + padded(error_len):
        raise _fail_size("CONTROL_ACK", size, f"32 + {padded(error_len)}")
    if status > AckStatus.REJECTED:
        raise ProtocolError(f"CONTROL_ACK status {status} unknown (0 APPLIED or 1 REJECTED)")
    paused_flag = _paused("CONTROL_ACK", paused)
    state = ControlState(threshold, rate_hz, site_kinds, paused_flag, top_k, _threshold_mode(mode))
    error = decode_text(frame, P + ACK_FIXED.size, error_len, "CONTROL_ACK error")
    return ControlAck(request_id, status == AckStatus.APPLIED, state, error)


def _probe_stats(frame: memoryview, size: int) -> ProbeStats:
    _check_fixed("PROBE_STATS", size, PROBE_STATS_FIXED.size)
    n_clients, _, encoded, dropped, queued, capacity, probe_ns, sampled, seen = (
        PROBE_STATS_FIXED.unpack_from(frame, P)
    )
    if size != PROBE_STATS_FIXED.size + n_clients * PROBE_CLIENT_DTYPE.itemsize:
        raise _fail_size("PROBE_STATS", size, f"64 + {n_clients} x 32")
    clients = np.frombuffer(frame, PROBE_CLIENT_DTYPE, n_clients, P + PROBE_STATS_FIXED.size)
    return ProbeStats(encoded, dropped, queued, capacity, probe_ns, sampled, seen, clients)


def _probe_cost(frame: memoryview, size: int) -> ProbeCost:
    if size != PROBE_COST_FIXED.size:
        raise _fail_size("PROBE_COST", size, "40")
    return ProbeCost(*PROBE_COST_FIXED.unpack_from(frame, P))


def _error(frame: memoryview, size: int) -> ErrorReport:
    _check_fixed("ERROR", size, ERROR_FIXED.size)
    code, text_len, _ = ERROR_FIXED.unpack_from(frame, P)
    _check_text_len("ERROR text", text_len, MAX_TEXT)
    if size != ERROR_FIXED.size + padded(text_len):
        raise _fail_size("ERROR", size, f"8 + {padded(text_len)}")
    text = decode_text(frame, P + ERROR_FIXED.size, text_len, "ERROR text")
    return ErrorReport(_ERROR_CODES.get(code, code), text)


def _block_grad_norms(frame: memoryview, size: int) -> BlockGradNorms:
    _check_fixed("BLOCK_GRAD_NORMS", size, GRAD_NORMS_FIXED.size)
    n_layers, _ = GRAD_NORMS_FIXED.unpack_from(frame, P)
    if n_layers > MAX_LAYERS:
        raise ProtocolError(f"BLOCK_GRAD_NORMS announces {n_layers} layers (limit {MAX_LAYERS})")
    if size != GRAD_NORMS_FIXED.size + padded(4 * n_layers):
        raise _fail_size("BLOCK_GRAD_NORMS", size, f"8 + {padded(4 * n_layers)}")
    norms = np.frombuffer(frame, NORM_DTYPE, n_layers, P + GRAD_NORMS_FIXED.size)
    return BlockGradNorms(norms)


def _training_metrics(frame: memoryview, size: int) -> TrainingMetrics:
    _check_fixed("TRAINING_METRICS", size, METRICS_FIXED.size)
    count, _, _ = METRICS_FIXED.unpack_from(frame, P)
    if count > MAX_METRICS:
        raise ProtocolError(f"TRAINING_METRICS announces {count} metrics (limit {MAX_METRICS})")
    if size != METRICS_FIXED.size + count * METRIC_DTYPE.itemsize:
        raise _fail_size("TRAINING_METRICS", size, f"8 + {count} x 32")
    table = np.frombuffer(frame, METRIC_DTYPE, count, P + METRICS_FIXED.size)
    values: dict[str, float] = {}
    # numpy drops the NUL padding at the end of each name; a NUL left is one inside it.
    names, numbers = table["name"].tolist(), table["value"].tolist()
    for i, (raw, value) in enumerate(zip(names, numbers, strict=True)):
        if not raw or b"\0" in raw:
            fault = "is empty" if not raw else "has a NUL byte inside"
            raise ProtocolError(f"TRAINING_METRICS metric {i} name {fault}")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"TRAINING_METRICS metric {i} name is not valid UTF-8 "
                f"({exc.reason} at byte {exc.start})"
            ) from None
        if name in values:
            raise ProtocolError(f"TRAINING_METRICS name {name!r} appears more than once")
        values[name] = value
    return TrainingMetrics(values)


def _check_count(what: str, count: int, low: int, high: int) -> None:
    if not low <= count <= high:
        raise ProtocolError(f"{what} is {count} ({low}..{high} allowed)")


def _attention(frame: memoryview, size: int) -> AttentionPattern:
    _check_fixed("ATTENTION", size, ATTENTION_FIXED.size)
    n_tokens, n_pairs, sequence = ATTENTION_FIXED.unpack_from(frame, P)
    _check_count("ATTENTION token_count", n_tokens, 1, MAX_SAMPLED_TOKENS)
    _check_count("ATTENTION pair_count", n_pairs, 1, MAX_ATTENTION_PAIRS)
    pairs_at = P + ATTENTION_FIXED.size
    lengths_at = pairs_at + padded(4 * n_pairs)
    if size < lengths_at - P + 2 * n_tokens:
        raise _fail_size("ATTENTION", size, f"at least 8 + {padded(4 * n_pairs)} + {2 * n_tokens}")
    lengths = np.frombuffer(frame, TOKEN_LEN_DTYPE, n_tokens, lengths_at)
    longest = int(lengths.max())
    if longest > MAX_TOKEN_BYTES:
        i = int(lengths.argmax())
        raise ProtocolError(f"ATTENTION token {i} is {longest} bytes (limit {MAX_TOKEN_BYTES})")
    text_len = int(lengths.sum())
    table_len = padded(2 * n_tokens + text_len)
    weights_len = padded(2 * n_pairs * n_tokens * n_tokens)
    if size != ATTENTION_FIXED.size + padded(4 * n_pairs) + table_len + weights_len:
        raise _fail_size(
            "ATTENTION", size, f"8 + {padded(4 * n_pairs)} + {table_len} + {weights_len}"
        )
    text_at = lengths_at + 2 * n_tokens
    tokens = []
    for i, length in enumerate(lengths.tolist()):
        tokens.append(decode_text(frame, text_at, length, f"ATTENTION token {i}"))
        text_at += length
    pairs = np.frombuffer(frame, PAIR_DTYPE, n_pairs, pairs_at)
    weights_at = lengths_at + table_len
    count = n_pairs * n_tokens * n_tokens
    weights = np.frombuffer(frame, WEIGHT_DTYPE, count, weights_at)
    return AttentionPattern(
        tokens=tuple(tokens),
        layers=pairs["layer"],
        heads=pairs["head"],
        weights=weights.reshape(n_pairs, n_tokens, n_tokens),
        sequence=sequence,
    )


def _layer_table(frame: memoryview, n_layers: int) -> tuple[npt.NDArray[np.uint16], int]:
    """The layer ids after an 8-byte fixed part, and the frame offset of the next array."""
    at = P + 8
    return np.frombuffer(frame, LAYER_ID_DTYPE, n_layers, at), at + padded(2 * n_layers)


def _head_stats(frame: memoryview, size: int) -> HeadStats:
    _check_fixed("HEAD_STATS", size, HEAD_STATS_FIXED.size)
    n_layers, n_heads, n_tokens, _ = HEAD_STATS_FIXED.unpack_from(frame, P)
    _check_count("HEAD_STATS layer_count", n_layers, 1, MAX_LAYERS - 1)
    _check_count("HEAD_STATS head_count", n_heads, 1, MAX_HEADS)
    _check_count("HEAD_STATS tokens", n_tokens, 1, MAX_SAMPLED_TOKENS)
    cells = n_layers * n_heads
    if size != 8 + padded(2 * n_layers) + 8 * cells:
        raise _fail_size(
            "HEAD_STATS", size, f"8 + {padded(2 * n_layers)} + 2 x {n_layers} x {n_heads} x 4"
        )
    layers, at = _layer_table(frame, n_layers)
    shape = (n_layers, n_heads)
    entropy = np.frombuffer(frame, STAT_DTYPE, cells, at).reshape(shape)
    max_logit = np.frombuffer(frame, STAT_DTYPE, cells, at + 4 * cells).reshape(shape)
    return HeadStats(layers, entropy, max_logit, n_tokens)


def _residual(frame: memoryview, size: int) -> ResidualTokens:
    _check_fixed("RESIDUAL", size, RESIDUAL_FIXED.size)
    n_layers, n_tokens, _ = RESIDUAL_FIXED.unpack_from(frame, P)
    _check_count("RESIDUAL layer_count", n_layers, 1, MAX_LAYERS - 1)
    _check_count("RESIDUAL token_count", n_tokens, 1, MAX_SAMPLED_TOKENS)
    cells = n_layers * n_tokens
    if size != 8 + padded(2 * n_layers) + padded(4 * cells):
        raise _fail_size("RESIDUAL", size, f"8 + {padded(2 * n_layers)} + {padded(4 * cells)}")
    layers, at = _layer_table(frame, n_layers)
    norms = np.frombuffer(frame, STAT_DTYPE, cells, at).reshape(n_layers, n_tokens)
    return ResidualTokens(layers, norms)


def _moe_routing(frame: memoryview, size: int) -> MoeRouting:
    _check_fixed("MOE_ROUTING", size, MOE_FIXED.size)
    n_layers, n_experts, top_k, _ = MOE_FIXED.unpack_from(frame, P)
    _check_count("MOE_ROUTING layer_count", n_layers, 1, MAX_LAYERS - 1)
    _check_count("MOE_ROUTING expert_count", n_experts, 1, MAX_EXPERTS)
    _check_count("MOE_ROUTING top_k", top_k, 1, n_experts)
    cells = n_layers * n_experts
    if size != 8 + padded(2 * n_layers) + 8 * cells + padded(4 * n_layers):
        raise _fail_size(
            "MOE_ROUTING",
            size,
            f"8 + {padded(2 * n_layers)} + 2 x {n_layers} x {n_experts} x 4 "
            f"+ {padded(4 * n_layers)}",
        )
    layers, at = _layer_table(frame, n_layers)
    shape = (n_layers, n_experts)
    tokens = np.frombuffer(frame, COUNT_DTYPE, cells, at).reshape(shape)
    probs = np.frombuffer(frame, STAT_DTYPE, cells, at + 4 * cells).reshape(shape)
    dropped = np.frombuffer(frame, COUNT_DTYPE, n_layers, at + 8 * cells)
    return MoeRouting(layers, tokens, probs, dropped, top_k)


def _optimizer_stats(frame: memoryview, size: int) -> OptimizerStats:
    _check_fixed("OPTIMIZER_STATS", size, OPTIMIZER_FIXED.size)
    n_layers, _, _ = OPTIMIZER_FIXED.unpack_from(frame, P)
    _check_count("OPTIMIZER_STATS layer_count", n_layers, 1, MAX_LAYERS - 1)
    if size != 8 + padded(2 * n_layers) + padded(12 * n_layers):
        raise _fail_size(
            "OPTIMIZER_STATS", size, f"8 + {padded(2 * n_layers)} + {padded(12 * n_layers)}"
        )
    layers, at = _layer_table(frame, n_layers)
    ratio, norm, below = (
        np.frombuffer(frame, STAT_DTYPE, n_layers, at + 4 * n_layers * i) for i in range(3)
    )
    return OptimizerStats(layers, ratio, norm, below)


_DECODERS: dict[int, Callable[[memoryview, int], Message]] = {
    MsgType.HELLO: _hello,
    MsgType.MODEL_META: _model_meta,
    MsgType.LAYER_SUMMARY_BATCH: _summary_batch,
    MsgType.SPARSE_ACTIVATIONS: _sparse,
    MsgType.CONTROL: _control,
    MsgType.CONTROL_ACK: _control_ack,
    MsgType.PROBE_STATS: _probe_stats,
    MsgType.PROBE_COST: _probe_cost,
    MsgType.ERROR: _error,
    MsgType.BLOCK_GRAD_NORMS: _block_grad_norms,
    MsgType.TRAINING_METRICS: _training_metrics,
    MsgType.ATTENTION: _attention,
    MsgType.HEAD_STATS: _head_stats,
    MsgType.RESIDUAL: _residual,
    MsgType.MOE_ROUTING: _moe_routing,
    MsgType.OPTIMIZER_STATS: _optimizer_stats,
    MsgType.RANK_SKEW: decode_rank_skew,
    MsgType.JOB_STATUS: decode_job_status,
    MsgType.CAPTURE_REQUEST: decode_capture_request,
    MsgType.CAPTURE_DONE: decode_capture_done,
    MsgType.ACTION_LIST: decode_action_list,
    MsgType.ACTION_REQUEST: decode_action_request,
    MsgType.ACTION_RESULT: decode_action_result,
}
