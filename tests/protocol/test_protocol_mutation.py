"""Damaged input: decoding yields frames or raises ProtocolError, never anything else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_strategies import header_fields, messages

from synapse_native.protocol import Decoder, Frame, ProtocolError, decode_frame, encode


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes:
    raw: bytes = encode(draw(messages()), **draw(header_fields()))
    return raw


@st.composite
def mutated(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` with a few bytes flipped, replaced, inserted or deleted, or cut short."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif action == "truncate":
            del data[at:]
    return bytes(data)


def _decode_or_protocol_error(raw: bytes) -> Frame | None:
    try:
        return decode_frame(raw)
    except ProtocolError:
        return None


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_frame_decodes_or_raises_protocol_error(data: st.DataObject) -> None:
    raw = data.draw(valid_frames(), label="frame")
    _decode_or_protocol_error(data.draw(mutated(raw), label="mutated"))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), header_bytes=st.binary(min_size=1, max_size=32))
def test_rewritten_header_decodes_or_raises_protocol_error(
    data: st.DataObject, header_bytes: bytes
) -> None:
    raw = data.draw(valid_frames(), label="frame")
    at = data.draw(st.integers(0, 32 - len(header_bytes)), label="at")
    _decode_or_protocol_error(raw[:at] + header_bytes + raw[at + len(header_bytes) :])


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    chunk=st.integers(1, 600),
)
def test_corrupt_stream_raises_only_protocol_error_and_then_keeps_raising(
    data: st.DataObject, chunk: int
) -> None:
    frames = data.draw(st.lists(valid_frames(), min_size=1, max_size=4), label="frames")
    stream = data.draw(mutated(b"".join(frames)), label="stream")
    decoder = Decoder()
    error = None
    for start in range(0, len(stream), chunk):
        try:
            decoder.feed(stream[start : start + chunk])
        except ProtocolError as exc:
            error = exc
            break
    if error is not None:
        assert decoder.error is error
        with pytest.raises(ProtocolError) as again:
            decoder.feed(b"SYNP")
        assert again.value is error


@settings(max_examples=100, deadline=None)
@given(garbage=st.binary(max_size=200))
def test_random_bytes_never_crash(garbage: bytes) -> None:
    _decode_or_protocol_error(garbage)
    with contextlib.suppress(ProtocolError):
        Decoder().feed(garbage)
