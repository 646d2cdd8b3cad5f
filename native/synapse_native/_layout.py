"""What the message families share: text and padding rules, the encoders' and decoders' checks.

Each family module (``_<family>_wire.py``) holds its messages' byte layouts: fixed parts as
``struct`` formats with their field names (named in encoder errors), arrays as numpy dtypes.
Offsets are relative to the payload start (frame offset 32). Every dtype is little-endian and
aligned, so ``numpy.frombuffer`` reads records in place.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._wire import HEADER_SIZE, ProtocolError

AUTH_DATA_SIZE = 32  # HELLO ``auth_data``: a trainer's challenge or a viewer's answer

# The layer tables of ATTENTION's kin (HEAD_STATS, RESIDUAL), MOE_ROUTING and OPTIMIZER_STATS:
# an 8-byte fixed part, layer ids u16 padded to 8, then f32 statistics.
LAYER_ID_DTYPE = np.dtype("<u2")
STAT_DTYPE = np.dtype("<f4")

Part = bytes | memoryview
Payload = tuple[int, list[Part]]  # size in bytes, pieces to join

_CODE_NAMES = {"B": "u8", "H": "u16", "I": "u32", "Q": "u64", "f": "f32", "s": "bytes"}
U32_MAX = 0xFFFF_FFFF
U16_MAX = 0xFFFF


def field_codes(layout: struct.Struct) -> list[str]:
    """The struct codes of ``layout``, one per field (``32s`` counts as one)."""
    return re.findall(r"\d*[a-zA-Z]", layout.format.lstrip("<"))


def padded(n: int) -> int:
    """``n`` rounded up to a multiple of 8 (strings are zero-padded to keep fields aligned)."""
    return (n + 7) & ~7


def zero_padded(raw: bytes) -> bytes:
    """``raw`` with zeros up to ``padded(len(raw))``."""
    return raw + bytes(padded(len(raw)) - len(raw))


def encode_text(text: str, what: str, limit: int) -> bytes:
    """``text`` as UTF-8; ``ProtocolError`` naming ``what`` if it does not encode or is over
    ``limit`` bytes."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ProtocolError(f"{what} cannot be encoded as UTF-8 ({exc.reason})") from None
    if len(raw) > limit:
        raise ProtocolError(f"{what} is {len(raw)} bytes (limit {limit})")
    return raw


