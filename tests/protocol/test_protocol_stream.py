"""The stream Decoder: reassembly, skipping by length, early header checks, sticky errors."""

from __future__ import annotations

import numpy as np
import pytest
from protocol_helpers import frame_bytes, vectors

from synapse_native.protocol import (
    HEADER,
    MAGIC,
    VERSION,
    Decoder,
    ErrorCode,
    ErrorReport,
    LayerSummaryBatch,
    MsgType,
    ProtocolError,
    SparseActivations,
    encode,
)

GOOD = {v["name"]: frame_bytes(v) for v in vectors()["good"]}
SPARSE = GOOD["sparse_three_neurons_end_of_step"]
SUMMARY = GOOD["summary_batch_two_sites"]


def _raw_frame(msg_type: int, payload: bytes, *, version: int = VERSION) -> bytes:
    head: bytes = HEADER.pack(MAGIC, version, msg_type, len(payload), 0, 0, 0, 0, 0)
    return head + payload


def test_byte_by_byte_feeding_yields_every_frame_once() -> None:
    stream = SUMMARY + SPARSE + GOOD["control_ack_rejected"]
    decoder = Decoder()
    frames = [f for i in range(len(stream)) for f in decoder.feed(stream[i : i + 1])]
    kinds = [f.header.msg_type for f in frames]
    assert kinds == [MsgType.LAYER_SUMMARY_BATCH, MsgType.SPARSE_ACTIVATIONS, MsgType.CONTROL_ACK]
    assert decoder.buffered == 0


def test_partial_frame_is_held_until_complete() -> None:
    decoder = Decoder()
    assert decoder.feed(SPARSE[:40]) == []
    assert decoder.buffered == 40
    (frame,) = decoder.feed(SPARSE[40:] + SPARSE[:5])
    assert isinstance(frame.message, SparseActivations)
    assert decoder.buffered == 5


def test_skipped_frame_body_spanning_many_feeds_is_discarded_without_buffering() -> None:
    unknown = _raw_frame(200, bytes(range(256)) * 4)
    decoder = Decoder()
    assert decoder.feed(unknown[:40]) == []
    assert decoder.skipped == 1
    assert decoder.buffered == 0
    for start in range(40, len(unknown), 100):
        assert decoder.feed(unknown[start : start + 100]) == []
        assert decoder.buffered == 0
    (frame,) = decoder.feed(SPARSE)
    assert frame.header.msg_type is MsgType.SPARSE_ACTIVATIONS
    assert decoder.skipped == 1


def test_types_between_the_known_ones_are_skipped_like_unknown_ones() -> None:
    decoder = Decoder()
    stream = b"".join(_raw_frame(t, bytes(16)) for t in (10, 15, 39, 35, 12)) + SPARSE
    assert len(decoder.feed(stream)) == 1
    assert decoder.skipped == 5


def test_header_over_the_limit_fails_before_its_body_arrives() -> None:
    decoder = Decoder(max_payload=512)
    assert decoder.feed(SUMMARY[:31]) == []
    with pytest.raises(ProtocolError, match="payload length 688 exceeds the limit of 512 bytes"):
        decoder.feed(SUMMARY[31:32])


def test_unknown_version_names_both_versions() -> None:
    with pytest.raises(
        ProtocolError, match=r"unsupported protocol version 2 \(this build speaks 1\)"
    ):
        Decoder().feed(_raw_frame(MsgType.ERROR, bytes(8), version=2))


def test_error_is_sticky_and_later_input_is_refused() -> None:
    decoder = Decoder()
    with pytest.raises(ProtocolError) as first:
        decoder.feed(SPARSE + b"JUNK" + bytes(40))
    assert decoder.error is first.value
    assert decoder.buffered == 0
    for later in (SPARSE, b"", bytearray(SPARSE)):
        with pytest.raises(ProtocolError) as again:
            decoder.feed(later)
        assert again.value is first.value


def test_frames_fed_as_bytes_are_views_on_those_bytes() -> None:
    chunk = SPARSE + SUMMARY
    frames = Decoder().feed(chunk)
    whole = np.frombuffer(chunk, np.uint8)
    sparse = frames[0].message
    assert isinstance(sparse, SparseActivations)
    assert np.shares_memory(sparse.indices, whole)
    summary = frames[1].message
    assert isinstance(summary, LayerSummaryBatch)
    assert np.shares_memory(summary.records, whole)


def test_frames_never_alias_a_mutable_buffer_the_caller_reuses() -> None:
    buffer = bytearray(SPARSE)
    (frame,) = Decoder().feed(buffer)
    message = frame.message
    assert isinstance(message, SparseActivations)
    before = message.indices.copy()
    buffer[:] = bytes(len(buffer))
    assert np.array_equal(message.indices, before)
    assert not message.indices.flags.writeable


def test_memoryview_of_another_format_is_read_as_bytes() -> None:
    words = np.frombuffer(SPARSE, np.uint32)
    (frame,) = Decoder().feed(words.data)
    assert frame.header.msg_type is MsgType.SPARSE_ACTIVATIONS


def test_error_frame_round_trips_through_a_stream() -> None:
    raw = encode(ErrorReport(ErrorCode.TOO_MANY_CLIENTS, "limit is 4"))
    (frame,) = Decoder().feed(raw)
    assert frame.message == ErrorReport(ErrorCode.TOO_MANY_CLIENTS, "limit is 4")
