"""Limits come before allocation on decode; on encode, what the wire cannot carry is refused."""

from __future__ import annotations

import re
import struct
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from synapse_native.protocol import (
    HEADER,
    MAGIC,
    MAX_ATTENTION_PAIRS,
    MAX_LAYERS,
    MAX_METRICS,
    MAX_PAYLOAD,
    MAX_SAMPLED_TOKENS,
    MAX_SITES,
    MAX_TEXT,
    MAX_TOKEN_BYTES,
    SUMMARY_DTYPE,
    VERSION,
    AttentionPattern,
    BlockGradNorms,
    Control,
    ControlAck,
    ControlState,
    Decoder,
    ErrorReport,
    HeadStats,
    Hello,
    LayerSummaryBatch,
    ModelMeta,
    MoeRouting,
    MsgType,
    ProbeStats,
    ProtocolError,
    ResidualTokens,
    Role,
    SiteInfo,
    SparseActivations,
    TrainingMetrics,
    decode_frame,
    encode,
    peek_header,
    probe_client_records,
    summary_records,
)

SMALL = 1 << 20  # bytes a rejected frame may cost, at most (far below what is announced)


def _header(msg_type: int, length: int) -> bytes:
    head: bytes = HEADER.pack(MAGIC, VERSION, msg_type, length, 0, 0, 0, 0, 0)
    return head


@pytest.fixture
def peak_memory() -> Iterator[Callable[[], int]]:
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_2gib_announced_with_10_bytes_behind_fails_at_once(peak_memory: Callable[[], int]) -> None:
    raw = _header(MsgType.LAYER_SUMMARY_BATCH, 2 << 30) + bytes(10)
    with pytest.raises(ProtocolError, match="payload length 2147483648 exceeds the limit"):
        decode_frame(raw)
    with pytest.raises(ProtocolError, match="payload length 2147483648 exceeds the limit"):
        Decoder().feed(raw)
    assert peak_memory() < SMALL


def test_stream_buffers_what_arrived_not_what_is_announced(peak_memory: Callable[[], int]) -> None:
    decoder = Decoder()
    assert decoder.feed(_header(MsgType.LAYER_SUMMARY_BATCH, MAX_PAYLOAD) + bytes(10)) == []
    assert decoder.buffered == 42
    assert peak_memory() < SMALL


@pytest.mark.parametrize(
    ("payload", "msg_type", "fault"),
    [
        (struct.pack("<IfII", 1, 0.5, 0xFFFF_FFFF, 0xFFFF_FFFF), MsgType.SPARSE_ACTIVATIONS, "x 8"),
        (struct.pack("<IHHQ", 0xFFFF_FFFF, 64, 0, 0), MsgType.LAYER_SUMMARY_BATCH, "sites"),
        (struct.pack("<4I", 0xFFFF_FFFF, 1, 0, 0), MsgType.MODEL_META, "sites"),
        (struct.pack("<4I", 2, 1, 0, 0xFFFF_FFF8), MsgType.MODEL_META, "16 + 2 x 32"),
        (struct.pack("<II7Q", 0xFFFF_FFFF, 0, *[0] * 7), MsgType.PROBE_STATS, "x 32"),
        (struct.pack("<IHH", 1, 0xFFFF, 0), MsgType.ERROR, "limit 1024"),
        (struct.pack("<II", 0xFFFF_FFFF, 0), MsgType.BLOCK_GRAD_NORMS, "limit 65536"),
        (struct.pack("<II", MAX_LAYERS, 0), MsgType.BLOCK_GRAD_NORMS, "8 + 262144"),
        (struct.pack("<HHI", 0xFFFF, 0, 0), MsgType.TRAINING_METRICS, "limit 256"),
        (struct.pack("<HHI", MAX_METRICS, 0, 0), MsgType.TRAINING_METRICS, "8 + 256 x 32"),
        (struct.pack("<HHI", 0xFFFF, 0xFFFF, 0), MsgType.ATTENTION, "token_count is 65535"),
        (struct.pack("<HHI", 128, 0xFFFF, 0), MsgType.ATTENTION, "pair_count is 65535"),
        (struct.pack("<HHI", 128, 256, 0), MsgType.ATTENTION, "at least 8 + 1024 + 256"),
        (struct.pack("<HHHH", 0xFFFF, 1024, 128, 0), MsgType.HEAD_STATS, "2 x 65535 x 1024"),
        (struct.pack("<HHHH", 1, 0xFFFF, 1, 0), MsgType.HEAD_STATS, "head_count is 65535"),
        (struct.pack("<HHI", 0xFFFF, 128, 0), MsgType.RESIDUAL, "8 + 131072 + 33553920"),
        (struct.pack("<HHI", 1, 0xFFFF, 0), MsgType.RESIDUAL, "token_count is 65535"),
        (struct.pack("<HHHH", 0xFFFF, 1024, 1, 0), MsgType.MOE_ROUTING, "2 x 65535 x 1024"),
        (struct.pack("<HHHH", 1, 0xFFFF, 1, 0), MsgType.MOE_ROUTING, "expert_count is 65535"),
    ],
)
def test_huge_counts_fail_before_allocation(
    payload: bytes, msg_type: int, fault: str, peak_memory: Callable[[], int]
) -> None:
    with pytest.raises(ProtocolError, match=re.escape(fault)):
        decode_frame(_header(msg_type, len(payload)) + payload)
    assert peak_memory() < SMALL


