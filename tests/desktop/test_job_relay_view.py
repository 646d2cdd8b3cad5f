"""The app following one rank of a job in full (``synapse sim --ranks 3``): the rank selector
lists the job's ranks, choosing one sends CONTROL FULL_RANK and the grid's sparse points become
that rank's relayed ones; choosing "merged" goes back to the serving rank's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from synapse_desktop.models.connection import Phase
from synapse_desktop.net.endpoint import Endpoint
from synapse_native.protocol import NO_FULL_RANK, HeaderFlag, SparseActivations, decode_frame

from .conftest import SimThread

pytestmark = pytest.mark.gui
WAIT_MS = 20_000
RANKS = 3


@pytest.fixture
def relay_sim():  # type: ignore[no-untyped-def]
    thread = SimThread(ranks=RANKS, top_k=32)
    sent: dict[tuple[int, int, int], np.ndarray] = {}  # (rank, step, site) -> values

    def tap(frames: Any) -> None:
        for raw in frames:
            frame = decode_frame(raw)
            if frame is not None and isinstance(frame.message, SparseActivations):
                h, m = frame.header, frame.message
                assert (h.rank == 0) != bool(h.flags & HeaderFlag.JOB)  # relayed: flagged
                sent[(h.rank, h.step, m.site_id)] = np.array(m.values)

    thread.simulator.server.add_tap(tap)
    yield thread, sent
    thread.stop()


def _shown_is(session: Any, sent: dict[tuple[int, int, int], np.ndarray], rank: int) -> bool:
    """Some site's shown points are ``rank``'s of their step, and not another rank's."""
    for row, points in enumerate(session.sparse.points):
        if points is None or not len(points.values):
            continue
        site = int(session.topology.sites[row].site_id)
        mine = sent.get((rank, points.step, site))
        other = sent.get((2 - rank, points.step, site))
        if mine is not None:
            differs = other is None or not np.array_equal(points.values, other)
            return np.array_equal(points.values, mine) and differs
    return False


def test_a_rank_followed_in_full_shows_its_own_sparse_points(window, qtbot, relay_sim) -> None:  # type: ignore[no-untyped-def]
    sim, sent = relay_sim
    session, panel = window.session, window.panel
    requests: list[Any] = []
    session.control.requested.connect(requests.append)
    window.connect_to(Endpoint("127.0.0.1", sim.port), None)
    qtbot.waitUntil(lambda: session.connection.status.phase is Phase.LIVE, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: panel.rank.count() == RANKS + 1, timeout=WAIT_MS)
    names = [panel.rank.itemText(i) for i in range(panel.rank.count())]
    assert names == ["merged (whole job)", "rank 0", "rank 1", "rank 2"]
    assert panel.rank.isEnabled()
    qtbot.waitUntil(lambda: _shown_is(session, sent, 0), timeout=WAIT_MS)

    panel.rank.setCurrentIndex(names.index("rank 2"))
    assert requests[-1].full_rank == 2
    qtbot.waitUntil(lambda: _shown_is(session, sent, 2), timeout=WAIT_MS)
    assert not any(rank == 1 for rank, _, _ in list(sent))  # the other ranks sent nothing
    assert session.ranks.choice == -1  # the statistics stay the merged ones
    assert session.stats.field("rms")[np.isfinite(session.stats.field("rms"))].size

    panel.rank.setCurrentIndex(names.index("merged (whole job)"))
    assert requests[-1].full_rank == NO_FULL_RANK
    qtbot.waitUntil(lambda: _shown_is(session, sent, 0), timeout=WAIT_MS)
