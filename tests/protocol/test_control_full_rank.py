"""CONTROL's FULL_RANK field (ControlField 128): the 40-byte form it shares with BUDGET."""

from __future__ import annotations

import struct

import pytest

from synapse_native.protocol import (
    HEADER_SIZE,
    NO_FULL_RANK,
    Control,
    ControlField,
    ProtocolError,
    decode_frame,
    encode,
)


def _payload(control: Control) -> bytes:
    return encode(control, seq=1, step=0, rank=0)[HEADER_SIZE:]


def test_full_rank_rides_at_offset_36_of_the_40_byte_form() -> None:
    payload = _payload(Control(5, full_rank=3))
    assert len(payload) == 40
    assert struct.unpack_from("<I", payload, 4)[0] == ControlField.FULL_RANK
    assert struct.unpack_from("<fI", payload, 32) == (0.0, 3)  # no budget: written as 0
    decoded = decode_frame(encode(Control(5, full_rank=3), seq=1, step=0, rank=0))
    assert decoded is not None and decoded.message == Control(5, full_rank=3)


def test_none_and_budget_share_the_tail() -> None:
    control = Control(6, budget=0.25, full_rank=NO_FULL_RANK)
    payload = _payload(control)
    assert struct.unpack_from("<fI", payload, 32) == (0.25, 0xFFFFFFFF)
    decoded = decode_frame(encode(control, seq=1, step=0, rank=0))
    assert decoded is not None and decoded.message == control


def test_a_40_byte_control_without_the_bit_has_no_full_rank() -> None:
    decoded = decode_frame(encode(Control(7, budget=0.5), seq=1, step=0, rank=0))
    assert decoded is not None and decoded.message.full_rank is None
    assert _payload(Control(8, top_k=4)).__len__() == 32  # neither: the short form


def test_the_bit_on_a_32_byte_control_is_an_error() -> None:
    frame = bytearray(encode(Control(9, full_rank=1), seq=1, step=0, rank=0))[: HEADER_SIZE + 32]
    struct.pack_into("<I", frame, 8, 32)  # header payload_length
    with pytest.raises(ProtocolError, match="FULL_RANK but has no full_rank field"):
        decode_frame(bytes(frame))


@pytest.mark.parametrize("value", [-1, 1 << 32, 2.5])
def test_a_full_rank_that_is_no_u32_is_refused_by_the_encoder(value: object) -> None:
    with pytest.raises(ProtocolError, match="full_rank"):
        encode(Control(10, full_rank=value), seq=1, step=0, rank=0)  # type: ignore[arg-type]
