"""Streaming settings: CONTROL (5) and CONTROL_ACK (6), layout and codec.

A viewer asks the trainer to change some settings (threshold, rate, site kinds, pause, top-k,
threshold mode, and for trainers that announce them the governor's budget and the relayed rank);
the trainer answers with the settings in force. ``docs/PROTOCOL.md`` sections 5.5 and 5.6
specify the bytes.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import ClassVar

from ._layout import (
    Payload,
    check_fixed,
    check_text_len,
    decode_text,
    encode_text,
    fail_size,
    field_codes,
    pack_fields,
    padded,
    zero_padded,
)
from ._wire import (
    HEADER_SIZE,
    KNOWN_CONTROL_FIELDS,
    MAX_TEXT,
    AckStatus,
    ControlField,
    MsgType,
    ProtocolError,
    ThresholdMode,
)

P = HEADER_SIZE  # payload offset inside the frame

CONTROL_FIXED = struct.Struct("<IIffIIII")
CONTROL_FIELDS = (
    "request_id",
    "fields",
    "threshold",
    "rate_hz",
    "site_kinds",
    "paused",
    "top_k",
    "threshold_mode",
)
# CONTROL with BUDGET or FULL_RANK: 8 more bytes after the 32.
CONTROL_BUDGET = struct.Struct("<fI")  # CONTROL's 40-byte tail: budget, full_rank

ACK_FIXED = struct.Struct("<IIffIIIHH")  # then the error text
ACK_FIELDS = (
    "request_id",
    "status",
    "threshold",
    "rate_hz",
    "site_kinds",
    "paused",
    "top_k",
    "error_len",
    "threshold_mode",
)

assert len(field_codes(CONTROL_FIXED)) == len(CONTROL_FIELDS) and CONTROL_FIXED.size == 32
assert len(field_codes(ACK_FIXED)) == len(ACK_FIELDS) and ACK_FIXED.size == 32
assert CONTROL_BUDGET.size == 8


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


def encode_control(m: Control) -> Payload:
    """CONTROL payload: its size and the pieces to join."""
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
    fixed = pack_fields(CONTROL_FIXED, "CONTROL", CONTROL_FIELDS, fixed_values)
    if m.budget is None and m.full_rank is None:
        return CONTROL_FIXED.size, [fixed]
    tail = (0.0 if m.budget is None else m.budget, 0 if m.full_rank is None else m.full_rank)
    budget = pack_fields(CONTROL_BUDGET, "CONTROL", ("budget", "full_rank"), tail)
    return CONTROL_FIXED.size + CONTROL_BUDGET.size, [fixed, budget]


def encode_control_ack(m: ControlAck) -> Payload:
    """CONTROL_ACK payload: its size and the pieces to join."""
    error = encode_text(m.error, "CONTROL_ACK error", MAX_TEXT)
    status = AckStatus.APPLIED if m.applied else AckStatus.REJECTED
    s = m.state
    fixed_values = (
        *(m.request_id, status, s.threshold, s.rate_hz, s.site_kinds, int(bool(s.paused))),
        *(s.top_k, len(error), s.threshold_mode),
    )
    fixed = pack_fields(ACK_FIXED, "CONTROL_ACK", ACK_FIELDS, fixed_values)
    return ACK_FIXED.size + padded(len(error)), [fixed, zero_padded(error)]


_THRESHOLD_MODES = {int(m): m for m in ThresholdMode}
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


def _paused(name: str, raw: int) -> bool:
    if raw > 1:
        raise ProtocolError(f"{name} paused is {raw}, 0 or 1 expected")
    return raw == 1


def _threshold_mode(raw: int) -> int:
    """A ``ThresholdMode``; an unknown number is kept (the trainer rejects it by name)."""
    return _THRESHOLD_MODES.get(raw, raw)


def decode_control(frame: memoryview, size: int) -> Control:
    """CONTROL from a whole frame whose payload is ``size`` bytes."""
    if size not in (CONTROL_FIXED.size, CONTROL_FIXED.size + CONTROL_BUDGET.size):
        raise fail_size("CONTROL", size, "32 or 40")
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


def decode_control_ack(frame: memoryview, size: int) -> ControlAck:
    """CONTROL_ACK from a whole frame whose payload is ``size`` bytes."""
    check_fixed("CONTROL_ACK", size, ACK_FIXED.size)
    request_id, status, threshold, rate_hz, site_kinds, paused, top_k, error_len, mode = (
        ACK_FIXED.unpack_from(frame, P)
    )
    check_text_len("CONTROL_ACK error", error_len, MAX_TEXT)
    if size != ACK_FIXED.size + padded(error_len):
        raise fail_size("CONTROL_ACK", size, f"32 + {padded(error_len)}")
    if status > AckStatus.REJECTED:
        raise ProtocolError(f"CONTROL_ACK status {status} unknown (0 APPLIED or 1 REJECTED)")
    paused_flag = _paused("CONTROL_ACK", paused)
    state = ControlState(threshold, rate_hz, site_kinds, paused_flag, top_k, _threshold_mode(mode))
    error = decode_text(frame, P + ACK_FIXED.size, error_len, "CONTROL_ACK error")
    return ControlAck(request_id, status == AckStatus.APPLIED, state, error)
