"""The probe's cost in the app: the status bar shows it, the control panel changes the budget."""

from __future__ import annotations

import re

import pytest

from synapse_desktop.models.connection import Phase
from synapse_desktop.models.counters import Counters
from synapse_desktop.net.endpoint import Endpoint
from synapse_native.protocol import ProbeCost

pytestmark = pytest.mark.gui
WAIT_MS = 15_000


def plain(text: str) -> str:
    return re.sub("<[^>]+>", "", text)


def test_the_costliest_rank_is_the_one_shown() -> None:
    counters = Counters()
    assert counters.probe_cost is None
    counters.cost(0, ProbeCost(0.01, 0.004, 4, 8, 10**8, 10**6, 0))
    counters.cost(1, ProbeCost(0.01, 0.009, 4, 8, 10**8, 10**6, 0))
    assert counters.probe_cost is not None and counters.probe_cost.cost == 0.009


def test_status_bar_shows_the_cost_and_the_panel_changes_the_budget(window, qtbot, sim) -> None:  # type: ignore[no-untyped-def]
    window.connect_to(Endpoint("127.0.0.1", sim.port), None)
    session, panel, status = window.session, window.panel, window.status
    qtbot.waitUntil(lambda: session.connection.status.phase is Phase.LIVE, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: session.counters.probe_cost is not None, timeout=WAIT_MS)
    status.refresh()
    assert status.cost.isVisible()
    shown = plain(status.cost.text())  # red when over the budget
    assert re.fullmatch(r"probe [0-9.]+ % of step, budget 1 %", shown), shown
    over = session.counters.probe_cost.cost > 0.01
    assert ("f85149" in status.cost.text()) == over
    assert "statistics every 1 step" in status.cost.toolTip()
    assert panel.budget.isEnabled() and panel.budget_ack.text() == "in force: 1 %"

    panel.budget.setValue(2.5)
    qtbot.waitUntil(lambda: sim.simulator.budget == pytest.approx(0.025), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "budget 2.5 %" in plain(status.cost.text()), timeout=WAIT_MS)
    assert panel.budget_ack.text() == "in force: 2.5 %"
    assert not session.control.pending and not session.control.error
