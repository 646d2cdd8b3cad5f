"""Round trips: every message type, every field range, encode -> decode -> encode."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_helpers import assert_same_message
from protocol_strategies import MESSAGES, header_fields, messages

from synapse_native.protocol import (
    HEADER_SIZE,
    AttentionPattern,
    BlockGradNorms,
    Decoder,
    HeadStats,
    LayerSummaryBatch,
    MoeRouting,
    OptimizerStats,
    ProbeStats,
    ResidualTokens,
    SparseActivations,
    TrainingMetrics,
    decode_frame,
    encode,
    peek_header,
)


@pytest.mark.parametrize("kind", list(MESSAGES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip(kind: str, data: st.DataObject) -> None:
    message = data.draw(MESSAGES[kind], label="message")
    head = data.draw(header_fields(), label="header")
    raw = encode(message, **head)
    assert len(raw) % 8 == 0
    frame = decode_frame(raw)
    assert frame is not None
    assert frame.header.msg_type == message.TYPE
    assert frame.header.payload_length == len(raw) - HEADER_SIZE
    assert {name: getattr(frame.header, name) for name in head} == head
    assert peek_header(raw) == frame.header
    assert_same_message(frame.message, message)
    assert encode(frame.message, **head) == raw


@settings(max_examples=40, deadline=None)
@given(
    batch=st.lists(st.tuples(messages(), header_fields()), min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 4000), max_size=8),
)
def test_stream_split_anywhere_yields_the_same_frames(
    batch: list[tuple[Any, dict[str, int]]], cuts: list[int]
) -> None:
    stream = b"".join(encode(message, **head) for message, head in batch)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    decoder = Decoder()
    frames = []
    for start, end in itertools.pairwise(bounds):
        frames += decoder.feed(stream[start:end])
    assert decoder.buffered == 0
    assert len(frames) == len(batch)
    for frame, (message, head) in zip(frames, batch, strict=True):
        assert_same_message(frame.message, message)
        assert frame.header.seq == head["seq"]


def _arrays(message: Any) -> list[np.ndarray]:
    if isinstance(message, LayerSummaryBatch):
        return [message.records]
    if isinstance(message, SparseActivations):
        return [message.indices, message.values]
    if isinstance(message, ProbeStats):
        return [message.clients]
    if isinstance(message, BlockGradNorms):
        return [message.norms]
    if isinstance(message, AttentionPattern):
        return [message.layers, message.heads, message.weights]
    if isinstance(message, HeadStats):
        return [message.layers, message.entropy, message.max_logit]
    if isinstance(message, ResidualTokens):
        return [message.layers, message.norms]
    if isinstance(message, MoeRouting):
        return [message.layers, message.tokens, message.probs, message.dropped]
    if isinstance(message, OptimizerStats):
        return [message.layers, message.update_ratio, message.grad_norm, message.v_below_g2]
    return []


def test_training_metrics_keep_order_nan_and_the_sign_of_zero() -> None:
    values = {"loss": float("nan"), "lr": -0.0, "gnorm": float("inf"), "step_time": 1e-300}
    frame = decode_frame(encode(TrainingMetrics(values), step=41, rank=3))
    assert frame is not None and isinstance(frame.message, TrainingMetrics)
    assert (frame.header.step, frame.header.rank) == (41, 3)
    assert_same_message(frame.message, TrainingMetrics(values))
    assert list(frame.message.values) == ["loss", "lr", "gnorm", "step_time"]


@settings(max_examples=30, deadline=None)
@given(
    message=st.one_of(
        MESSAGES["LAYER_SUMMARY_BATCH"],
        MESSAGES["SPARSE_ACTIVATIONS"],
        MESSAGES["PROBE_STATS"],
        MESSAGES["BLOCK_GRAD_NORMS"],
        MESSAGES["ATTENTION"],
        MESSAGES["HEAD_STATS"],
        MESSAGES["RESIDUAL"],
        MESSAGES["MOE_ROUTING"],
        MESSAGES["OPTIMIZER_STATS"],
    )
)
def test_decoded_arrays_are_views_on_the_frame(message: Any) -> None:
    raw = encode(message)
    frame = decode_frame(raw)
    assert frame is not None
    whole = np.frombuffer(raw, np.uint8)
    arrays = _arrays(frame.message)
    assert len(arrays) == len(_arrays(message))
    for array in arrays:
        assert not array.flags.owndata
        assert not array.flags.writeable
        assert array.size == 0 or np.shares_memory(array, whole)