def test_max_payload_is_adjustable() -> None:
    raw = encode(ErrorReport(1, "x" * 100))  # 8 + 104 bytes of payload
    assert peek_header(raw, max_payload=112).payload_length == 112
    with pytest.raises(ProtocolError, match="limit of 111 bytes"):
        decode_frame(raw, max_payload=111)


def test_encoder_refuses_a_payload_over_the_limit() -> None:
    records = summary_records((MAX_PAYLOAD - 16) // SUMMARY_DTYPE.itemsize + 1)
    with pytest.raises(ProtocolError, match="exceeds the limit of 16777216 bytes"):
        encode(LayerSummaryBatch(records))


def test_encoder_refuses_too_many_sites() -> None:
    sites = tuple(SiteInfo(i, 0, 0, "", 1, 1, 1) for i in range(MAX_SITES + 1))
    with pytest.raises(ProtocolError, match="65537 sites"):
        encode(ModelMeta("m", 1, sites))


STATE = ControlState(0.5, 10.0, 15, False, 64)


@pytest.mark.parametrize(
    ("message", "fault"),
    [
        (Hello(Role.VIEWER, "x" * 257), "HELLO name is 257 bytes (limit 256)"),
        (Hello(Role.VIEWER, "\ud800"), "HELLO name cannot be encoded as UTF-8"),
        (Hello(Role.VIEWER, "v", auth_data=b"short"), "auth_data is 5 bytes, 32 expected"),
        (Hello(Role.VIEWER, "v", version_min=2, version_max=1), "version range 2..1"),
        (Hello(Role.VIEWER, "v", rank=-1), "HELLO rank = -1 does not fit u32"),
        (Hello(300, "v"), "HELLO role = 300 does not fit u8"),
        (ErrorReport(1, "é" * 513), "ERROR text is 1026 bytes (limit 1024)"),
        (ErrorReport(-1, ""), "ERROR code = -1 does not fit u32"),
        (ControlAck(1, False, STATE, "x" * (MAX_TEXT + 1)), "CONTROL_ACK error is 1025 bytes"),
        (ControlAck(1, True, ControlState(1e39, 1, 1, True, 1)), "threshold = 1e+39 does not fit"),
        (Control(1, top_k=1 << 32), "CONTROL top_k = 4294967296 does not fit u32"),
        (Control(1, unknown_fields=0x3), "overlaps known fields"),
        (Control(1 << 32), "CONTROL request_id = 4294967296 does not fit u32"),
        (ProbeStats(-1, 0, 0, 0, 0, 0, 0), "PROBE_STATS frames_encoded = -1 does not fit u64"),
        (ProbeStats(0, 0, 0, 0, 0, 0, 0, np.zeros(2, np.uint64)), "record dtype"),
        (LayerSummaryBatch(np.zeros((2, 2), SUMMARY_DTYPE)), "1-D numpy array"),
        (LayerSummaryBatch(summary_records(2).astype(SUMMARY_DTYPE.newbyteorder())), "dtype"),
        (ModelMeta("m" * 1025, 1, ()), "model name is 1025 bytes"),
        (ModelMeta("m", 1, (SiteInfo(1, 1, 0, "a", 4, 2, 2),)), "layer 1 not below n_layers 1"),
        (ModelMeta("m", 1, (SiteInfo(1, 0, 0, "a", 5, 2, 2),)), "cannot hold 5 neurons"),
        (ModelMeta("m", 1, (SiteInfo(1, 0, 0, "a", 1, 2, 2),)), "exceeds twice its 1 neurons"),
        (ModelMeta("m", 1, (SiteInfo(1, 0, 1 << 16, "a", 1, 1, 1),)), "kind = 65536 does not"),
        (ModelMeta("m", 1, (SiteInfo(-1, 0, 0, "a", 1, 1, 1),)), "site_id = -1 does not fit"),
        (ModelMeta("m", 1, (SiteInfo(3, 0, 0, "", 1, 1, 1),) * 2), "site id 3 appears more"),
        (ModelMeta("m", 70000, ()), "70000 layers"),
        (BlockGradNorms(np.zeros(MAX_LAYERS + 1, np.float32)), "65537 layers (limit 65536)"),
        (BlockGradNorms(np.zeros((2, 2), np.float32)), "norms must be a 1-D array of numbers"),
        (BlockGradNorms(np.array(["a"])), "norms must be a 1-D array of numbers"),
        (TrainingMetrics({f"m{i}": 0.0 for i in range(257)}), "257 metrics (limit 256)"),
        (TrainingMetrics({"": 1.0}), "name '' is empty or holds a NUL"),
        (TrainingMetrics({"lo\0ss": 1.0}), "holds a NUL"),
        (TrainingMetrics({"x" * 25: 1.0}), "is 25 bytes (limit 24)"),
        (TrainingMetrics({"é" * 13: 1.0}), "is 26 bytes (limit 24)"),
        (TrainingMetrics({"\ud800": 1.0}), "cannot be encoded as UTF-8"),
        (TrainingMetrics({"loss": "1.5"}), "TRAINING_METRICS loss = '1.5' is not a number"),
        (TrainingMetrics({"loss": None}), "is not a number"),  # type: ignore[dict-item]
        (TrainingMetrics({"loss": 10**400}), "does not fit f64"),
        (TrainingMetrics({1: 1.0}), "name 1 is not a string"),  # type: ignore[dict-item]
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_encoder_refuses_what_the_wire_cannot_carry(message: Any, fault: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(fault)):
        encode(message)


def _attention(
    tokens: Any = ("a", "b"), layers: Any = (0,), heads: Any = (1,), weights: Any = None
) -> AttentionPattern:
    if weights is None:
        weights = np.tril(np.ones((1, 2, 2))) / [[1], [2]]
    return AttentionPattern(tokens, layers, heads, weights)


def _moe(tokens: Any = ((3, 1),), top_k: Any = 1, dropped: Any = (0,)) -> MoeRouting:
    return MoeRouting([2], tokens, [[0.75, 0.25]], dropped, top_k)


@pytest.mark.parametrize(
    ("message", "fault"),
    [
        (_attention(tokens=()), "ATTENTION token_count is 0 (1..128 allowed)"),
        (_attention(tokens=("a",) * 129), "ATTENTION token_count is 129"),
        (_attention(tokens="ab"), "tokens must be a sequence of strings"),
        (_attention(tokens=("a", b"b")), "ATTENTION token 1 is bytes, not str"),
        (_attention(tokens=("a", "b" * 65)), "ATTENTION token 1 is 65 bytes (limit 64)"),
        (_attention(tokens=("a", "é" * 33)), "ATTENTION token 1 is 66 bytes (limit 64)"),
        (_attention(tokens=("\ud800", "b")), "ATTENTION token 0 cannot be encoded as UTF-8"),
        (_attention(layers=(), heads=(), weights=np.zeros((0, 2, 2))), "pair_count is 0"),
        (_attention(layers=(0,) * 257, heads=(0,) * 257), "pair_count is 257 (1..256 allowed)"),
        (_attention(layers=(0, 1)), "ATTENTION heads has shape (1,), (2,) expected"),
        (_attention(weights=np.ones((1, 2, 3))), "weights has shape (1, 2, 3), (1, 2, 2)"),
        (_attention(weights=np.ones((2, 2))), "weights has shape (2, 2), (1, 2, 2)"),
        (_attention(layers=(65536,)), "ATTENTION layers range 65536..65536 does not fit u16"),
        (_attention(heads=(-1,)), "ATTENTION heads range -1..-1 does not fit u16"),
        (_attention(heads=(1.5,)), "ATTENTION heads must be integers"),
        (_attention(weights=[[["a", "b"], ["c", "d"]]]), "weights must be an array of numbers"),
        (_attention(layers=7), "ATTENTION layers must be a 1-D array"),
        (AttentionPattern(("a",), [0], [0], [[[1.0]]], sequence=-1), "sequence = -1 does not fit"),
        (HeadStats([], np.zeros((0, 2)), np.zeros((0, 2)), 4), "HEAD_STATS layers count is 0"),
        (HeadStats([0], np.zeros((1, 0)), np.zeros((1, 0)), 4), "head_count is 0 (1..1024"),
        (HeadStats([0], np.zeros((1, 1025)), np.zeros((1, 1025)), 4), "head_count is 1025"),
        (HeadStats([0], np.zeros((1, 2)), np.zeros((1, 2)), 0), "HEAD_STATS tokens is 0"),
        (HeadStats([0], np.zeros((1, 2)), np.zeros((1, 2)), 129), "HEAD_STATS tokens is 129"),
        (HeadStats([0], np.zeros((1, 2)), np.zeros((1, 2)), 2.0), "tokens = 2.0 is not an int"),
        (HeadStats([0], np.zeros((1, 2)), np.zeros((1, 3)), 4), "max_logit has shape (1, 3)"),
        (HeadStats([0, 1], np.zeros((1, 2)), np.zeros((1, 2)), 4), "entropy has shape (1, 2)"),
        (HeadStats([0], np.zeros(2), np.zeros(2), 4), "head_count is 0"),
        (ResidualTokens([0], np.zeros((1, 129))), "RESIDUAL token_count is 129 (1..128"),
        (ResidualTokens([0], np.zeros((1, 0))), "RESIDUAL token_count is 0"),
        (ResidualTokens([0, 1], np.zeros((1, 4))), "RESIDUAL norms has shape (1, 4), (2, 4)"),
        (ResidualTokens(np.zeros(65536, int), np.zeros((1, 1))), "layers count is 65536"),
        (_moe(top_k=3), "MOE_ROUTING top_k is 3 (1..2 allowed)"),
        (_moe(top_k=0), "MOE_ROUTING top_k is 0 (1..2 allowed)"),
        (_moe(tokens=[[]]), "MOE_ROUTING expert_count is 0 (1..1024 allowed)"),
        (_moe(tokens=np.zeros((1, 1025), int)), "expert_count is 1025 (1..1024 allowed)"),
        (_moe(tokens=[[1, -1]]), "MOE_ROUTING tokens range -1..1 does not fit u32"),
        (_moe(tokens=[[1, 1 << 32]]), "tokens range 1..4294967296 does not fit u32"),
        (_moe(dropped=(0, 0)), "MOE_ROUTING dropped has shape (2,), (1,) expected"),
        (_moe(dropped=(0.5,)), "MOE_ROUTING dropped must be integers"),
        (MoeRouting([2], [[1, 2, 3]], [[0.5, 0.5]], [0], 1), "probs has shape (1, 2), (1, 3)"),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_encoder_refuses_malformed_attention_residual_and_routing(message: Any, fault: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(fault)):
        encode(message)


def test_attention_at_its_limits_fits_one_payload_and_round_trips() -> None:
    n_tokens, n_pairs = MAX_SAMPLED_TOKENS, MAX_ATTENTION_PAIRS
    tokens = tuple(("é" * 32 if i % 2 else "") for i in range(n_tokens))
    assert len(tokens[1].encode()) == MAX_TOKEN_BYTES
    pairs = np.arange(n_pairs)
    weights = np.tril(np.ones((n_tokens, n_tokens), np.float16))
    message = AttentionPattern(
        tokens, pairs // 8, pairs % 8, np.broadcast_to(weights, (n_pairs, n_tokens, n_tokens))
    )
    raw = encode(message)
    assert len(raw) < MAX_PAYLOAD
    frame = decode_frame(raw)
    assert frame is not None and isinstance(frame.message, AttentionPattern)
    assert frame.message.tokens == tokens
    assert frame.message.weights.shape == (n_pairs, n_tokens, n_tokens)
    assert frame.message.heads[-1] == 7 and frame.message.layers[-1] == 31
    assert np.array_equal(frame.message.weights[5], weights)


def test_new_frame_encoders_convert_dtypes_and_pad_with_zeros() -> None:
    weights = np.array([[[1.0, 0.0], [1e5, np.nan]]])  # float64; 1e5 overflows float16
    attention = decode_frame(encode(AttentionPattern(("a", "b"), [3], [np.int64(2)], weights)))
    assert attention is not None and isinstance(attention.message, AttentionPattern)
    assert attention.message.weights.dtype == np.float16
    assert attention.message.weights[0, 1, 0] == np.inf and np.isnan(
        attention.message.weights[0, 1, 1]
    )
    raw = encode(ResidualTokens([0], [[1.0, 2.0, 3.0]]))  # 12 bytes of norms, padded to 16
    assert len(raw) == 32 + 8 + 8 + 16 and raw[-4:] == bytes(4)
    routing = decode_frame(encode(MoeRouting((1,), [[4, 0]], [[1.0, 0.0]], [5], np.int64(2))))
    assert routing is not None and isinstance(routing.message, MoeRouting)
    assert routing.message.tokens.dtype == np.uint32 and routing.message.tokens.tolist() == [[4, 0]]
    assert routing.message.dropped.tolist() == [5] and routing.message.top_k == 2


def _sparse(indices: Any, values: Any, n_above: int = 10) -> SparseActivations:
    return SparseActivations(1, 0.5, n_above, indices, values)


@pytest.mark.parametrize(
    ("message", "fault"),
    [
        (_sparse([3, 3], [1.0, 2.0]), "not strictly ascending"),
        (_sparse([5, 3], [1.0, 2.0]), "not strictly ascending"),
        (_sparse([1, 2], [1.0]), "2 indices but 1 values"),
        (_sparse([1, 2, 3], [1.0, 2.0, 3.0], n_above=2), "carries 3 neurons but n_above is 2"),
        (_sparse(np.array([-1, 2]), [1.0, 2.0]), "range -1..2 does not fit u32"),
        (_sparse(np.array([1, 1 << 32]), [1.0, 2.0]), "does not fit u32"),
        (_sparse([1.5, 2.0], [1.0, 2.0]), "must be integers"),
        (_sparse([[1, 2]], [[1.0, 2.0]]), "1-D array of numbers"),
        (_sparse(["a"], [1.0]), "1-D array of numbers"),
    ],
)
def test_encoder_refuses_malformed_sparse_arrays(message: SparseActivations, fault: str) -> None:
    with pytest.raises(ProtocolError, match=fault):
        encode(message)


def test_sparse_encoder_accepts_other_numeric_dtypes_and_converts() -> None:
    message = _sparse(np.array([1, 7], np.int64), np.array([0.5, 1.5], np.float64))
    frame = decode_frame(encode(message))
    assert frame is not None
    decoded = frame.message
    assert isinstance(decoded, SparseActivations)
    assert decoded.indices.dtype == np.uint32 and decoded.values.dtype == np.float32
    assert decoded.indices.tolist() == [1, 7] and decoded.values.tolist() == [0.5, 1.5]


def test_grad_norms_encoder_converts_to_float32_and_pads_with_zeros() -> None:
    norms = np.array([0.5, np.nan, 1e39, 2.0, 7.0], np.float64)[::2]  # strided: 0.5, 1e39, 7
    raw = encode(BlockGradNorms(norms))
    assert len(raw) == 32 + 8 + 16 and raw[-4:] == bytes(4)
    frame = decode_frame(raw)
    assert frame is not None and isinstance(frame.message, BlockGradNorms)
    assert frame.message.norms.dtype == np.float32
    assert frame.message.norms.tolist() == [0.5, float("inf"), 7.0]


def test_summary_encoder_accepts_non_contiguous_records() -> None:
    records = summary_records(6)
    records["site_id"] = np.arange(6)
    frame = decode_frame(encode(LayerSummaryBatch(records[::2])))
    assert frame is not None and isinstance(frame.message, LayerSummaryBatch)
    assert frame.message.records["site_id"].tolist() == [0, 2, 4]


@pytest.mark.parametrize(
    ("header", "fault"),
    [
        ({"flags": 8}, "reserved header flag bits set: 0x8"),
        ({"step": -1}, "header step = -1 does not fit u32"),
        ({"rank": 1 << 16}, "header rank = 65536 does not fit u16"),
        ({"timestamp_ns": -5}, "header timestamp_ns = -5 does not fit u64"),
    ],
)
def test_encoder_refuses_header_values_out_of_range(header: dict[str, int], fault: str) -> None:
    with pytest.raises(ProtocolError, match=fault):
        encode(ErrorReport(1, ""), **header)


def test_seq_wraps_modulo_2_32_and_timestamp_defaults_to_now() -> None:
    before = time.time_ns()
    frame = decode_frame(encode(ErrorReport(1, ""), seq=(1 << 32) + 5))
    after = time.time_ns()
    assert frame is not None
    assert frame.header.seq == 5
    assert before <= frame.header.timestamp_ns <= after


def test_encode_rejects_objects_that_are_not_messages() -> None:
    not_a_message: Any = {"type": "HELLO"}
    with pytest.raises(TypeError, match="not a protocol message: dict"):
        encode(not_a_message)


def test_training_metrics_hold_up_to_256_names_of_up_to_24_bytes() -> None:
    values = {f"{i:03d}".ljust(24, "x"): float(i) for i in range(MAX_METRICS)}
    raw = encode(TrainingMetrics(values))
    assert len(raw) == 32 + 8 + 32 * MAX_METRICS
    frame = decode_frame(raw)
    assert frame is not None and isinstance(frame.message, TrainingMetrics)
    assert frame.message.values == values


def test_training_metrics_take_ints_and_numpy_scalars_as_float64() -> None:
    values = {"tokens": 2**53, "lr": np.float32(0.25), "ok": True, "n": np.int64(-3)}
    frame = decode_frame(encode(TrainingMetrics(values)))
    assert frame is not None and isinstance(frame.message, TrainingMetrics)
    assert frame.message.values == {"tokens": 2.0**53, "lr": 0.25, "ok": 1.0, "n": -3.0}
    assert all(type(v) is float for v in frame.message.values.values())


def test_probe_stats_clients_round_trip() -> None:
    clients = probe_client_records(2)
    clients["client_id"] = [4, 9]
    clients["bytes_sent"] = [1 << 40, 3]
    frame = decode_frame(encode(ProbeStats(1, 2, 3, 4, 5, 6, 7, clients)))
    assert frame is not None
    decoded = frame.message
    assert isinstance(decoded, ProbeStats)
    assert decoded.clients.tobytes() == clients.tobytes()
