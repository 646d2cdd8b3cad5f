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


def _apply_sparse(session: Session, sites: list[int], step: int, seq: int, count: int = 200) -> int:
    rng = np.random.default_rng(step)
    frames = []
    for site in sites:
        seq += 1
        indices = np.sort(rng.choice(4096, count, replace=False)).tolist()
        message = sparse(site, indices)
        values = rng.uniform(0.6, 6.0, count).astype(np.float32)
        message = type(message)(site, 0.5, count, message.indices, values)
        frames.append(frame(message, seq=seq, step=step))
    session.apply_frames(frames)
    return seq


def test_planes_whose_shelf_was_not_uploaded_still_fade_each_step(grid) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.views.grid_adapters import gather

    session, planes = grid.session, grid.planes
    atlas = grid.geometry.atlas
    first_shelf = np.flatnonzero(atlas.shelf == 0).tolist()
    last_shelf = np.flatnonzero(atlas.shelf == atlas.shelf.max()).tolist()
    # What the atlas should hold: the whole of it halves at each new step, then the points.
    expected = np.zeros(atlas.shape, np.uint8)
    everyone = np.arange(len(session.topology))
    points = gather(session.sparse.points, grid.geometry, everyone)
    expected.reshape(-1)[points.texels] = points.levels
    seq = 200
    for step, sites in ((8, first_shelf), (9, last_shelf), (10, first_shelf)):
        seq = _apply_sparse(session, sites, step, seq)
        indices = np.asarray(sites)
        points = gather(session.sparse.points, grid.geometry, indices)
        np.right_shift(expected, 1, out=expected)
        expected.reshape(-1)[points.texels] = points.levels
    behind = planes._fades - planes._shelf_fades
    assert behind.max() >= 2 and behind[0] == 0  # the middle shelves were never re-sent
    shown = planes._image.copy()
    for shelf, (top, stop) in enumerate(atlas.shelves.tolist()):
        np.right_shift(shown[top:stop], min(int(behind[shelf]), 8), out=shown[top:stop])
    np.testing.assert_array_equal(shown, expected)
    # The shader's halving draws what halving the texels themselves does.
    before = grid.canvas.render()
    for shelf, (top, stop) in enumerate(atlas.shelves.tolist()):
        rows = planes._image[top:stop]
        np.right_shift(rows, min(int(behind[shelf]), 8), out=rows)
    planes._shelf_fades[:] = planes._fades
    planes._whole = True
    grid.refresh()
    after = grid.canvas.render()
    assert np.abs(before.astype(int) - after.astype(int)).max() <= 1


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


def test_points_keep_a_slot_range_per_site_and_grow_when_one_overflows(qapp) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.views.layer_grid import LayerGrid

    session = Session()
    session.apply_frame(frame(meta(2), seq=1))
    grid = LayerGrid(session, size=(400, 300))
    try:
        seq = _apply_sparse(session, [0, 1, 2, 3, 4, 5], 1, 1, count=10)
        assert grid.points._capacity == 16
        seq = _apply_sparse(session, [1], 2, seq, count=100)  # outgrows 16: all slots move
        assert grid.points._capacity == 128
        seq = _apply_sparse(session, [4, 1], 3, seq, count=5)  # fewer: the rest is cleared
        layout = grid.geometry.layout
        rows = grid.points.visual._buffer.view(np.float32).reshape(-1, 4)
        live = rows[rows[:, 3] >= 0]
        expected = []
        for index, p in enumerate(session.sparse.points):
            pos = layout.neuron_positions(index, p.indices)
            value = np.clip(np.log2(p.values / np.float32(p.threshold)) / 3.0, 0.05, 1.0)
            expected.append(np.column_stack([pos, value.astype(np.float32)]))
        want = np.concatenate(expected)
        assert grid.points.visual.count == len(want) == session.sparse.total == 4 * 10 + 2 * 5
        np.testing.assert_allclose(_sorted_rows(live), _sorted_rows(want), rtol=1e-6)
    finally:
        grid.close()
