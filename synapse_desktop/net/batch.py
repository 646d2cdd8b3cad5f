"""Decoding a drained batch of frames, the sparse ones in runs.

A busy tick drains dozens of SPARSE_ACTIVATIONS frames (one per site and step). Decoding each
into a ``Frame`` costs more Python than the data it carries, so consecutive sparse frames are
read with one ``struct`` call and two array views each (and one vectorised check that the
indices ascend) and handed on as one ``SparseRun``. They get the checks ``decode_frame``
makes; a run that fails any of them is decoded frame by frame with ``decode_frame`` after
all, so a bad frame is reported exactly as before.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.ordering import Skipped
from synapse_desktop.models.sparse import SparseRun
from synapse_native.protocol import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_PAYLOAD,
    VERSION,
    Frame,
    MsgType,
    decode_frame,
)

# The header and the fixed part of SPARSE_ACTIVATIONS (site_id, threshold, n, n_above).
_SPARSE_HEAD = struct.Struct(HEADER.format + "IfII")
_SPARSE = int(MsgType.SPARSE_ACTIVATIONS)
_U32 = np.dtype("<u4")
_F32 = np.dtype("<f4")
assert _SPARSE_HEAD.size == HEADER_SIZE + 16

Item: TypeAlias = Frame | Skipped | SparseRun


def decode_batch(
    raw: Sequence[bytes],
    keep: Sequence[int] | None = None,
    skipped: Sequence[Skipped] | None = None,
    *,
    max_payload: int = MAX_PAYLOAD,
) -> list[Item]:
    """The frames of ``raw`` in stream order, consecutive sparse frames as ``SparseRun``.

    With ``keep`` (ascending indices) only those frames are decoded and every other one is
    its ``skipped[i]``. Frames of unknown types are left out. Raises ``ProtocolError`` as
    ``decode_frame`` does.
    """
    items: list[Item] = []
    run: list[bytes] = []
    kept = range(len(raw)) if keep is None else keep
    position = 0
    for i in kept:
        if skipped is not None:
            if run and position < i:
                _flush(run, items, max_payload)
            items.extend(skipped[position:i])
        position = i + 1
        frame = raw[i]
        if len(frame) >= HEADER_SIZE and frame[6] | frame[7] << 8 == _SPARSE:
            run.append(frame)
            continue
        if run:
            _flush(run, items, max_payload)
        decoded = decode_frame(frame, max_payload=max_payload)
        if decoded is not None:
            items.append(decoded)
    if run:
        _flush(run, items, max_payload)
    if skipped is not None:
        items.extend(skipped[position:])
    return items


def _flush(run: list[bytes], items: list[Item], max_payload: int) -> None:
    decoded = decode_sparse_run(run, max_payload=max_payload)
    if decoded is not None:
        items.append(decoded)
    else:  # something is off: let the codec say what, frame by frame
        for frame in run:
            one = decode_frame(frame, max_payload=max_payload)
            if one is not None:
                items.append(one)
    run.clear()


def decode_sparse_run(
    frames: Sequence[bytes], *, max_payload: int = MAX_PAYLOAD
) -> SparseRun | None:
    """Whole SPARSE_ACTIVATIONS frames as one run; None if any fails a check of the codec's."""
    columns: list[tuple[Any, ...]] = []
    indices: list[npt.NDArray[np.uint32]] = []
    values: list[npt.NDArray[np.float32]] = []
    unpack, frombuffer, at = _SPARSE_HEAD.unpack_from, np.frombuffer, _SPARSE_HEAD.size
    for frame in frames:
        if len(frame) < at:
            return None
        fields = unpack(frame)
        magic, version, _, length, _, _, _, _, _, _, _, n, n_above = fields
        if (
            magic != MAGIC
            or version != VERSION
            or length > max_payload
            or length != 16 + 8 * n
            or len(frame) != HEADER_SIZE + length
            or n > n_above
        ):
            return None
        columns.append(fields)
        indices.append(frombuffer(frame, _U32, n, at))
        values.append(frombuffer(frame, _F32, n, at + 4 * n))
    if not columns:
        return None
    # Indices strictly ascending within each frame: one comparison over all of them, where
    # the pairs that straddle two frames count as rising.
    flat = np.concatenate(indices)
    rising = flat[1:] > flat[:-1]
    ends = np.cumsum([len(i) for i in indices[:-1]], dtype=np.int64)
    rising[ends[(ends > 0) & (ends < len(flat))] - 1] = True
    if not rising.all():
        return None
    _, _, _, _, seq, ts, step, rank, _, site_id, threshold, _, n_above = zip(*columns, strict=True)
    return SparseRun(seq, rank, step, ts, site_id, threshold, n_above, indices, values)
