"""Decoding a drained batch of frames, the sparse ones in runs.

A busy tick drains dozens of SPARSE_ACTIVATIONS frames (one per site and step). Decoding each
into a ``Frame`` costs more Python than the data it carries, so consecutive sparse frames are
checked and read in one native call (``synapse_native.grid.scan_sparse``: the checks
``decode_frame`` makes, indices ascending included), then viewed as two arrays each, and
handed on as one ``SparseRun``. A run that fails any check is decoded frame by frame with
``decode_frame`` after all, so a bad frame is reported exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np

from synapse_desktop.models.ordering import Skipped
from synapse_desktop.models.sparse import SparseRun
from synapse_native.grid import SPARSE_HEAD, scan_sparse
from synapse_native.protocol import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    Frame,
    MsgType,
    decode_frame,
    header_fields,
)

_SPARSE = int(MsgType.SPARSE_ACTIVATIONS)
_AT = HEADER_SIZE + 16  # the first index: after the header, site_id, threshold, n and n_above
_U32 = np.dtype("<u4")
_F32 = np.dtype("<f4")

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
        if len(frame) >= HEADER_SIZE and header_fields(frame).msg_type == _SPARSE:
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
    n = len(frames)
    if not n:
        return None
    lengths = np.fromiter(map(len, frames), np.uint64, n)
    heads = np.empty(n, SPARSE_HEAD)
    if scan_sparse(b"".join(frames), lengths, heads, max_payload) < n:
        return None
    counts = heads["n"].tolist()
    frombuffer = np.frombuffer
    # Views on each frame (not on the joined copy): a site's points keep only their own frame.
    indices = [frombuffer(f, _U32, c, _AT) for f, c in zip(frames, counts, strict=True)]
    values = [frombuffer(f, _F32, c, _AT + 4 * c) for f, c in zip(frames, counts, strict=True)]
    return SparseRun(
        tuple(heads["seq"].tolist()),
        tuple(heads["rank"].tolist()),
        tuple(heads["step"].tolist()),
        tuple(heads["timestamp_ns"].tolist()),
        tuple(heads["site_id"].tolist()),
        tuple(heads["threshold"].tolist()),
        tuple(heads["n_above"].tolist()),
        indices,
        values,
    )
