"""The 3D layer grid rendered for real (Mesa under Xvfb): not blank, pickable, themed."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.session import Session
from synapse_native.protocol import LayerSummaryBatch

from .frames import frame, meta, sparse, summaries

pytestmark = pytest.mark.gui


def _session(n_layers: int = 32) -> Session:
    session = Session()
    session.apply_frame(frame(meta(n_layers), seq=1))
    n = 3 * n_layers
    batch = summaries(list(range(n)), 1.0)
    records = batch.records.copy()
    records["rms"] = np.geomspace(0.02, 50.0, n)
    seq = 2
    session.apply_frame(frame(LayerSummaryBatch(records), seq=seq, step=7))
    rng = np.random.default_rng(0)
    for site in range(n):
        seq += 1
        indices = np.sort(rng.choice(4096, 200, replace=False)).tolist()
        session.apply_frame(frame(sparse(site, indices), seq=seq, step=7))
    return session


@pytest.fixture
def grid(qapp):  # type: ignore[no-untyped-def]
    from synapse_desktop.views.layer_grid import LayerGrid

    grid = LayerGrid(_session(), size=(800, 500))
    grid.canvas.show()
    yield grid
    grid.close()


def _drawn_fraction(image: np.ndarray, background: np.ndarray) -> float:
    return float((np.abs(image[..., :3].astype(int) - background).sum(axis=2) > 30).mean())


def test_the_grid_renders_every_layer(grid) -> None:  # type: ignore[no-untyped-def]
    image = grid.canvas.render()
    background = image[0, 0, :3].astype(int)
    assert _drawn_fraction(image, background) > 0.1
    assert image[..., :3].std() > 10
    assert grid.points.visual.count == 96 * 200
    # Every card is on screen: project the centre of each layer's first plane.
    layout = grid.geometry.layout
    h, w = image.shape[:2]
    for index in range(0, len(layout), 3):
        centre = layout.quads()[index].mean(axis=0)
        x, y = grid.project(centre)
        assert 0 <= x < w and 0 <= y < h
    # Colour follows the statistic: the last residual plane is brighter than the first attn one.
    first = grid.project(layout.quads()[0].mean(axis=0)).astype(int)
    last = grid.project(layout.quads()[95].mean(axis=0)).astype(int)
    assert image[last[1], last[0], :3].sum() > image[first[1], first[0], :3].sum()


def test_picking_and_clicking_select_the_plane_under_the_pointer(grid, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint, Qt

    grid.canvas.render()
    layout = grid.geometry.layout
    target = 1  # layer 0, MLP: the nearest card from the home view
    x, y = grid.project(layout.quads()[target].mean(axis=0))
    hit = grid.pick(x, y)
    assert hit is not None and hit.index == target
    assert grid.pick(2, 2) is None
    qtbot.mouseClick(grid.native, Qt.MouseButton.LeftButton, pos=QPoint(int(x), int(y)))
    assert grid.session.selection.selected == target
    assert grid.highlight.visual.visible


def test_view_settings_change_the_picture(grid) -> None:  # type: ignore[no-untyped-def]
    before = grid.canvas.render()
    grid.session.view.set(theme="light", colormap="viridis", layer_spacing=2.0)
    after = grid.canvas.render()
    assert after[0, 0, :3].mean() > 200  # light background
    assert not np.array_equal(before, after)
    assert grid.geometry.layout.layer_x[31] == pytest.approx(2 * 31 * 40.0)
    grid.session.view.set(points=False, glow=False)
    assert not grid.points.visual.visible