def decode_text(frame: memoryview, start: int, length: int, what: str) -> str:
    """The UTF-8 text at ``frame[start : start + length]``; ``ProtocolError`` naming ``what``."""
    try:
        return str(frame[start : start + length], "utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None


# Encoding: values a producer hands over, checked against what the wire can carry.


def pack_fields(
    layout: struct.Struct, what: str, names: Sequence[str], values: Sequence[Any]
) -> bytes:
    """``layout.pack(*values)``; a value that does not fit becomes a ProtocolError naming it."""
    try:
        return layout.pack(*values)
    except (struct.error, OverflowError) as exc:
        for name, code, value in zip(names, field_codes(layout), values, strict=True):
            try:
                struct.pack("<" + code, value)
            except (struct.error, OverflowError):
                kind = _CODE_NAMES.get(code[-1], code)
                raise ProtocolError(f"{what} {name} = {value!r} does not fit {kind}") from None
        raise ProtocolError(f"{what}: {exc}") from None  # pragma: no cover - names cover all


def as_records(array: Any, dtype: np.dtype[Any], what: str) -> npt.NDArray[Any]:
    """``array`` if it is a 1-D array of the record ``dtype``, made contiguous."""
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
        raise ProtocolError(f"{what} must be a 1-D numpy array of the protocol's record dtype")
    return np.ascontiguousarray(array)


def as_vector(values: Any, dtype: np.dtype[Any], what: str) -> npt.NDArray[Any]:
    """``values`` as a contiguous 1-D array of the wire ``dtype`` (u32 or f32)."""
    array = np.asarray(values)
    if array.ndim != 1 or array.dtype.kind not in "biuf":
        raise ProtocolError(f"{what} must be a 1-D array of numbers")
    if array.dtype.kind in "iu" and dtype.kind == "u" and array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > U32_MAX:
            raise ProtocolError(f"{what} range {low}..{high} does not fit u32")
    if array.dtype.kind == "f" and dtype.kind == "u":
        raise ProtocolError(f"{what} must be integers")
    return np.ascontiguousarray(array, dtype=dtype)


def as_array(
    values: Any, dtype: np.dtype[Any], shape: tuple[int, ...], what: str
) -> npt.NDArray[Any]:
    """``values`` as a contiguous array of the wire ``dtype`` and exactly ``shape``."""
    try:
        array = np.asarray(values)
    except ValueError:
        raise ProtocolError(f"{what} must be an array of numbers") from None
    if array.dtype.kind not in "biuf":
        raise ProtocolError(f"{what} must be an array of numbers")
    if array.shape != shape:
        raise ProtocolError(f"{what} has shape {array.shape}, {shape} expected")
    if dtype.kind == "u":
        if array.dtype.kind == "f":
            raise ProtocolError(f"{what} must be integers")
        if array.size:
            low, high = int(array.min()), int(array.max())
            if low < 0 or high > np.iinfo(dtype).max:
                kind = f"u{8 * dtype.itemsize}"
                raise ProtocolError(f"{what} range {low}..{high} does not fit {kind}")
    with np.errstate(over="ignore"):  # a float beyond the wire type's range is sent as inf
        return np.ascontiguousarray(array, dtype=dtype)


def length_of(values: Any, what: str) -> int:
    """The length of the first axis of an array-like (0 for a scalar, checked later)."""
    try:
        return len(values)
    except TypeError:
        raise ProtocolError(f"{what} must be a 1-D array") from None


def check_count(what: str, count: Any, low: int, high: int) -> None:
    """``count`` is an integer in ``low..high`` (a producer's value: its type is checked too)."""
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool):
        raise ProtocolError(f"{what} = {count!r} is not an integer")
    if not low <= count <= high:
        raise ProtocolError(f"{what} is {count} ({low}..{high} allowed)")


def as_layer_ids(values: Any, what: str) -> npt.NDArray[Any]:
    """A layer table's ids: 1 to 65535 of them, each a u16."""
    count = length_of(values, what)
    check_count(f"{what} count", count, 1, U16_MAX)
    return as_array(values, LAYER_ID_DTYPE, (count,), what)


def pad_to_8(nbytes: int) -> bytes:
    """The zeros that follow ``nbytes`` bytes up to a multiple of 8."""
    return bytes(padded(nbytes) - nbytes)


def flat_bytes(array: npt.NDArray[Any]) -> memoryview:
    """The bytes of a contiguous ``array``, flat (no copy)."""
    return array.reshape(-1).view(np.uint8).data


# Decoding: sizes and counts read from the frame, checked before anything else is read.


def fail_size(name: str, size: int, layout: str) -> ProtocolError:
    """The error for a ``name`` payload of ``size`` bytes where ``layout`` bytes were due."""
    return ProtocolError(f"{name} payload is {size} bytes, {layout} expected")


def check_fixed(name: str, size: int, fixed: int) -> None:
    """The payload holds at least its fixed part."""
    if size < fixed:
        raise fail_size(name, size, f"at least {fixed}")


def check_text_len(what: str, length: int, limit: int) -> None:
    """An announced text length is within ``limit``."""
    if length > limit:
        raise ProtocolError(f"{what} is {length} bytes (limit {limit})")


def check_announced(what: str, count: int, low: int, high: int) -> None:
    """An announced count is in ``low..high``."""
    if not low <= count <= high:
        raise ProtocolError(f"{what} is {count} ({low}..{high} allowed)")


def layer_table(frame: memoryview, n_layers: int) -> tuple[npt.NDArray[np.uint16], int]:
    """The layer ids after an 8-byte fixed part, and the frame offset of the next array."""
    at = HEADER_SIZE + 8
    return np.frombuffer(frame, LAYER_ID_DTYPE, n_layers, at), at + padded(2 * n_layers)
