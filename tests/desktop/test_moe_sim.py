"""End to end: ``synapse sim --moe 8`` streams MOE_ROUTING and RESIDUAL frames; the Experts dock
and the per-token residual plot show them, and the starving expert raises its alert."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from synapse_desktop.models.anomalies import AlertKind
from synapse_desktop.net.endpoint import Endpoint

from .conftest import SimThread

pytestmark = pytest.mark.gui

WAIT_MS = 30_000


def test_the_simulated_moe_model_reaches_the_experts_dock(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from synapse_serve.sim.routing import STARVE_FROM

    sim = SimThread(moe=8, fps=200.0, top_k=16)
    try:
        window.connect_to(Endpoint("127.0.0.1", sim.port))
        session, panel = window.session, window.moe_panel
        window.moe_dock.raise_()
        qtbot.waitUntil(lambda: len(session.routing.shown()) >= 5, timeout=WAIT_MS)
        window_data = session.routing.shown()
        assert window_data.layers.tolist() == [0, 1, 2, 3]
        assert window_data.n_experts == 8 and window_data.top_k == 2
        qtbot.waitUntil(lambda: panel.view.native.isVisible(), timeout=WAIT_MS)
        assert panel.summary.text().startswith("layer ")
        layer, expert = sim.simulator.router.starving  # type: ignore[union-attr]

        def idle_alert() -> bool:
            return any(a.kind is AlertKind.IDLE_EXPERT for a in session.anomalies.alerts)

        qtbot.waitUntil(idle_alert, timeout=WAIT_MS)
        alert = next(a for a in session.anomalies.alerts if a.kind is AlertKind.IDLE_EXPERT)
        assert (alert.layer, alert.expert) == (layer, expert)
        assert alert.step > STARVE_FROM + session.anomalies.config.idle_expert_steps  # fading
        # clicking the alert selects the layer's MLP site and brings the Experts dock forward
        window.depth_dock.raise_()
        qtbot.waitUntil(lambda: panel.visibleRegion().isEmpty(), timeout=WAIT_MS)
        row = next(i for i in range(window.alerts.count) if window.alerts.alert_at(i) == alert)
        item = window.alerts.list.item(row)
        rect = window.alerts.list.visualItemRect(item)
        qtbot.mouseClick(
            window.alerts.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center()
        )
        assert session.topology.sites[session.selection.selected].layer == layer
        qtbot.waitUntil(lambda: not panel.visibleRegion().isEmpty(), timeout=WAIT_MS)
        qtbot.waitUntil(
            lambda: f"expert {expert} idle for" in panel.summary.text(), timeout=WAIT_MS
        )
        image = panel.view.canvas.render()
        view = panel.view
        dark = image[tuple(np.rint(view.project("share", expert, layer)[::-1]).astype(int))]
        lit = image[
            tuple(np.rint(view.project("share", (expert + 1) % 8, layer)[::-1]).astype(int))
        ]
        assert int(lit[:3].astype(int).sum()) - int(dark[:3].astype(int).sum()) > 150
        # the per-token residual norms reach the depth profile dock
        shown = session.residual_tokens.shown()
        assert shown is not None and shown.layers.tolist() == [0, 1, 2, 3]
        assert session.residual_tokens.labels(shown)[1] != "1"  # the sampled tokens' strings
    finally:
        sim.stop()
