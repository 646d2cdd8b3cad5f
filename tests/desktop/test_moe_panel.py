"""The Experts dock, fed real MOE_ROUTING frames and rendered for real (Mesa under Xvfb): the
layer x expert and expert x step heatmaps, the CV bars, a starved expert drawn dark, clicks
selecting the layer, the summary line, and the dock in the window."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.session import Session
from synapse_native.protocol import MoeRouting, SiteKind

from .frames import frame, meta

pytestmark = pytest.mark.gui

N_LAYERS = 6
E = 8
STEPS = 60
STARVED_LAYER, STARVED_EXPERT, STARVED_FROM = 2, 5, 20


def routing_frames(first_seq: int = 2, steps: range = range(STEPS)) -> list[object]:
    """Every layer routes ~64 tokens to each expert; expert 5 of layer 2 gets none from step 20."""
    rng = np.random.default_rng(1)
    frames = []
    for i, step in enumerate(steps):
        tokens = rng.integers(56, 72, size=(N_LAYERS, E)).astype(np.uint32)
        if step >= STARVED_FROM:
            tokens[STARVED_LAYER, STARVED_EXPERT] = 0
        probs = (tokens / tokens.sum(axis=1, keepdims=True)).astype(np.float32)
        layers = np.arange(N_LAYERS, dtype=np.uint16)
        message = MoeRouting(layers, tokens, probs, np.zeros(N_LAYERS, np.uint32), 2)
        frames.append(frame(message, seq=first_seq + i, step=step))
    return frames


def _site(session: Session, layer: int, kind: SiteKind) -> int:
    return next(s.index for s in session.topology.sites if (s.layer, s.kind) == (layer, kind))


@pytest.fixture
def panel(qtbot):  # type: ignore[no-untyped-def]
    from synapse_desktop.qt.moe_panel import MoePanel

    session = Session()
    session.apply_frames([frame(meta(N_LAYERS), seq=1), *routing_frames()])
    widget = MoePanel(session)
    qtbot.addWidget(widget)
    widget.resize(560, 640)
    widget.show()
    qtbot.waitUntil(widget.isVisible)
    widget.refresh()
    widget.view.canvas.render()  # lays the plots out
    yield widget
    widget.close_view()


def _brightness(image: np.ndarray, xy: tuple[float, float]) -> int:
    return int(image[round(xy[1]), round(xy[0]), :3].astype(int).sum())


def test_a_starved_expert_is_a_dark_cell_and_a_dark_row_over_steps(panel) -> None:  # type: ignore[no-untyped-def]
    view, session = panel.view, panel.session
    session.selection.select(_site(session, STARVED_LAYER, SiteKind.MLP))
    panel.refresh()
    assert view.shown_layer == STARVED_LAYER
    assert view.recent_share[STARVED_LAYER, STARVED_EXPERT] == 0.0
    assert view.recent_share[STARVED_LAYER, 0] == pytest.approx(8 / 7, rel=0.1)
    image = view.canvas.render()
    background = image[2, 2, :3].astype(int)
    drawn = (np.abs(image[..., :3].astype(int) - background).sum(axis=2) > 60).mean()
    assert drawn > 0.3  # the heatmaps fill most of the canvas
    dark = _brightness(image, view.project("share", STARVED_EXPERT, STARVED_LAYER))
    lit = _brightness(image, view.project("share", 1, STARVED_LAYER))
    assert lit - dark > 200
    for step in (25, 40, STEPS - 1):  # the starved row, over its steps
        dark = _brightness(image, view.project("time", step, STARVED_EXPERT))
        for expert in (0, 4, 6):
            assert _brightness(image, view.project("time", step, expert)) - dark > 200
    before = _brightness(image, view.project("time", 10, STARVED_EXPERT))
    assert before - _brightness(image, view.project("time", 40, STARVED_EXPERT)) > 200
    # the CV bar of the starved layer is the longest
    assert int(np.nanargmax(view.cv)) == STARVED_LAYER
    x, y = view.project("cv", view.cv[STARVED_LAYER] * 0.9, STARVED_LAYER)
    assert np.abs(image[round(y), round(x), :3].astype(int) - background).sum() > 100


def test_the_summary_names_cv_drops_and_the_idle_expert(panel) -> None:  # type: ignore[no-untyped-def]
    session = panel.session
    session.selection.select(_site(session, STARVED_LAYER, SiteKind.MLP))
    panel.refresh()
    text = panel.summary.text()
    assert text.startswith(f"layer {STARVED_LAYER}: CV 0.")
    assert ", 0 dropped, " in text
    assert text.endswith(f"expert {STARVED_EXPERT} idle for {STEPS - STARVED_FROM} steps")
    assert panel.layer_choice.currentData() == STARVED_LAYER
    assert [panel.layer_choice.itemData(i) for i in range(panel.layer_choice.count())] == list(
        range(N_LAYERS)
    )


def test_clicking_a_layer_row_selects_its_mlp_site(panel, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint, Qt

    view, session = panel.view, panel.session
    for plot, layer in (("share", 4), ("cv", 1)):
        x, y = view.project(plot, 0.1, layer)
        qtbot.mouseClick(view.native, Qt.MouseButton.LeftButton, pos=QPoint(int(x), int(y)))
        site = session.topology.sites[session.selection.selected]
        assert (site.layer, site.kind_name) == (layer, "mlp")
        assert view.shown_layer == layer
        assert [m.pos for m in view.share_plot.marks] == [layer - 0.5, layer + 0.5]
    panel.refresh()
    assert panel.layer_choice.currentData() == 1
    panel.layer_choice.setCurrentIndex(panel.layer_choice.findData(3))  # the selector
    site = session.topology.sites[session.selection.selected]
    assert (site.layer, site.kind_name) == (3, "mlp") and view.shown_layer == 3
    heard: list[str] = []
    view.hovered.connect(heard.append)
    view.hover(view.project("share", STARVED_EXPERT, STARVED_LAYER))
    assert heard[-1].startswith(f"layer {STARVED_LAYER} expert {STARVED_EXPERT}: 0.00% of")


def test_without_routing_frames_the_panel_says_so(qtbot) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.qt.moe_panel import NO_ROUTING, MoePanel

    widget = MoePanel(Session())
    qtbot.addWidget(widget)
    widget.show()
    widget.refresh()
    assert widget.summary.text() == NO_ROUTING
    assert not widget.view.native.isVisible() and not widget.layer_choice.isEnabled()
    widget.session.apply_frames(routing_frames(first_seq=1, steps=range(3)))
    widget.refresh()
    assert widget.view.native.isVisible() and widget.summary.text().startswith("layer 0: CV")
    widget.close_view()


def test_the_window_has_an_experts_dock_and_an_idle_alert_selects_the_layer(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    import os
    from pathlib import Path

    from PySide6.QtCore import Qt

    dock = window.moe_dock
    assert dock.windowTitle() == "Experts"
    toggle = dock.toggleViewAction()
    assert toggle.shortcut().toString() == "Ctrl+7"
    toggle.trigger()
    toggle.trigger()
    dock.raise_()
    qtbot.waitUntil(dock.isVisible)
    session = window.session
    session.apply_frames([frame(meta(N_LAYERS), seq=1), *routing_frames()])
    alerts = window.alerts
    assert alerts.count == 1
    alert = alerts.alert_at(0)
    assert (alert.layer, alert.expert, alert.step) == (STARVED_LAYER, STARVED_EXPERT, 39)
    rect = alerts.list.visualItemRect(alerts.list.item(0))
    qtbot.mouseClick(alerts.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    site = session.topology.sites[session.selection.selected]
    assert (site.layer, site.kind_name) == (STARVED_LAYER, "mlp")
    qtbot.waitUntil(lambda: window.moe_panel.view.shown_layer == STARVED_LAYER)
    qtbot.waitUntil(lambda: "idle for" in window.moe_panel.summary.text())
    shot = os.environ.get("SYNAPSE_MOE_SHOT")
    if shot:
        window.resize(1500, 950)
        qtbot.wait(400)
        window.grab().save(str(Path(shot)))
