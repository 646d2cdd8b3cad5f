"""A connection's first and last frames: HELLO (1) and ERROR (8), layout and codec.

Each side opens with HELLO (who it is, the versions and features it has, auth material) and
sends ERROR just before it closes on a fault. ``docs/PROTOCOL.md`` sections 5.1 and 5.8 specify
the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from ._layout import (
    AUTH_DATA_SIZE,
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
    MAX_HELLO_NAME,
    MAX_TEXT,
    VERSION,
    AuthMode,
    Capability,
    ErrorCode,
    MsgType,
    ProtocolError,
    Role,
)

P = HEADER_SIZE  # payload offset inside the frame

HELLO_FIXED = struct.Struct("<HHBBHQII32sQ")  # then the name
HELLO_FIELDS = (
    "version_min",
    "version_max",
    "role",
    "auth",
    "name_len",
    "capabilities",
    "rank",
    "world_size",
    "auth_data",
    "reserved",
)

ERROR_FIXED = struct.Struct("<IHH")  # then the text
ERROR_FIELDS = ("code", "text_len", "reserved")

assert len(field_codes(HELLO_FIXED)) == len(HELLO_FIELDS) and HELLO_FIXED.size == 64
assert len(field_codes(ERROR_FIXED)) == len(ERROR_FIELDS) and ERROR_FIXED.size == 8

_NO_CAPABILITIES = Capability(0)


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame each way: who is speaking, which versions and features, auth material."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO

    role: Role | int
    name: str
    capabilities: Capability = _NO_CAPABILITIES
    rank: int = 0
    world_size: int = 1
    auth: AuthMode | int = AuthMode.NONE
    auth_data: bytes = bytes(AUTH_DATA_SIZE)
    version_min: int = VERSION
    version_max: int = VERSION


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """ERROR: why the sender is about to close the connection."""

    TYPE: ClassVar[MsgType] = MsgType.ERROR

    code: ErrorCode | int
    text: str


def encode_hello(m: Hello) -> Payload:
    """HELLO payload: its size and the pieces to join."""
    name = encode_text(m.name, "HELLO name", MAX_HELLO_NAME)
    if len(m.auth_data) != AUTH_DATA_SIZE:
        raise ProtocolError(f"HELLO auth_data is {len(m.auth_data)} bytes, 32 expected")
    if not 1 <= m.version_min <= m.version_max:
        raise ProtocolError(f"HELLO version range {m.version_min}..{m.version_max} is empty")
    fixed_values = (
        *(m.version_min, m.version_max, m.role, m.auth, len(name), m.capabilities),
        *(m.rank, m.world_size, bytes(m.auth_data), 0),
    )
    fixed = pack_fields(HELLO_FIXED, "HELLO", HELLO_FIELDS, fixed_values)
    return HELLO_FIXED.size + padded(len(name)), [fixed, zero_padded(name)]


def encode_error(m: ErrorReport) -> Payload:
    """ERROR payload: its size and the pieces to join."""
    text = encode_text(m.text, "ERROR text", MAX_TEXT)
    fixed = pack_fields(ERROR_FIXED, "ERROR", ERROR_FIELDS, (m.code, len(text), 0))
    return ERROR_FIXED.size + padded(len(text)), [fixed, zero_padded(text)]


_ROLES = {int(r): r for r in Role}
_AUTH_MODES = {int(a): a for a in AuthMode}
_ERROR_CODES = {int(c): c for c in ErrorCode}


def decode_hello(frame: memoryview, size: int) -> Hello:
    """HELLO from a whole frame whose payload is ``size`` bytes."""
    check_fixed("HELLO", size, HELLO_FIXED.size)
    (v_min, v_max, role, auth, name_len, caps, rank, world, auth_data, _) = HELLO_FIXED.unpack_from(
        frame, P
    )
    check_text_len("HELLO name", name_len, MAX_HELLO_NAME)
    if size != HELLO_FIXED.size + padded(name_len):
        raise fail_size("HELLO", size, f"64 + {padded(name_len)}")
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


def decode_error(frame: memoryview, size: int) -> ErrorReport:
    """ERROR from a whole frame whose payload is ``size`` bytes."""
    check_fixed("ERROR", size, ERROR_FIXED.size)
    code, text_len, _ = ERROR_FIXED.unpack_from(frame, P)
    check_text_len("ERROR text", text_len, MAX_TEXT)
    if size != ERROR_FIXED.size + padded(text_len):
        raise fail_size("ERROR", size, f"8 + {padded(text_len)}")
    text = decode_text(frame, P + ERROR_FIXED.size, text_len, "ERROR text")
    return ErrorReport(_ERROR_CODES.get(code, code), text)
