"""Keeping up under a flood: of many waiting frames keep only the newest sparse frame per site.

Summary batches are all kept: one a step, they are the history the heatmaps and the depth
profile draw (a backlog replayed on connect arrives as one flood, and is exactly that history).

The receiver pump has already checked every frame's magic, version and length, so the codec's
unchecked peeks (``header_fields``, ``sparse_site``) are safe here (and cheap).
"""

from __future__ import annotations

from collections.abc import Sequence

from synapse_desktop.models.ordering import Skipped
from synapse_native.protocol import HEADER_SIZE, MsgType, header_fields, sparse_site

_SPARSE = int(MsgType.SPARSE_ACTIVATIONS)


def coalesce(frames: Sequence[bytes]) -> tuple[list[int], list[Skipped]]:
    """Indices of the frames to decode, in order, and every frame's (seq, rank) as ``Skipped``.

    Sparse: only the newest per site. Every other message (summaries, meta, acknowledgements,
    stats, errors, hello) is kept. Frames arrive in stream order, so "newest" is "last".
    """
    fields = [header_fields(f) for f in frames]
    newest: dict[int, int] = {}
    for i, (head, raw) in enumerate(zip(fields, frames, strict=True)):
        if head.msg_type == _SPARSE and len(raw) >= HEADER_SIZE + 4:
            newest[sparse_site(raw)] = i
    kept = set(newest.values())
    keep = [i for i, head in enumerate(fields) if i in kept or head.msg_type != _SPARSE]
    return keep, [Skipped(head.seq, head.rank) for head in fields]
