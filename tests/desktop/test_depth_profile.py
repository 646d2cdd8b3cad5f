"""The depth profile canvas, rendered for real (Mesa under Xvfb): one bar and one point of each
ratio per layer, the selected layer outlined, a click selecting the layer's residual site."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.session import Session
from synapse_native.protocol import LayerSummaryBatch, SiteKind

from .frames import frame, meta, summaries

N_LAYERS = 12


def _rms(layer: int, kind: int) -> float:
    """Residual grows with depth; attention is flat, the MLP grows more slowly."""
    return {0: 0.05, 1: 0.1 + 0.02 * layer, 2: 0.5 * 1.3**layer}[kind]


def _batch(step: int, seq: int, scale: float = 1.0) -> object:
    records = summaries(list(range(3 * N_LAYERS)), 1.0).records.copy()
    records["rms"] = [scale * _rms(*divmod(i, 3)) for i in range(3 * N_LAYERS)]
    return frame(LayerSummaryBatch(records), seq=seq, step=step)


def _session() -> Session:
    session = Session()
    session.apply_frames([frame(meta(N_LAYERS), seq=1), _batch(step=10, seq=2)])
    return session


@pytest.fixture
def depth(qapp):  # type: ignore[no-untyped-def]
    from synapse_desktop.views.depth_profile import DepthProfileView

    view = DepthProfileView(_session(), size=(420, 560))
    view.canvas.show()
    view.canvas.render()  # lays the plots out
    yield view
    view.close()


def _pixel(image: np.ndarray, xy: tuple[float, float]) -> np.ndarray:
    return image[round(xy[1]), round(xy[0]), :3].astype(int)


def _site(session: Session, layer: int, kind: SiteKind) -> int:
    return next(s.index for s in session.topology.sites if (s.layer, s.kind) == (layer, kind))


@pytest.mark.gui
def test_the_visuals_hold_one_entry_per_layer_with_its_values(depth) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.views.depth_profile import RMS_RANGE

    layers = np.arange(N_LAYERS)
    residual = np.array([_rms(i, 2) for i in layers])
    assert depth.profile.layers.tolist() == layers.tolist()
    assert depth.bar_ends == pytest.approx(np.clip(np.log10(residual), *RMS_RANGE))
    vertices = depth.bars.mesh_data.get_vertices()
    assert len(vertices) == 4 * N_LAYERS  # one quad per layer
    ends = vertices[1::4]  # each quad's second corner: (log10 rms, layer - half)
    assert ends[:, 0] == pytest.approx(np.log10(residual), abs=1e-5)
    assert np.rint(ends[:, 1] + 0.35).tolist() == layers.tolist()
    for line, kind in ((depth.attn_line, 0), (depth.mlp_line, 1)):
        pos = line.pos
        assert len(pos) == N_LAYERS and pos[:, 1].tolist() == layers.tolist()
        expected = [np.log10(_rms(i, kind) / _rms(i - 1, 2)) for i in layers[1:]]
        assert pos[1:, 0] == pytest.approx(expected, abs=1e-5)
        assert line.visible
    assert np.isnan(depth.profile.attn_ratio[0])  # layer 0: no stream entering is measured
    assert len(depth.dots._data) == 2 * (N_LAYERS - 1)
    assert depth.step_text.text == "step 10"


@pytest.mark.gui
def test_it_recomputes_only_when_statistics_change(depth) -> None:  # type: ignore[no-untyped-def]
    before = depth.profile
    depth.refresh()
    assert depth.profile is before
    depth.session.apply_frames([_batch(step=11, seq=3, scale=2.0)])
    assert depth.profile is before  # not until the next refresh
    depth.refresh()
    assert depth.profile is not before
    assert depth.profile.residual_rms[3] == pytest.approx(2 * _rms(3, 2))
    assert depth.step_text.text == "step 11"


@pytest.mark.gui
def test_the_highlight_follows_the_selection(depth) -> None:  # type: ignore[no-untyped-def]
    session = depth.session
    for panel in depth.plots.values():
        assert not any(m.visible for m in panel.marks)
    session.selection.select(_site(session, 5, SiteKind.ATTN))
    assert depth.selected_layer == 5
    for panel in depth.plots.values():
        assert [m.pos for m in panel.marks] == [4.5, 5.5] and all(m.visible for m in panel.marks)
    image = depth.canvas.render()
    color = np.array(depth.plots["rms"].marks[0].color[:3]) * 255
    x, y = depth.project("rms", -1.0, 4.5)
    row = image[round(y) - 1 : round(y) + 2, round(x), :3].astype(int)
    assert (np.abs(row - color).sum(axis=1) < 60).any()  # the outline is drawn there
    session.selection.select(_site(session, 9, SiteKind.RESIDUAL))
    assert [m.pos for m in depth.ratio_panel.marks] == [8.5, 9.5]
    session.selection.select(-1)
    assert depth.selected_layer == -1
    assert not any(m.visible for p in depth.plots.values() for m in p.marks)


@pytest.mark.gui
def test_clicking_a_layer_selects_its_residual_site(depth, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint, Qt

    session = depth.session
    for panel, layer in (("rms", 6), ("ratio", 2)):
        x, y = depth.project(panel, -0.5, layer)
        qtbot.mouseClick(depth.native, Qt.MouseButton.LeftButton, pos=QPoint(int(x), int(y)))
        site = session.topology.sites[session.selection.selected]
        assert (site.layer, site.kind_name) == (layer, "residual")
        assert depth.selected_layer == layer
    heard: list[str] = []
    depth.hovered.connect(heard.append)
    depth.hover(depth.project("rms", 0.0, 4))
    assert heard and heard[-1].startswith("layer 4: residual rms")
    assert "attn/stream in" in heard[-1]
    depth.hover(depth.project("rms", 0.0, 0))
    assert "no stream entering" in heard[-1]


@pytest.mark.gui
def test_the_bars_are_drawn_and_grow_with_the_residual_rms(depth) -> None:  # type: ignore[no-untyped-def]
    image = depth.canvas.render()
    background = image[2, 2, :3].astype(int)
    assert (np.abs(image[..., :3].astype(int) - background).sum(axis=2) > 60).mean() > 0.05
    deep, shallow = N_LAYERS - 1, 0
    between = (np.log10(_rms(shallow, 2)) + np.log10(_rms(deep, 2))) / 2
    inside = _pixel(image, depth.project("rms", between, deep))
    outside = _pixel(image, depth.project("rms", between, shallow))
    assert np.abs(inside - background).sum() > 100  # the deep layer's bar reaches there
    assert np.abs(outside - background).sum() < 20  # the shallow one's does not
    dot = _pixel(image, depth.project("ratio", np.log10(_rms(4, 1) / _rms(3, 2)), 4))
    assert np.abs(dot - background).sum() > 100  # the mlp point of layer 4


@pytest.mark.gui
def test_the_window_has_a_depth_profile_dock_toggled_by_ctrl_5(window) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt

    dock = window.depth_dock
    assert dock.windowTitle() == "Depth profile"
    assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.RightDockWidgetArea  # behind Controls
    toggle = dock.toggleViewAction()
    assert toggle.shortcut().toString() == "Ctrl+5"
    was = dock.isVisible()
    toggle.trigger()
    assert dock.isVisible() != was
    toggle.trigger()
    assert dock.isVisible() == was
