"""Golden vectors in both directions: bytes -> fields and fields -> the exact bytes."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import numpy as np
import pytest
from protocol_helpers import assert_same_message, frame_bytes, message_from_json, vectors

from synapse_native.protocol import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    RESERVED_TYPES,
    AuthMode,
    Decoder,
    ErrorCode,
    ErrorReport,
    Hello,
    ModelMeta,
    MsgType,
    ProtocolError,
    Role,
    SiteKind,
    check_hello_mac,
    decode_frame,
    encode,
    header_fields,
    hello_mac,
    peek_header,
    sparse_site,
)

GOOD = vectors()["good"]
SKIPPED = vectors()["skipped"]
BAD = vectors()["bad"]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["name"] for case in cases]


@pytest.mark.parametrize("vector", GOOD, ids=_ids(GOOD))
def test_decode_gives_the_documented_fields(vector: dict[str, Any]) -> None:
    frame = decode_frame(frame_bytes(vector))
    assert frame is not None
    head = vector["header"]
    assert frame.header.msg_type == head["type"]
    assert isinstance(frame.header.msg_type, MsgType)
    assert frame.header.payload_length == head["payload_length"]
    for name in ("seq", "timestamp_ns", "step", "rank", "flags"):
        assert getattr(frame.header, name) == head[name], name
    assert frame.header.end_of_step == bool(head["flags"] & 1)
    assert_same_message(frame.message, message_from_json(vector["message"]))


ENCODABLE = [v for v in GOOD if not v.get("decode_only")]


@pytest.mark.parametrize("vector", ENCODABLE, ids=_ids(ENCODABLE))
def test_encode_gives_the_documented_bytes(vector: dict[str, Any]) -> None:
    head = vector["header"]
    raw = encode(
        message_from_json(vector["message"]),
        seq=head["seq"],
        step=head["step"],
        rank=head["rank"],
        flags=head["flags"],
        timestamp_ns=head["timestamp_ns"],
    )
    assert raw.hex() == frame_bytes(vector).hex()


@pytest.mark.parametrize("vector", GOOD, ids=_ids(GOOD))
def test_payloads_keep_8_byte_alignment(vector: dict[str, Any]) -> None:
    assert len(frame_bytes(vector)) % 8 == 0


M = TypeVar("M")


def _decoded(name: str, kind: type[M]) -> M:
    vector = next(v for v in GOOD if v["name"] == name)
    frame = decode_frame(frame_bytes(vector))
    assert frame is not None and isinstance(frame.message, kind)
    return frame.message


def test_known_numbers_decode_to_enums_and_unknown_ones_stay_ints() -> None:
    trainer = _decoded("hello_trainer_hmac_challenge", Hello)
    assert trainer.role is Role.TRAINER and trainer.auth is AuthMode.HMAC_SHA256
    future = _decoded("hello_future_peer", Hello)
    assert future.auth == 7 and not isinstance(future.auth, AuthMode)
    assert int(future.capabilities) == (1 << 40) | 1
    sites = _decoded("model_meta_four_sites", ModelMeta).sites
    assert [s.kind for s in sites[:3]] == [SiteKind.ATTN, SiteKind.MLP, SiteKind.RESIDUAL]
    assert sites[3].kind == 42 and not isinstance(sites[3].kind, SiteKind)
    assert _decoded("error_version", ErrorReport).code is ErrorCode.VERSION
    unknown = _decoded("error_unknown_code", ErrorReport).code
    assert unknown == 77 and not isinstance(unknown, ErrorCode)


@pytest.mark.parametrize("vector", SKIPPED, ids=_ids(SKIPPED))
def test_unknown_types_are_skipped_by_length(vector: dict[str, Any]) -> None:
    raw = frame_bytes(vector)
    assert decode_frame(raw) is None
    known = next(v for v in GOOD if v["name"] == "sparse_three_neurons_end_of_step")
    decoder = Decoder()
    frames = decoder.feed(raw + frame_bytes(known) + raw)
    assert [f.header.msg_type for f in frames] == [MsgType.SPARSE_ACTIVATIONS]
    assert decoder.skipped == 2
    assert decoder.buffered == 0


@pytest.mark.parametrize("vector", BAD, ids=_ids(BAD))
def test_bad_frame_raises_a_protocol_error_naming_the_fault(vector: dict[str, Any]) -> None:
    max_payload = vector.get("max_payload", MAX_PAYLOAD)
    with pytest.raises(ProtocolError, match=re.escape(vector["error"])):
        decode_frame(frame_bytes(vector), max_payload=max_payload)


STREAM_FAILURES = [v for v in BAD if v.get("stream") != "incomplete"]


@pytest.mark.parametrize("vector", STREAM_FAILURES, ids=_ids(STREAM_FAILURES))
def test_bad_frame_stops_a_stream_with_the_same_error(vector: dict[str, Any]) -> None:
    decoder = Decoder(max_payload=vector.get("max_payload", MAX_PAYLOAD))
    with pytest.raises(ProtocolError, match=re.escape(vector["error"])):
        decoder.feed(frame_bytes(vector))
    with pytest.raises(ProtocolError, match=re.escape(vector["error"])):
        decoder.feed(b"")


INCOMPLETE = [v for v in BAD if v.get("stream") == "incomplete"]


@pytest.mark.parametrize("vector", INCOMPLETE, ids=_ids(INCOMPLETE))
def test_incomplete_frame_makes_a_stream_wait(vector: dict[str, Any]) -> None:
    decoder = Decoder()
    raw = frame_bytes(vector)
    frames = decoder.feed(raw)
    whole = sum(f.header.payload_length + HEADER_SIZE for f in frames)
    assert whole < len(raw)
    assert decoder.error is None


@pytest.mark.parametrize("case", vectors()["hello_mac"], ids=lambda c: repr(c["token"]))
def test_hello_mac_matches_the_vectors(case: dict[str, str]) -> None:
    challenge = bytes.fromhex(case["challenge"])
    mac = hello_mac(case["token"], challenge)
    assert mac.hex() == case["mac"]
    assert check_hello_mac(case["token"], challenge, mac)
    assert not check_hello_mac(case["token"] + "x", challenge, mac)


def test_vectors_cover_every_message_type_and_stay_small() -> None:
    types = {v["header"]["type"] for v in GOOD}
    assert (
        types
        == {int(t) for t in MsgType} - RESERVED_TYPES
        == {*range(1, 10), *range(16, 21), 28, 29, 30, 31, 32, 33, 34, 36, 37}
    )
    assert all(len(frame_bytes(v)) < 4096 for v in GOOD)
    assert np.all([len(v["hex"][0]) == 2 * HEADER_SIZE for v in GOOD])


@pytest.mark.parametrize("case", GOOD + SKIPPED, ids=_ids(GOOD + SKIPPED))
def test_the_unchecked_peeks_read_what_the_checked_header_says(case: dict[str, Any]) -> None:
    """``header_fields`` and ``sparse_site`` (the app's per-frame routing) agree with the
    checked decoder on every golden frame."""
    raw = frame_bytes(case)
    header = peek_header(raw)
    fields = header_fields(raw)
    assert (fields.msg_type, fields.seq, fields.timestamp_ns) == (
        int(header.msg_type),
        header.seq,
        header.timestamp_ns,
    )
    assert (fields.step, fields.rank, fields.flags) == (header.step, header.rank, header.flags)
    if header.msg_type == MsgType.SPARSE_ACTIVATIONS:
        decoded = decode_frame(raw)
        assert decoded is not None and sparse_site(raw) == decoded.message.site_id
