"""Several ranks in one session, without Qt: merged means, one rank's view, the spread."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.ranks import MERGED
from synapse_desktop.models.session import Session
from synapse_native.protocol import Frame, LayerSummaryBatch, ProbeStats

from .frames import frame, meta, sparse, summaries, trainer_hello

SITES = list(range(6))  # meta(2): two layers of attn, mlp, residual


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def on(self, *args: object) -> None:
        self.calls += 1


def _batch(value: float, **by_site: float) -> LayerSummaryBatch:
    """Summaries of every site with ``value``; ``rms_<site>=v`` sets one site's rms."""
    batch = summaries(SITES, value)
    for key, v in by_site.items():
        batch.records["rms"][int(key.split("_")[1])] = v
    return batch


def _rank(rank: int, step: int, seq: int, batch: LayerSummaryBatch) -> Frame:
    return frame(batch, seq=seq, step=step, rank=rank)


def _connected(ranks: int) -> Session:
    session = Session()
    hellos = [frame(trainer_hello(), seq=0, rank=r) for r in range(ranks)]
    session.apply_frames([*hellos, *(frame(meta(2), seq=0, rank=r) for r in range(ranks))])
    return session


def test_one_rank_shows_as_before_and_is_also_the_merge() -> None:
    session = _connected(1)
    session.apply_frames([_rank(0, 1, 1, _batch(2.0)), _rank(0, 2, 2, _batch(3.0))])
    assert session.ranks.ranks == [0] and session.ranks.choice == MERGED
    assert session.stats.field("rms")[0] == 3.0
    assert session.history.series(0).steps.tolist() == [1, 2]
    session.choose_rank(0)
    assert session.stats.field("rms")[0] == 3.0
    spread = session.ranks.spread("rms")
    assert np.isnan(spread.spread).all() and (spread.farthest == -1).all()


def test_two_ranks_merge_to_their_mean_one_history_sample_per_step() -> None:
    session = _connected(2)
    appeared = Counter()
    session.ranks.changed.connect(appeared.on)
    stats_changed = Counter()
    session.stats.changed.connect(stats_changed.on)
    session.apply_frames([_rank(0, 1, 1, _batch(1.0)), _rank(1, 1, 1, _batch(3.0))])
    assert session.ranks.ranks == [0, 1]
    assert stats_changed.calls == 1  # one notification per batch, whatever the ranks
    merged = session.stats.field("rms")
    np.testing.assert_allclose(merged, 2.0)
    assert session.stats.steps.tolist() == [1] * 6
    np.testing.assert_allclose(session.stats.records["hist"][0, 32], 1000.0)
    session.apply_frames([_rank(0, 2, 2, _batch(5.0))])  # rank 1 has not sent step 2 yet
    assert session.stats.field("rms")[0] == pytest.approx(4.0)  # latest of each: 5 and 3
    session.apply_frames([_rank(1, 2, 2, _batch(7.0))])
    series = session.history.series(0)
    assert series.steps.tolist() == [1, 2]  # the sample of step 2 was replaced, not added
    np.testing.assert_allclose(series.field("rms"), [2.0, 6.0])
    np.testing.assert_allclose(series.bands[:, 2], series.bands[0, 2])  # one histogram shape


def test_choosing_a_rank_shows_its_statistics_history_and_points() -> None:
    session = _connected(2)
    session.apply_frames(
        [
            _rank(0, 1, 1, _batch(1.0)),
            _rank(1, 1, 1, _batch(3.0)),
            frame(sparse(0, [1, 2]), seq=2, step=1, rank=0),
            frame(sparse(0, [7]), seq=2, step=1, rank=1),
        ]
    )
    assert session.sparse.points[0].indices.tolist() == [1, 2]  # merged: rank 0's points
    changed = Counter()
    session.stats.changed.connect(changed.on)
    session.choose_rank(1)
    assert changed.calls == 1 and session.ranks.choice == 1
    np.testing.assert_allclose(session.stats.field("rms"), 3.0)
    np.testing.assert_allclose(session.history.series(0).field("rms"), [3.0])
    assert session.sparse.points[0].indices.tolist() == [7]
    session.apply_frames([_rank(0, 2, 3, _batch(9.0)), _rank(1, 2, 3, _batch(4.0))])
    np.testing.assert_allclose(session.stats.field("rms"), 4.0)  # rank 0's frames not shown
    session.choose_rank(MERGED)
    np.testing.assert_allclose(session.stats.field("rms"), 6.5)
    np.testing.assert_allclose(session.history.series(0).field("rms"), [2.0, 6.5])
    assert session.sparse.points[0].indices.tolist() == [1, 2]
    with pytest.raises(ValueError, match="rank 5"):
        session.choose_rank(5)


