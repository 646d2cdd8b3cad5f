"""Never falling behind: of the steps waiting in a drained batch, only the newest is applied.

When frames arrive faster than the app applies them, a tick drains several whole steps. The
frames of every step older than the newest complete one (per rank) are skipped, whole steps at
a time, and counted; frames outside steps (model meta, acknowledgements, stats, training
metrics, job status, errors, hello) are always kept, and so are the frames a trainer replays
from its backlog on connect (flag ``BACKLOG``: history the user asked for). So a tick costs
one step's work whatever arrived, and the lag stays about one tick.

The receiver pump has already checked every frame's header, so reading the header's type, seq,
step, rank and flags straight from the bytes is safe.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from synapse_desktop.models.ordering import Skipped
from synapse_native.protocol import HeaderFlag, MsgType

_FIELDS = struct.Struct("<6xH4xI8xIHH")  # msg_type, seq, step, rank, flags
_END = int(HeaderFlag.END_OF_STEP)
_BACKLOG = int(HeaderFlag.BACKLOG)  # history replayed on connect: applied, never skipped
STEP_TYPES = frozenset(
    int(t)
    for t in (
        MsgType.LAYER_SUMMARY_BATCH,
        MsgType.SPARSE_ACTIVATIONS,
        MsgType.BLOCK_GRAD_NORMS,
        MsgType.ATTENTION,
        MsgType.RESIDUAL,
        MsgType.MOE_ROUTING,
        MsgType.HEAD_STATS,
        MsgType.OPTIMIZER_STATS,
        MsgType.RANK_SKEW,
    )
)


class Skip(NamedTuple):
    """Which frames to decode (ascending), every frame's place as ``Skipped``, and how many
    whole steps were left out."""

    keep: list[int]
    skipped: list[Skipped]
    steps: int


def skip_old_steps(frames: Sequence[bytes]) -> Skip | None:
    """The frames to apply when ``frames`` hold more than one complete step of a rank; None
    when nothing needs skipping (the batch is applied as it is)."""
    fields = [_FIELDS.unpack_from(f) for f in frames]
    newest: dict[int, int] = {}  # rank -> newest step completed in this batch
    several = False
    for _, _, step, rank, flags in fields:
        if flags & _END and not flags & _BACKLOG:  # the last frame of a live step
            if rank in newest and newest[rank] != step:
                several = True
            newest[rank] = max(newest.get(rank, step), step)
    if not several:
        return None
    keep: list[int] = []
    old: set[tuple[int, int]] = set()
    for i, (msg_type, _, step, rank, flags) in enumerate(fields):
        live = not flags & _BACKLOG
        if live and msg_type in STEP_TYPES and rank in newest and step < newest[rank]:
            old.add((rank, step))
        else:
            keep.append(i)
    return Skip(keep, [Skipped(seq, rank) for _, seq, _, rank, _ in fields], len(old))
