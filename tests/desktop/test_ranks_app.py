"""Two ranks (two in-process simulators) reaching one window."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from synapse_desktop.models.ranks import MERGED
from synapse_desktop.net.endpoint import Endpoint

from .conftest import SimThread

pytestmark = pytest.mark.gui
WAIT_MS = 20_000


@pytest.fixture
def two_ranks() -> Iterator[list[SimThread]]:
    sims = [SimThread(rank=rank, world_size=2, seed=rank) for rank in range(2)]
    yield sims
    for sim in sims:
        sim.stop()


def test_two_ranks_in_one_window_merged_chosen_and_controlled(  # type: ignore[no-untyped-def]
    window, qtbot, two_ranks
) -> None:
    window.connect_to([Endpoint("127.0.0.1", sim.port) for sim in two_ranks])
    session, panel = window.session, window.panel
    qtbot.waitUntil(lambda: session.ranks.ranks == [0, 1], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "2/2 ranks live" in window.status.connection.text(), timeout=WAIT_MS)
    items = [panel.rank.itemText(i) for i in range(panel.rank.count())]
    assert items == ["merged (mean across ranks)", "rank 0", "rank 1"]
    assert panel.rank.isEnabled() and panel.rank_spread.isEnabled()

    qtbot.waitUntil(lambda: bool(np.isfinite(session.ranks.by_rank("rms")).all()), timeout=WAIT_MS)
    by_rank = session.ranks.by_rank("rms")
    assert not np.allclose(by_rank[0], by_rank[1])  # two different streams, told apart
    np.testing.assert_allclose(session.stats.field("rms"), by_rank.mean(axis=0), rtol=1e-5)
    tooltip = window.describe_site(0)
    assert "rms by rank (mean shown): 0: " in tooltip and "  1: " in tooltip
    assert "farthest from the mean: rank" in tooltip

    panel.rank.setCurrentIndex(panel.rank.findData(1))
    assert session.ranks.choice == 1
    np.testing.assert_array_equal(session.stats.field("rms"), session.ranks.by_rank("rms")[1])
    panel.rank_spread.setChecked(True)
    assert session.view.values.rank_spread and "spread across ranks" in panel.scale_note.text()
    session.choose_rank(MERGED)
    assert panel.rank.currentData() == MERGED  # the model drives the widget back

    panel.threshold.setValue(2.0)  # one change, sent to every rank
    qtbot.waitUntil(
        lambda: all(abs(sim.simulator.state.threshold - 2.0) < 1e-6 for sim in two_ranks),
        timeout=WAIT_MS,
    )
    window.links.close()
    assert "not connected" in window.status.connection.text()
