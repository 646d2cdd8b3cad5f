"""Training-side numbers of a step: BLOCK_GRAD_NORMS (9) and TRAINING_METRICS (32).

BLOCK_GRAD_NORMS carries one parameter-gradient L2 norm per block; TRAINING_METRICS the scalars
the training script logged, by name. ``docs/PROTOCOL.md`` sections 5.9 and 5.10 specify the
bytes.
"""

from __future__ import annotations

import numbers
import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ._layout import Payload, as_vector, check_fixed, encode_text, fail_size, field_codes, padded
from ._wire import (
    HEADER_SIZE,
    MAX_LAYERS,
    MAX_METRICS,
    METRIC_NAME_SIZE,
    MsgType,
    ProtocolError,
)

P = HEADER_SIZE  # payload offset inside the frame

GRAD_NORMS_FIXED = struct.Struct("<II")  # then norms[n_layers], zero-padded to 8
GRAD_NORMS_FIELDS = ("n_layers", "reserved")
NORM_DTYPE = np.dtype("<f4")

METRICS_FIXED = struct.Struct("<HHI")  # then count metric records
METRICS_FIELDS = ("count", "reserved", "reserved")
METRIC_DTYPE = np.dtype([("name", f"S{METRIC_NAME_SIZE}"), ("value", "<f8")], align=True)

assert len(field_codes(GRAD_NORMS_FIXED)) == len(GRAD_NORMS_FIELDS)
assert len(field_codes(METRICS_FIXED)) == len(METRICS_FIELDS)
assert GRAD_NORMS_FIXED.size == 8
assert METRICS_FIXED.size == 8 and METRIC_DTYPE.itemsize == 32


@dataclass(frozen=True, slots=True, eq=False)
class BlockGradNorms:
    """Per-block parameter-gradient L2 norms of one step (the frame's step), one per block.

    ``norms[i]`` is the L2 norm of every parameter gradient of block ``i``, NaN when the block
    had no gradient that step. Decoded norms are a read-only float32 view on the frame.
    """

    TYPE: ClassVar[MsgType] = MsgType.BLOCK_GRAD_NORMS

    norms: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TrainingMetrics:
    """Scalars the training script logged for one step (the frame's step): name -> value.

    Names are 1 to 24 bytes of UTF-8 without NUL, at most 256 of them; values are float64 and
    may be NaN or infinite. Decoding keeps the order of the wire.
    """

    TYPE: ClassVar[MsgType] = MsgType.TRAINING_METRICS

    values: dict[str, float]


def encode_block_grad_norms(m: BlockGradNorms) -> Payload:
    """BLOCK_GRAD_NORMS payload: its size and the pieces to join."""
    with np.errstate(over="ignore"):  # a norm beyond the f32 range is sent as +inf
        norms = as_vector(m.norms, NORM_DTYPE, "BLOCK_GRAD_NORMS norms")
    n = len(norms)
    if n > MAX_LAYERS:
        raise ProtocolError(f"BLOCK_GRAD_NORMS has {n} layers (limit {MAX_LAYERS})")
    fixed = GRAD_NORMS_FIXED.pack(n, 0)
    padding = bytes(padded(norms.nbytes) - norms.nbytes)
    return GRAD_NORMS_FIXED.size + padded(norms.nbytes), [fixed, norms.data, padding]


def encode_training_metrics(m: TrainingMetrics) -> Payload:
    """TRAINING_METRICS payload: its size and the pieces to join."""
    if not isinstance(m.values, dict):
        raise ProtocolError("TRAINING_METRICS values must be a dict of name -> number")
    count = len(m.values)
    if count > MAX_METRICS:
        raise ProtocolError(f"TRAINING_METRICS has {count} metrics (limit {MAX_METRICS})")
    table = np.zeros(count, METRIC_DTYPE)
    for i, (name, value) in enumerate(m.values.items()):
        if not isinstance(name, str):
            raise ProtocolError(f"TRAINING_METRICS name {name!r} is not a string")
        raw = encode_text(name, f"TRAINING_METRICS name {name!r}", METRIC_NAME_SIZE)
        if not raw or b"\0" in raw:
            raise ProtocolError(f"TRAINING_METRICS name {name!r} is empty or holds a NUL")
        if not isinstance(value, numbers.Real):
            raise ProtocolError(f"TRAINING_METRICS {name} = {value!r} is not a number")
        try:
            table[i] = (raw, float(value))
        except OverflowError:
            raise ProtocolError(f"TRAINING_METRICS {name} = {value!r} does not fit f64") from None
    fixed = METRICS_FIXED.pack(count, 0, 0)
    return METRICS_FIXED.size + table.nbytes, [fixed, table.data]


def decode_block_grad_norms(frame: memoryview, size: int) -> BlockGradNorms:
    """BLOCK_GRAD_NORMS from a whole frame whose payload is ``size`` bytes."""
    check_fixed("BLOCK_GRAD_NORMS", size, GRAD_NORMS_FIXED.size)
    n_layers, _ = GRAD_NORMS_FIXED.unpack_from(frame, P)
    if n_layers > MAX_LAYERS:
        raise ProtocolError(f"BLOCK_GRAD_NORMS announces {n_layers} layers (limit {MAX_LAYERS})")
    if size != GRAD_NORMS_FIXED.size + padded(4 * n_layers):
        raise fail_size("BLOCK_GRAD_NORMS", size, f"8 + {padded(4 * n_layers)}")
    norms = np.frombuffer(frame, NORM_DTYPE, n_layers, P + GRAD_NORMS_FIXED.size)
    return BlockGradNorms(norms)


def decode_training_metrics(frame: memoryview, size: int) -> TrainingMetrics:
    """TRAINING_METRICS from a whole frame whose payload is ``size`` bytes."""
    check_fixed("TRAINING_METRICS", size, METRICS_FIXED.size)
    count, _, _ = METRICS_FIXED.unpack_from(frame, P)
    if count > MAX_METRICS:
        raise ProtocolError(f"TRAINING_METRICS announces {count} metrics (limit {MAX_METRICS})")
    if size != METRICS_FIXED.size + count * METRIC_DTYPE.itemsize:
        raise fail_size("TRAINING_METRICS", size, f"8 + {count} x 32")
    table = np.frombuffer(frame, METRIC_DTYPE, count, P + METRICS_FIXED.size)
    values: dict[str, float] = {}
    # numpy drops the NUL padding at the end of each name; a NUL left is one inside it.
    names, numbers = table["name"].tolist(), table["value"].tolist()
    for i, (raw, value) in enumerate(zip(names, numbers, strict=True)):
        if not raw or b"\0" in raw:
            fault = "is empty" if not raw else "has a NUL byte inside"
            raise ProtocolError(f"TRAINING_METRICS metric {i} name {fault}")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                f"TRAINING_METRICS metric {i} name is not valid UTF-8 "
                f"({exc.reason} at byte {exc.start})"
            ) from None
        if name in values:
            raise ProtocolError(f"TRAINING_METRICS name {name!r} appears more than once")
        values[name] = value
    return TrainingMetrics(values)
