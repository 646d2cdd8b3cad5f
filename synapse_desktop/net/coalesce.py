"""Keeping up under a flood: of many waiting frames keep only the newest data per site.

The receiver pump has already checked every frame's magic, version and length, so reading the
few header and payload fields needed here straight from the bytes is safe (and cheap).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from synapse_desktop.models.ordering import Skipped
from synapse_native.protocol import HEADER, HEADER_SIZE, MsgType

_FIELDS = struct.Struct("<6xH4xI12xH")  # msg_type, seq, rank
_SITE_ID = struct.Struct("<I")
_BATCH_KEY = struct.Struct("<I12xI")  # n_sites, then the first record's site id
_SUMMARY = int(MsgType.LAYER_SUMMARY_BATCH)
_SPARSE = int(MsgType.SPARSE_ACTIVATIONS)
assert HEADER.size == HEADER_SIZE == 32


def coalesce(frames: Sequence[bytes]) -> tuple[list[int], list[Skipped]]:
    """Indices of the frames to decode, in order, and every frame's (seq, rank) as ``Skipped``.

    Summary batches: only the newest of each site set. Sparse: only the newest per site. Every
    other message (meta, acknowledgements, stats, errors, hello) is kept. Frames arrive in
    stream order, so "newest" is "last".
    """
    fields = [_FIELDS.unpack_from(f) for f in frames]
    newest: dict[tuple[int, ...], int] = {}
    for i, ((msg_type, _, _), raw) in enumerate(zip(fields, frames, strict=True)):
        if msg_type == _SUMMARY and len(raw) >= HEADER_SIZE + 20:
            newest[(0, *_BATCH_KEY.unpack_from(raw, HEADER_SIZE))] = i
        elif msg_type == _SPARSE and len(raw) >= HEADER_SIZE + 4:
            newest[(1, _SITE_ID.unpack_from(raw, HEADER_SIZE)[0])] = i
    kept = set(newest.values())
    keep = [
        i
        for i, (msg_type, _, _) in enumerate(fields)
        if i in kept or msg_type not in (_SUMMARY, _SPARSE)
    ]
    return keep, [Skipped(seq, rank) for _, seq, rank in fields]
