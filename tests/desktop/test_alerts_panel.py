"""The alerts dock: frames in, alerts listed newest first; a click selects the site."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from synapse_desktop.models.anomalies import AlertKind, Severity
from synapse_native.protocol import LayerSummaryBatch

from .frames import frame, meta, summaries

pytestmark = pytest.mark.gui

N_LAYERS = 8


def _feed(session, n_steps: int = 30) -> None:  # type: ignore[no-untyped-def]
    """Steps 0.. of 8 layers: a NaN from layer 5 mlp on at step 12, layer 2 attn dead from 5."""
    frames = [frame(meta(N_LAYERS), seq=1)]
    for step in range(n_steps):
        records = summaries(list(range(3 * N_LAYERS)), 1.0).records.copy()
        records["frac_zero"] = 0.01
        if step >= 12:
            records["nan_count"][3 * 5 + 1 :] = 4
        if step >= 5:  # alive first: a site dead from its first step is how it was built
            records["frac_zero"][3 * 2] = 1.0
        frames.append(frame(LayerSummaryBatch(records), seq=2 + step, step=step))
    session.apply_frames(frames)


def test_alerts_are_listed_and_a_click_selects_the_site(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    panel, dock = window.alerts, window.alerts_dock
    assert panel.count == 0 and dock.windowTitle() == "Alerts"
    _feed(window.session)
    assert panel.count == 2
    assert dock.windowTitle() == "Alerts (2)"
    newest, oldest = panel.alert_at(0), panel.alert_at(1)
    assert newest.kind is AlertKind.DEAD and (newest.layer, newest.site) == (2, "attn")
    assert oldest.kind is AlertKind.NONFINITE and (oldest.layer, oldest.site) == (5, "mlp")
    assert oldest.severity is Severity.ERROR
    assert panel.list.item(1).text().startswith("step 12   layer 5 mlp\nfirst non-finite")
    # zoomed in far from it: a click brings the camera home, and selects the site
    window.grid.camera.scale_factor = 1.0
    window.grid.camera.center = (1e4, 1e4, 0)
    item = panel.list.item(1)
    rect = panel.list.visualItemRect(item)
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    index = window.session.topology.index_of(oldest.site_id)
    assert window.session.selection.selected == index >= 0
    site = window.session.topology.sites[index]
    assert (site.layer, site.kind_name) == (5, "mlp")
    assert "layer 5 mlp" in window.inspector_dock.windowTitle()
    centre = window.grid.geometry.layout.quads()[index].mean(axis=0)
    x, y = window.grid.project(centre)
    width, height = window.grid.canvas.size
    assert 0 <= x < width and 0 <= y < height
    shot = os.environ.get("SYNAPSE_ALERTS_SHOT")
    if shot:
        window.resize(1500, 950)
        qtbot.wait(300)
        window.grab().save(str(Path(shot)))
    # more alerts go on top; Clear empties the list and the title
    records = summaries(list(range(3 * N_LAYERS)), 1.0).records.copy()
    records["frac_zero"][3 * 7 + 2] = 1.0
    frames = [
        frame(LayerSummaryBatch(records), seq=100 + s, step=100 + s)
        for s in range(window.session.anomalies.config.dead_steps)
    ]
    window.session.apply_frames(frames)
    assert panel.count == 3 and panel.alert_at(0).layer == 7
    assert dock.windowTitle() == "Alerts (3)"
    panel.clear_button.click()
    assert panel.count == 0 and dock.windowTitle() == "Alerts"
    assert len(window.session.anomalies) == 0


def test_ctrl_4_toggles_the_dock(window) -> None:  # type: ignore[no-untyped-def]
    toggle = window.alerts_dock.toggleViewAction()
    assert toggle.shortcut().toString() == "Ctrl+4"
    shown = window.alerts_dock.isVisible()
    toggle.trigger()
    assert window.alerts_dock.isVisible() is not shown


def test_the_list_starts_over_after_a_new_run(window) -> None:  # type: ignore[no-untyped-def]
    _feed(window.session)
    assert window.alerts.count == 2
    window.session.reset_data()
    window.session.flush()
    assert window.alerts.count == 0 and window.alerts_dock.windowTitle() == "Alerts"
    np.testing.assert_array_equal(window.session.stats.steps, -1)
