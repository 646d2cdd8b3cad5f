"""Never falling behind: of the steps waiting in a drained batch, only the newest is applied.

When frames arrive faster than the app applies them, a tick drains several whole steps. The
costly frames (sparse, lenses, skew) of every step older than the newest complete one (per
rank) are skipped, whole steps at a time, and counted. Always kept: frames outside steps (model
meta, acknowledgements, stats, training metrics, job status, errors, hello), each step's summary
batch and block gradient norms (one frame each a step, cheap to apply: the history the heatmaps
draw, which would otherwise show holes), and the frames a trainer replays from its backlog on
connect (flag ``BACKLOG``: history the user asked for). So a tick costs one step's full work
plus a summary a step, and the lag stays about one tick.

The receiver pump has already checked every frame's header, so the codec's unchecked
``header_fields`` is safe here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from synapse_desktop.models.ordering import Skipped
from synapse_native.protocol import HeaderFlag, MsgType, header_fields

_END = int(HeaderFlag.END_OF_STEP)
_BACKLOG = int(HeaderFlag.BACKLOG)  # history replayed on connect: applied, never skipped
STEP_TYPES = frozenset(  # the frames of a step that skipping leaves out
    int(t)
    for t in (
        MsgType.SPARSE_ACTIVATIONS,
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
    fields = [header_fields(f) for f in frames]
    newest: dict[int, int] = {}  # rank -> newest step completed in this batch
    several = False
    for head in fields:
        if head.flags & _END and not head.flags & _BACKLOG:  # the last frame of a live step
            if head.rank in newest and newest[head.rank] != head.step:
                several = True
            newest[head.rank] = max(newest.get(head.rank, head.step), head.step)
    if not several:
        return None
    keep: list[int] = []
    old: set[tuple[int, int]] = set()
    for i, head in enumerate(fields):
        live = not head.flags & _BACKLOG
        if live and head.msg_type in STEP_TYPES and newest.get(head.rank, -1) > head.step:
            old.add((head.rank, head.step))
        else:
            keep.append(i)
    return Skip(keep, [Skipped(head.seq, head.rank) for head in fields], len(old))