def test_the_spread_finds_the_rank_that_diverges() -> None:
    session = _connected(3)
    session.apply_frames(
        [
            _rank(0, 1, 1, _batch(1.0, rms_4=1.0)),
            _rank(1, 1, 1, _batch(1.0, rms_4=1.2)),
            _rank(2, 1, 1, _batch(1.0, rms_4=9.0)),
        ]
    )
    by_rank = session.ranks.by_rank("rms")
    assert by_rank.shape == (3, 6) and by_rank[:, 4].tolist() == pytest.approx([1.0, 1.2, 9.0])
    spread = session.ranks.spread("rms")
    assert spread.spread[4] == pytest.approx(8.0) and spread.farthest[4] == 2
    assert spread.spread[0] == 0.0 and spread.farthest[0] == -1  # all equal: nobody stands out


def test_a_late_rank_keeps_the_first_ranks_history() -> None:
    session = _connected(1)
    session.apply_frames([_rank(0, 1, 1, _batch(1.0)), _rank(0, 2, 2, _batch(2.0))])
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0, rank=1),
            _rank(1, 1, 1, _batch(10.0)),  # a step behind rank 0 after its HELLO: no restart
        ]
    )
    assert session.ranks.ranks == [0, 1]
    assert session.stats.steps[0] == 2 and session.stats.field("rms")[0] == pytest.approx(6.0)
    session.choose_rank(0)
    np.testing.assert_allclose(session.history.series(0).field("rms"), [1.0, 2.0])
    session.choose_rank(1)
    np.testing.assert_allclose(session.history.series(0).field("rms"), [10.0])


def test_a_new_meta_and_a_new_run_reach_every_rank() -> None:
    session = _connected(2)
    session.apply_frames([_rank(0, 5, 1, _batch(1.0)), _rank(1, 5, 1, _batch(3.0))])
    session.apply_frames([frame(meta(3), seq=2, rank=0)])  # more sites: indices move
    assert len(session.topology) == 9
    session.choose_rank(1)
    assert session.stats.field("rms")[:6].tolist() == [3.0] * 6
    assert np.isnan(session.stats.field("rms")[6:]).all()
    session.apply_frames(  # rank 0 restarts: a new run for every rank
        [frame(trainer_hello(), seq=0, rank=0), _rank(0, 1, 1, _batch(2.0))]
    )
    assert session.ranks.ranks == [0, 1]
    assert (session.stats.steps == -1).all()  # rank 1 chosen: its old data is gone too
    session.choose_rank(MERGED)
    assert session.stats.field("rms")[0] == 2.0 and session.stats.steps[0] == 1


def test_trainer_drops_add_up_over_ranks() -> None:
    session = _connected(2)
    for seq, (rank, dropped) in enumerate(((0, 3), (1, 4), (0, 5)), start=10):
        stats = ProbeStats(0, dropped, 0, 0, 0, 0, 0)  # frames_dropped, no per-client queues
        session.apply_frames([frame(stats, seq=seq, rank=rank)])
    assert session.counters.trainer_dropped == 9  # rank 0's latest 5 and rank 1's 4


def test_several_connections_sum_up_in_one_status() -> None:
    from synapse_desktop.models.connection import ConnectionState, LinkStates, Phase

    summary = ConnectionState()
    links = LinkStates(summary, ["h:9000", "h:9001"])
    links.parts[0].set(phase=Phase.LIVE, peer="probe", rank=0)
    links.parts[1].set(phase=Phase.RETRYING, reason="connection refused", retry_at=12.2, rank=1)
    status = summary.status
    assert status.phase is Phase.LIVE  # what arrives is shown
    assert status.describe(10.0) == (
        "1/2 ranks live; rank 1: retrying h:9001 in 3 s: connection refused"
    )
    assert status.reason == "h:9001: retrying: connection refused"
    links.parts[1].set(phase=Phase.LIVE, reason="", retry_at=None)
    assert summary.status.describe(10.0) == "2/2 ranks live"
    one = ConnectionState()
    single = LinkStates(one, ["h:9000"])
    single.parts[0].set(phase=Phase.LIVE, peer="probe")
    assert one.status.describe(0.0) == "live h:9000 (probe)" and not one.status.links
