"""Hypothesis strategies: every v1 message type, with values spanning each field's full range."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from synapse_native._wire import KNOWN_CONTROL_FIELDS
from synapse_native.protocol import (
    MAX_HELLO_NAME,
    MAX_LAYERS,
    MAX_SAMPLED_TOKENS,
    MAX_TEXT,
    MAX_TOKEN_BYTES,
    METRIC_NAME_SIZE,
    PROBE_CLIENT_DTYPE,
    SKEW_DTYPE,
    SUMMARY_DTYPE,
    AttentionPattern,
    AuthMode,
    BlockGradNorms,
    Capability,
    Control,
    ControlAck,
    ControlState,
    ErrorCode,
    ErrorReport,
    HeaderFlag,
    HeadStats,
    Hello,
    JobStatus,
    LayerSummaryBatch,
    Message,
    ModelMeta,
    MoeRouting,
    OptimizerStats,
    ProbeCost,
    ProbeStats,
    RankSkew,
    ResidualTokens,
    Role,
    SiteInfo,
    SiteKind,
    SparseActivations,
    TrainingMetrics,
)

U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFF_FFFF)
U64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
F32 = st.floats(width=32)


def utf8_text(limit: int, max_chars: int = 40) -> st.SearchStrategy[str]:
    """Any encodable text (multi-byte characters included) of at most ``limit`` UTF-8 bytes."""
    chars = st.characters(codec="utf-8")
    return st.text(chars, max_size=max_chars).filter(lambda s: len(s.encode()) <= limit)


def known_or_raw(enum: Any, raw: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(list(enum)), raw)


@st.composite
def hellos(draw: st.DrawFn) -> Hello:
    low = draw(st.integers(1, 0xFFFF))
    return Hello(
        role=draw(known_or_raw(Role, st.integers(0, 0xFF))),
        name=draw(utf8_text(MAX_HELLO_NAME)),
        capabilities=Capability(draw(U64)),
        rank=draw(U32),
        world_size=draw(U32),
        auth=draw(known_or_raw(AuthMode, st.integers(0, 0xFF))),
        auth_data=draw(st.binary(min_size=32, max_size=32)),
        version_min=low,
        version_max=draw(st.integers(low, 0xFFFF)),
    )


@st.composite
def grids(draw: st.DrawFn) -> tuple[int, int, int]:
    """(neurons, rows, cols) with ``neurons <= rows * cols <= 2 * neurons``."""
    rows = draw(st.integers(0, 0xFFFF))
    cols = draw(st.integers(0, 0xFFFF))
    cells = rows * cols
    neurons = draw(st.integers(-(-cells // 2), min(cells, 0xFFFF_FFFF)))
    return neurons, rows, cols


@st.composite
def model_metas(draw: st.DrawFn) -> ModelMeta:
    n_layers = draw(st.integers(1, MAX_LAYERS))
    ids = draw(st.lists(U32, max_size=8, unique=True))
    sites = []
    for site_id in ids:
        neurons, rows, cols = draw(grids())
        sites.append(
            SiteInfo(
                site_id=site_id,
                layer=draw(st.integers(0, n_layers - 1)),
                kind=draw(known_or_raw(SiteKind, U16)),
                name=draw(utf8_text(MAX_TEXT)),
                neurons=neurons,
                grid_rows=rows,
                grid_cols=cols,
            )
        )
    return ModelMeta(draw(utf8_text(MAX_TEXT)), n_layers, tuple(sites))


def records(dtype: np.dtype[Any], max_count: int) -> st.SearchStrategy[np.ndarray]:
    """Arrays of ``dtype`` records made of arbitrary bytes (any float bit pattern included)."""
    return st.integers(0, max_count).flatmap(
        lambda n: st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize).map(
            lambda raw: np.frombuffer(raw, dtype).copy()
        )
    )


def summary_batches() -> st.SearchStrategy[LayerSummaryBatch]:
    return records(SUMMARY_DTYPE, 6).map(LayerSummaryBatch)


@st.composite
def sparse_activations(draw: st.DrawFn) -> SparseActivations:
    indices = sorted(draw(st.sets(U32, max_size=40)))
    values = draw(st.lists(F32, min_size=len(indices), max_size=len(indices)))
    return SparseActivations(
        site_id=draw(U32),
        threshold=draw(F32),
        n_above=draw(st.integers(len(indices), 0xFFFF_FFFF)),
        indices=np.array(indices, dtype=np.uint32),
        values=np.array(values, dtype=np.float32),
    )


def controls() -> st.SearchStrategy[Control]:
    return st.builds(
        Control,
        request_id=U32,
        threshold=st.none() | F32,
        rate_hz=st.none() | F32,
        site_kinds=st.none() | U32,
        paused=st.none() | st.booleans(),
        top_k=st.none() | U32,
        unknown_fields=U32.map(lambda bits: bits & ~KNOWN_CONTROL_FIELDS),
        threshold_mode=st.none() | U32,
        budget=st.none() | F32,
        full_rank=st.none() | U32,
    )


def control_states() -> st.SearchStrategy[ControlState]:
    return st.builds(
        ControlState,
        threshold=F32,
        rate_hz=F32,
        site_kinds=U32,
        paused=st.booleans(),
        top_k=U32,
        threshold_mode=U16,
    )


def control_acks() -> st.SearchStrategy[ControlAck]:
    return st.builds(
        ControlAck,
        request_id=U32,
        applied=st.booleans(),
        state=control_states(),
        error=utf8_text(MAX_TEXT),
    )


def probe_stats() -> st.SearchStrategy[ProbeStats]:
    return st.builds(
        ProbeStats,
        frames_encoded=U64,
        frames_dropped=U64,
        queue_bytes=U64,
        queue_capacity=U64,
        probe_ns=U64,
        steps_sampled=U64,
        steps_seen=U64,
        clients=records(PROBE_CLIENT_DTYPE, 4),
    )


def error_reports() -> st.SearchStrategy[ErrorReport]:
    return st.builds(
        ErrorReport, code=known_or_raw(ErrorCode, U32), text=utf8_text(MAX_TEXT, max_chars=80)
    )


def block_grad_norms() -> st.SearchStrategy[BlockGradNorms]:
    """Odd and even counts (with and without padding), any float32 bit pattern (NaN, inf)."""
    return records(np.dtype("<f4"), 40).map(BlockGradNorms)


def metric_names() -> st.SearchStrategy[str]:
    """1 to 24 bytes of UTF-8 without NUL (multi-byte characters included)."""
    chars = st.characters(codec="utf-8", exclude_characters="\0")
    return st.text(chars, min_size=1, max_size=METRIC_NAME_SIZE).filter(
        lambda s: len(s.encode()) <= METRIC_NAME_SIZE
    )


def training_metrics() -> st.SearchStrategy[TrainingMetrics]:
    """A few metrics of any float64 value (NaN, infinities, -0.0 included); the limit of
    ``MAX_METRICS`` names is covered by test_protocol_limits."""
    values = st.floats(allow_nan=True, allow_infinity=True)
    return st.dictionaries(metric_names(), values, max_size=24).map(TrainingMetrics)


def arrays(dtype: str, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Arrays of ``shape`` made of arbitrary bytes (any float bit pattern, any integer)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return st.binary(min_size=size, max_size=size).map(
        lambda raw: np.frombuffer(raw, dtype).reshape(shape).copy()
    )


@st.composite
def attention_patterns(draw: st.DrawFn) -> AttentionPattern:
    """1 to 6 tokens (empty and multi-byte ones included) and 1 to 4 (layer, head) pairs."""
    n_tokens = draw(st.integers(1, 6))
    n_pairs = draw(st.integers(1, 4))
    token = utf8_text(MAX_TOKEN_BYTES, max_chars=8)
    return AttentionPattern(
        tokens=tuple(draw(st.lists(token, min_size=n_tokens, max_size=n_tokens))),
        layers=draw(arrays("<u2", (n_pairs,))),
        heads=draw(arrays("<u2", (n_pairs,))),
        weights=draw(arrays("<f2", (n_pairs, n_tokens, n_tokens))),
        sequence=draw(U32),
    )


@st.composite
def head_stats(draw: st.DrawFn) -> HeadStats:
    n_layers, n_heads = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    return HeadStats(
        layers=draw(arrays("<u2", (n_layers,))),
        entropy=draw(arrays("<f4", (n_layers, n_heads))),
        max_logit=draw(arrays("<f4", (n_layers, n_heads))),
        tokens=draw(st.integers(1, MAX_SAMPLED_TOKENS)),
    )


@st.composite
def residual_tokens(draw: st.DrawFn) -> ResidualTokens:
    """Odd and even ``L x T`` (with and without the padding after the norms)."""
    n_layers, n_tokens = draw(st.integers(1, 5)), draw(st.integers(1, 9))
    return ResidualTokens(
        layers=draw(arrays("<u2", (n_layers,))),
        norms=draw(arrays("<f4", (n_layers, n_tokens))),
    )


@st.composite
def moe_routings(draw: st.DrawFn) -> MoeRouting:
    n_layers, n_experts = draw(st.integers(1, 4)), draw(st.integers(1, 8))
    return MoeRouting(
        layers=draw(arrays("<u2", (n_layers,))),
        tokens=draw(arrays("<u4", (n_layers, n_experts))),
        probs=draw(arrays("<f4", (n_layers, n_experts))),
        dropped=draw(arrays("<u4", (n_layers,))),
        top_k=draw(st.integers(1, n_experts)),
    )


@st.composite
def optimizer_stats(draw: st.DrawFn) -> OptimizerStats:
    """Odd and even ``L`` (with and without the padding after the columns)."""
    n_layers = draw(st.integers(1, 7))
    return OptimizerStats(
        draw(arrays("<u2", (n_layers,))),
        *(draw(arrays("<f4", (n_layers,))) for _ in range(3)),
    )


MESSAGES: dict[str, st.SearchStrategy[Any]] = {
    "HELLO": hellos(),
    "MODEL_META": model_metas(),
    "LAYER_SUMMARY_BATCH": summary_batches(),
    "SPARSE_ACTIVATIONS": sparse_activations(),
    "CONTROL": controls(),
    "CONTROL_ACK": control_acks(),
    "PROBE_STATS": probe_stats(),
    "ERROR": error_reports(),
    "BLOCK_GRAD_NORMS": block_grad_norms(),
    "TRAINING_METRICS": training_metrics(),
    "ATTENTION": attention_patterns(),
    "HEAD_STATS": head_stats(),
    "RESIDUAL": residual_tokens(),
    "MOE_ROUTING": moe_routings(),
    "OPTIMIZER_STATS": optimizer_stats(),
    "PROBE_COST": st.builds(
        ProbeCost,
        budget=F32,
        cost=F32,
        interval=U32,
        lens_interval=U32,
        step_ns=U64,
        stats_ns=U64,
        lens_ns=U64,
    ),
    "RANK_SKEW": st.builds(RankSkew, world_size=U16, records=records(SKEW_DTYPE, 6)),
    "JOB_STATUS": st.builds(
        JobStatus,
        world_size=U16,
        state=st.integers(0, 0xFF),
        serve_rank=U16,
        rank=U16,
        last_step=U32,
        ranks_reporting=U32,
        since_ns=U64,
        text=utf8_text(MAX_TEXT),
        full_rank=U16,
    ),
}


def messages() -> st.SearchStrategy[Message]:
    return st.one_of(*MESSAGES.values())


def header_fields() -> st.SearchStrategy[dict[str, int]]:
    return st.fixed_dictionaries(
        {
            "seq": U32,
            "step": U32,
            "rank": U16,
            "flags": st.sampled_from([0, int(HeaderFlag.END_OF_STEP)]),
            "timestamp_ns": U64,
        }
    )
