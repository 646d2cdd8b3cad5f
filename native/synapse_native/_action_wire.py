"""Trainer actions: ACTION_LIST (31), ACTION_REQUEST (33), ACTION_RESULT (34), layout and codec.

A trainer that announces ``Capability.ACTIONS`` lists the actions its script registered
(``probe.on_request(name, fn)``); a viewer asks for one by name and the trainer runs it at its
next step boundary, answering with the outcome. ``docs/PROTOCOL.md`` sections 5.20 to 5.22
specify the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from ._layout import decode_text, encode_text, padded, zero_padded
from ._wire import HEADER_SIZE, MAX_TEXT, MsgType, ProtocolError

MAX_ACTIONS = 32  # names in one ACTION_LIST
MAX_ACTION_NAME = 64  # bytes of UTF-8, no line feed

LIST_FIXED = struct.Struct("<HHI")  # then the names joined by "\n", padded to 8
LIST_FIELDS = ("action_count", "text_len", "reserved")
REQUEST_FIXED = struct.Struct("<IHH")  # then the name, padded to 8
REQUEST_FIELDS = ("request_id", "name_len", "reserved")
RESULT_FIXED = struct.Struct("<IBBHQ")  # then the text, padded to 8
RESULT_FIELDS = ("request_id", "status", "reserved", "text_len", "step")

assert LIST_FIXED.size == REQUEST_FIXED.size == 8 and RESULT_FIXED.size == 16


class ActionStatus(IntEnum):
    """ACTION_RESULT ``status``. Decoders keep unknown numbers as plain ints."""

    DONE = 0  # the action returned; ``text`` is what it returned (``str``), if anything
    FAILED = 1  # it raised; ``text`` is the exception
    UNKNOWN = 2  # no action of that name
    REFUSED = 3  # too many requests waiting, or the trainer takes none


@dataclass(frozen=True, slots=True)
class ActionList:
    """ACTION_LIST: the names of the actions the trainer offers (sent on connect and on change)."""

    TYPE: ClassVar[MsgType] = MsgType.ACTION_LIST

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """ACTION_REQUEST: run the action ``name`` at the next step boundary."""

    TYPE: ClassVar[MsgType] = MsgType.ACTION_REQUEST

    request_id: int
    name: str


@dataclass(frozen=True, slots=True)
class ActionResult:
    """ACTION_RESULT: how one ACTION_REQUEST went, at which step, to the viewer that asked."""

    TYPE: ClassVar[MsgType] = MsgType.ACTION_RESULT

    request_id: int
    status: ActionStatus | int
    step: int = 0
    text: str = ""


def _pack(layout: struct.Struct, what: str, *values: Any) -> bytes:
    try:
        return layout.pack(*values)
    except (struct.error, OverflowError) as exc:
        raise ProtocolError(f"{what} field out of range: {exc}") from None


def check_name(name: str, what: str = "action name") -> bytes:
    """``name`` as wire bytes: 1 to 64 bytes of UTF-8 without a line feed."""
    raw = encode_text(name, what, MAX_ACTION_NAME)
    if not raw or b"\n" in raw:
        raise ProtocolError(f"{what} must be 1 to {MAX_ACTION_NAME} bytes without a line feed")
    return raw


def encode_action_list(m: ActionList) -> tuple[int, list[bytes | memoryview]]:
    if len(m.names) > MAX_ACTIONS:
        raise ProtocolError(f"ACTION_LIST has {len(m.names)} names (limit {MAX_ACTIONS})")
    text = b"\n".join(check_name(n, "ACTION_LIST name") for n in m.names)
    fixed = _pack(LIST_FIXED, "ACTION_LIST", len(m.names), len(text), 0)
    return LIST_FIXED.size + padded(len(text)), [fixed, zero_padded(text)]


def encode_action_request(m: ActionRequest) -> tuple[int, list[bytes | memoryview]]:
    name = check_name(m.name, "ACTION_REQUEST name")
    fixed = _pack(REQUEST_FIXED, "ACTION_REQUEST", m.request_id, len(name), 0)
    return REQUEST_FIXED.size + padded(len(name)), [fixed, zero_padded(name)]


def encode_action_result(m: ActionResult) -> tuple[int, list[bytes | memoryview]]:
    text = encode_text(m.text, "ACTION_RESULT text", MAX_TEXT)
    fixed = _pack(RESULT_FIXED, "ACTION_RESULT", m.request_id, int(m.status), 0, len(text), m.step)
    return RESULT_FIXED.size + padded(len(text)), [fixed, zero_padded(text)]


def _check_size(what: str, size: int, fixed: int, text_len: int) -> None:
    if size != fixed + padded(text_len):
        raise ProtocolError(
            f"{what} payload is {size} bytes, {fixed} + {padded(text_len)} expected"
        )


def decode_action_list(frame: memoryview, size: int) -> ActionList:
    if size < LIST_FIXED.size:
        raise ProtocolError(f"ACTION_LIST payload is {size} bytes, at least 8 expected")
    count, text_len, _ = LIST_FIXED.unpack_from(frame, HEADER_SIZE)
    if count > MAX_ACTIONS:
        raise ProtocolError(f"ACTION_LIST announces {count} names (limit {MAX_ACTIONS})")
    _check_size("ACTION_LIST", size, LIST_FIXED.size, text_len)
    text = decode_text(frame, HEADER_SIZE + LIST_FIXED.size, text_len, "ACTION_LIST names")
    names = tuple(text.split("\n")) if count else ()
    if len(names) != count or not all(0 < len(n.encode()) <= MAX_ACTION_NAME for n in names):
        raise ProtocolError(f"ACTION_LIST names do not match its count of {count}")
    return ActionList(names)


def decode_action_request(frame: memoryview, size: int) -> ActionRequest:
    if size < REQUEST_FIXED.size:
        raise ProtocolError(f"ACTION_REQUEST payload is {size} bytes, at least 8 expected")
    request_id, name_len, _ = REQUEST_FIXED.unpack_from(frame, HEADER_SIZE)
    if not 1 <= name_len <= MAX_ACTION_NAME:
        raise ProtocolError(f"ACTION_REQUEST name_len is {name_len} (1..{MAX_ACTION_NAME})")
    _check_size("ACTION_REQUEST", size, REQUEST_FIXED.size, name_len)
    name = decode_text(frame, HEADER_SIZE + REQUEST_FIXED.size, name_len, "ACTION_REQUEST name")
    return ActionRequest(request_id, name)


_STATUSES = {int(s): s for s in ActionStatus}


def decode_action_result(frame: memoryview, size: int) -> ActionResult:
    if size < RESULT_FIXED.size:
        raise ProtocolError(f"ACTION_RESULT payload is {size} bytes, at least 16 expected")
    request_id, status, _, text_len, step = RESULT_FIXED.unpack_from(frame, HEADER_SIZE)
    if text_len > MAX_TEXT:
        raise ProtocolError(f"ACTION_RESULT text_len is {text_len} (limit {MAX_TEXT})")
    _check_size("ACTION_RESULT", size, RESULT_FIXED.size, text_len)
    text = decode_text(frame, HEADER_SIZE + RESULT_FIXED.size, text_len, "ACTION_RESULT text")
    return ActionResult(request_id, _STATUSES.get(status, status), step, text)
