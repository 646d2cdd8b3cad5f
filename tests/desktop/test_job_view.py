"""The app on a job stream (``synapse sim --ranks``): one endpoint, the skew view colours the
drifting site, the tooltip and the alerts name its rank."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.anomalies import AlertKind
from synapse_desktop.models.connection import Phase
from synapse_desktop.net.endpoint import Endpoint

from .conftest import SimThread

pytestmark = pytest.mark.gui
WAIT_MS = 20_000


@pytest.fixture
def job_sim():  # type: ignore[no-untyped-def]
    thread = SimThread(ranks=64, drift_rank=37, drift_step=3, top_k=32)
    yield thread
    thread.stop()


def test_the_skew_view_colours_and_names_the_drifting_rank(window, qtbot, job_sim) -> None:  # type: ignore[no-untyped-def]
    session, panel, grid = window.session, window.panel, window.grid
    window.connect_to(Endpoint("127.0.0.1", job_sim.port), None)
    qtbot.waitUntil(lambda: session.connection.status.phase is Phase.LIVE, timeout=WAIT_MS)
    alerted = lambda: any(a.kind is AlertKind.RANK_SKEW for a in session.anomalies.alerts)  # noqa: E731
    qtbot.waitUntil(alerted, timeout=WAIT_MS)
    assert session.ranks.ranks == [0]  # one endpoint: the job is one stream
    drift = job_sim.simulator.job.drift_site
    row = int(session.topology.indices_of(np.array([drift]))[0])
    site = session.topology.sites[row]
    alert = next(a for a in session.anomalies.alerts if a.kind is AlertKind.RANK_SKEW)
    assert alert.message.startswith(f"rank 37 layer {site.layer} mlp: ")
    assert alert.message.endswith("sigma from the other ranks")
    qtbot.waitUntil(lambda: window.alerts.list.count() >= 1, timeout=WAIT_MS)
    assert any(
        "rank 37" in window.alerts.list.item(i).text() for i in range(window.alerts.list.count())
    )

    qtbot.waitUntil(panel.rank_spread.isEnabled, timeout=WAIT_MS)  # a job stream: skew view
    before = grid.planes._colors().copy()
    panel.rank_spread.setChecked(True)
    assert session.view.values.rank_spread and "rank skew" in panel.scale_note.text()
    colours = grid.planes._colors()
    assert not np.array_equal(colours, before)
    others = np.delete(np.arange(len(session.topology)), row)
    brightness = colours[:, :3].sum(axis=1)
    assert brightness[row] > np.nanmax(brightness[others])  # the outlier site is the hottest
    assert "rank skew: rank 37" in window.describe_site(row)
    qtbot.waitUntil(lambda: "job of 64 ranks" in window.status.connection.text(), timeout=WAIT_MS)
