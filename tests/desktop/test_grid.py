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


def _intensity(values: np.ndarray, threshold: float) -> np.ndarray:
    """The reference of a point's intensity: log2 of value over threshold / 3, 0.05..1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log2(values.astype(np.float32) / np.float32(threshold)) * np.float32(1 / 3)
    return np.fmax(np.fmin(ratio, 1.0), 0.05).astype(np.float32)


def _paint_reference(expected: np.ndarray, session: Session, geometry, sites) -> None:  # type: ignore[no-untyped-def]
    """Write the texels of ``sites``' points as the atlas should hold them (numpy, slowly)."""
    atlas, layout = geometry.atlas, geometry.layout
    for index in sites:
        p = session.sparse.points[index]
        inside = p.indices < layout.rows[index] * layout.cols[index]
        row, col = np.divmod(p.indices[inside].astype(np.int64), layout.cols[index])
        levels = (_intensity(p.values[inside], p.threshold) * np.float32(255)).astype(np.uint8)
        atlas.block(expected, index)[row, col] = levels


def test_planes_whose_block_was_not_uploaded_still_fade_each_step(grid) -> None:  # type: ignore[no-untyped-def]
    session, planes = grid.session, grid.planes
    atlas = grid.geometry.atlas
    first_shelf = np.flatnonzero(atlas.shelf == 0).tolist()
    last_shelf = np.flatnonzero(atlas.shelf == atlas.shelf.max()).tolist()
    # What the atlas should hold: the whole of it halves at each new step, then the points.
    expected = np.zeros(atlas.shape, np.uint8)
    _paint_reference(expected, session, grid.geometry, range(len(session.topology)))
    seq = 200
    for step, sites in ((8, first_shelf), (9, last_shelf), (10, first_shelf)):
        seq = _apply_sparse(session, sites, step, seq)
        np.right_shift(expected, 1, out=expected)
        _paint_reference(expected, session, grid.geometry, sites)
    behind = planes.fades - planes.site_fades
    assert behind.max() >= 2 and behind[0] == 0  # the middle sites were never re-sent
    shown = planes.image.copy()
    for site, k in enumerate(behind.tolist()):
        block = atlas.block(shown, site)
        np.right_shift(block, min(k, 8), out=block)
    # The native log2 is within an ulp of numpy's: a byte may round the other way.
    assert np.abs(shown.astype(int) - expected).max() <= 1
    assert (shown != expected).mean() < 1e-4
    # The shader's halving draws what halving the texels themselves does.
    before = grid.canvas.render()
    for site, k in enumerate(behind.tolist()):
        block = atlas.block(planes.image, site)
        np.right_shift(block, min(k, 8), out=block)
    planes.site_fades[:] = planes.fades
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
        rows = grid.points.rows
        capacity = grid.points._capacity
        site_of_slot = np.repeat(np.arange(len(session.topology)), capacity)
        live = rows[:, 1] >= 0
        got = np.column_stack([site_of_slot[live], rows[live]])
        expected = []
        for index, p in enumerate(session.sparse.points):
            value = np.clip(np.log2(p.values / np.float32(p.threshold)) / 3.0, 0.05, 1.0)
            expected.append(
                np.column_stack(
                    [np.full(len(p.indices), index), p.indices, value.astype(np.float32)]
                )
            )
        want = np.concatenate(expected)
        assert grid.points.visual.count == len(want) == session.sparse.total == 4 * 10 + 2 * 5
        np.testing.assert_allclose(_sorted_rows(got), _sorted_rows(want), rtol=1e-6)
    finally:
        grid.close()
