"""A job's rank followed in full, without Qt: the request sent, the relayed points shown, the
merged statistics kept."""

from __future__ import annotations

import dataclasses

import pytest

from synapse_desktop.models.ranks import MERGED
from synapse_desktop.models.session import Session
from synapse_native.protocol import NO_FULL_RANK, Capability, HeaderFlag

from .frames import frame, meta, sparse, summaries, trainer_hello

JOB = Capability.SUMMARIES | Capability.SPARSE | Capability.JOB | Capability.RANK_RELAY


def _job(world_size: int = 4) -> Session:
    session = Session()
    hello = dataclasses.replace(trainer_hello(), capabilities=JOB, world_size=world_size)
    session.apply_frames([frame(hello, seq=0), frame(meta(2), seq=0)])
    return session


def test_following_a_rank_shows_its_relayed_points_and_keeps_the_merge() -> None:
    session = _job()
    sent = []
    session.control.requested.connect(sent.append)
    merged = summaries(list(range(6)), 2.0)
    job = int(HeaderFlag.JOB)
    session.apply_frames(
        [
            frame(merged, seq=1, step=1, rank=0),
            frame(sparse(0, [1, 2]), seq=2, step=1, rank=0),
        ]
    )
    assert session.ranks.job_ranks == 4 and session.ranks.ranks == [0]
    session.follow_rank(3)
    assert sent[-1].full_rank == 3
    assert session.sparse.points[0].step == -1  # rank 3's: none relayed yet
    relayed = frame(sparse(0, [5, 6, 7]), seq=1, step=2, rank=3)
    relayed = dataclasses.replace(relayed, header=dataclasses.replace(relayed.header, flags=job))
    session.apply_frames([frame(sparse(0, [1]), seq=3, step=2, rank=0), relayed])
    session.flush()
    assert session.sparse.points[0].indices.tolist() == [5, 6, 7]
    assert session.ranks.lens_choice == 3 and session.ranks.choice == MERGED
    assert session.stats.field("rms")[0] == merged.records["rms"][0]  # still the job's merge
    assert session.counters.seq_gaps == 0  # the relay counts its own sequence

    session.follow_rank(MERGED)
    assert sent[-1].full_rank == NO_FULL_RANK
    assert session.sparse.points[0].indices.tolist() == [1]  # the serving rank's own again
    with pytest.raises(ValueError, match="not a rank of this job"):
        session.follow_rank(4)
