"""The layer grid's pixels (Mesa under Xvfb): points land on their neurons, the bloom lights
only around points, and a restarted trainer's new run starts dark."""

from __future__ import annotations

import numpy as np
import pytest

from synapse_desktop.models.session import Session
from synapse_native.protocol import SparseActivations

from .frames import frame, meta, sparse, summaries, trainer_hello

pytestmark = pytest.mark.gui

SIZE = (640, 480)


def _session(n_layers: int = 1, name: str = "tiny") -> Session:
    session = Session()
    session.apply_frames([frame(trainer_hello(), seq=0), frame(meta(n_layers, name), seq=0)])
    session.apply_frame(frame(summaries(list(range(3 * n_layers)), 1.0), seq=1, step=1))
    return session


def _points(site: int, indices: list[int], value: float = 4.0) -> SparseActivations:
    message = sparse(site, indices)
    values = np.full(len(indices), value, np.float32)
    return SparseActivations(site, 0.5, len(indices), message.indices, values)


@pytest.fixture
def grid(qapp):  # type: ignore[no-untyped-def]
    from synapse_desktop.views.layer_grid import LayerGrid

    grid = LayerGrid(_session(), size=SIZE)
    grid.session.view.set(glow=False)
    grid.canvas.show()
    yield grid
    grid.close()


def _frame_site(grid, index: int) -> None:  # type: ignore[no-untyped-def]
    """Look at plane ``index`` head on, filling most of the canvas."""
    quad = grid.geometry.layout.quads()[index]
    grid.camera.azimuth, grid.camera.elevation = -90.0, 0.0
    grid.camera.center = tuple(quad.mean(axis=0))
    grid.camera.scale_factor = float(np.ptp(quad[:, 2])) * 1.15
    grid.canvas.render()  # transforms follow the camera at the next draw


def _cell_px(grid, site: int) -> float:  # type: ignore[no-untyped-def]
    """How many pixels apart two neighbouring neurons of ``site`` are drawn."""
    a, b = grid.geometry.layout.neuron_positions(site, np.array([0, 1]))
    return float(np.linalg.norm(grid.project(a) - grid.project(b)))


def _lit(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.abs(after[..., :3].astype(int) - before[..., :3].astype(int)).sum(axis=2)


def _centroid(weights: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(weights)
    w = weights[ys, xs].astype(float)
    return np.array([np.average(xs, weights=w), np.average(ys, weights=w)])


@pytest.mark.parametrize(
    ("site", "neuron"),
    [(0, 0), (0, 63), (0, 64 * 63 + 5), (1, 0), (1, 127), (1, 128 * 57 + 90), (2, 4095)],
)
def test_a_point_lights_the_place_of_its_neuron(grid, site: int, neuron: int) -> None:  # type: ignore[no-untyped-def]
    _frame_site(grid, site)
    before = grid.canvas.render()
    grid.session.apply_frame(frame(_points(site, [neuron]), seq=2, step=2))
    after = grid.canvas.render()
    lit = _lit(before, after)
    assert lit.max() > 100
    position = grid.geometry.layout.neuron_positions(site, np.array([neuron]))[0]
    expected = grid.project(position)
    # The lit cell and the point sprite are centred on the neuron (a cell is 3.5 px or more).
    cell = _cell_px(grid, site)
    assert cell > 3.5
    assert np.linalg.norm(_centroid(lit * (lit > 60)) - expected) < max(1.0, 0.25 * cell)
    ys, xs = np.nonzero(lit > 30)
    assert np.hypot(xs - expected[0], ys - expected[1]).max() < 2.5 * cell


def test_points_of_a_whole_batch_fill_their_sites_slots(grid) -> None:  # type: ignore[no-untyped-def]
    """Several sites in one batch: each site's slots hold its neurons, then unused slots."""
    rng = np.random.default_rng(3)
    chosen = {0: [0, 4095], 1: sorted(rng.choice(14336, 40, replace=False).tolist()), 2: [17]}
    grid.session.apply_frames(
        [frame(_points(s, idx), seq=2 + s, step=2) for s, idx in chosen.items()]
    )
    rows = grid.points.rows
    capacity = len(rows) // 3
    for site, indices in chosen.items():
        got = rows[site * capacity : site * capacity + len(indices)]
        np.testing.assert_array_equal(got[:, 0], indices)
        assert (got[:, 1] == 1.0).all()  # 4.0 over 0.5: three doublings, full intensity
        assert (rows[site * capacity + len(indices) : (site + 1) * capacity, 1] < 0).all()
        texels = grid.geometry.atlas.block(grid.planes.image, site).reshape(-1)
        assert sorted(np.flatnonzero(texels).tolist()) == indices


def test_bloom_lights_around_points_and_nothing_else(grid) -> None:  # type: ignore[no-untyped-def]
    _frame_site(grid, 1)
    plain = grid.canvas.render()
    grid.session.view.set(glow=True)
    no_points = grid.canvas.render()
    # With nothing to glow, the bloom's composite is the scene itself.
    assert np.abs(no_points[..., :3].astype(int) - plain[..., :3]).max() <= 1
    cluster = [128 * row + col for row in range(20, 26) for col in range(10, 18)]
    grid.session.apply_frame(frame(_points(1, cluster), seq=2, step=2))
    glow_on = grid.canvas.render()
    grid.session.view.set(glow=False)
    glow_off = grid.canvas.render()
    extra = _lit(glow_off, glow_on)
    centre = grid.project(
        grid.geometry.layout.neuron_positions(1, np.array([128 * 23 + 14]))[0]
    ).astype(int)
    h, w = extra.shape
    ys, xs = np.mgrid[0:h, 0:w]
    distance = np.hypot(xs - centre[0], ys - centre[1])
    cell = _cell_px(grid, 1)
    # The glow: a halo just outside the cluster, fading with distance...
    ring = (distance > 6 * cell) & (distance < 10 * cell)
    assert extra[ring].mean() > 10
    assert extra[(distance > 14 * cell) & (distance < 20 * cell)].mean() < extra[ring].mean()
    # ... brighter, never darker, on the dark theme ...
    brighter = glow_on[..., :3].astype(int).sum(axis=2) - glow_off[..., :3].astype(int).sum(axis=2)
    assert brighter.min() >= -3
    # ... and far from the points, nothing changes.
    assert extra[distance > 60 * cell].max() <= 3
    # Points stay where they were: the glow-off picture is the one before the bloom existed.
    assert np.abs(glow_off[..., :3].astype(int) - plain[..., :3]).max() > 100


def _grab(grid) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What the widget shows: drawn into its own framebuffer, not ``render``'s."""
    from PySide6.QtGui import QImage

    image = grid.native.grabFramebuffer().convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = image.height(), image.width()
    return (
        np.frombuffer(image.constBits(), np.uint8)
        .reshape(h, image.bytesPerLine())[:, : 4 * w]
        .reshape(h, w, 4)
    )


def test_bloom_on_screen_and_on_the_light_theme(grid) -> None:  # type: ignore[no-untyped-def]
    _frame_site(grid, 0)
    grid.session.apply_frame(frame(_points(0, list(range(64 * 30, 64 * 34))), seq=2, step=2))
    grid.session.view.set(glow=True)
    rendered = grid.canvas.render()
    shown = _grab(grid)  # the widget's own framebuffer: no FBO stack, the whole viewport
    assert shown.shape == rendered.shape
    assert np.abs(shown[..., :3].astype(int) - rendered[..., :3]).mean() < 1
    grid.session.view.set(theme="light")
    on = grid.canvas.render()
    grid.session.view.set(glow=False)
    off = grid.canvas.render()
    lit = _lit(off, on)
    assert lit.max() > 20
    assert off[0, 0, :3].mean() > 200 and np.array_equal(on[0, 0, :3], off[0, 0, :3])
    # A tint of the points' colour (blue on the light theme): blue gains on red where it glows.
    glowing = lit > 20
    shift = on[..., :3].astype(int) - off[..., :3]
    assert (shift[glowing, 2] - shift[glowing, 0]).mean() > 0


def test_a_restarted_run_clears_the_atlas_and_the_points(grid) -> None:  # type: ignore[no-untyped-def]
    session = grid.session
    _frame_site(grid, 0)
    dark = grid.canvas.render()
    seq = 1
    for step in range(5, 9):  # the old run: steps 5..8, a band of active neurons
        seq += 1
        session.apply_frame(frame(_points(0, list(range(64 * 10, 64 * 12))), seq=seq, step=step))
    old = grid.canvas.render()
    assert _lit(dark, old).max() > 100 and grid.points.visual.count == 128
    assert grid.planes.image.any()
    # The trainer restarts: a new HELLO, then its first step, behind what was shown.
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0),
            frame(meta(1), seq=0),
            frame(_points(0, [64 * 40 + 3]), seq=1, step=0),
        ]
    )
    assert grid.points.visual.count == 1
    image = grid.planes.image
    assert np.count_nonzero(image) == 1
    assert grid.geometry.atlas.block(image, 0)[40, 3] > 0
    new = grid.canvas.render()
    # Where the old run's band was, the plane looks as where nothing ever happened (the new
    # run has no statistics yet: both are the empty plane's grey).
    layout = grid.geometry.layout
    band = grid.project(layout.neuron_positions(0, np.array([64 * 11 + 32]))[0]).astype(int)
    calm = grid.project(layout.neuron_positions(0, np.array([64 * 24 + 32]))[0]).astype(int)
    assert np.abs(band - calm).max() > 30
    (bx, by), (cx, cy) = band, calm
    assert (
        _lit(new[cy - 6 : cy + 6, cx - 40 : cx + 40], new[by - 6 : by + 6, bx - 40 : bx + 40]).max()
        <= 3
    )
    assert (
        _lit(old[cy - 6 : cy + 6, cx - 40 : cx + 40], old[by - 6 : by + 6, bx - 40 : bx + 40]).max()
        > 100
    )
    # The new run fades from its own first step on.
    block = grid.geometry.atlas.block(grid.planes.image, 0)
    assert block[40, 3] == 255
    session.apply_frame(frame(_points(0, [5]), seq=2, step=1))
    block = grid.geometry.atlas.block(grid.planes.image, 0)
    assert block[0, 5] == 255 and block[40, 3] == 127  # halved at step 1, not at step 9


def test_a_restart_with_another_model_clears_everything(grid) -> None:  # type: ignore[no-untyped-def]
    session = grid.session
    session.apply_frame(frame(_points(1, [1, 2, 3]), seq=2, step=50))
    assert grid.points.visual.count == 3
    # Same site ids, another model, and a later step: still a new run (the name says so).
    session.apply_frames(
        [
            frame(trainer_hello(), seq=0),
            frame(meta(1, name="other"), seq=0),
            frame(_points(2, [7]), seq=1, step=60),
        ]
    )
    assert session.topology.model_name == "other"
    assert grid.points.visual.count == 1
    assert np.count_nonzero(grid.planes.image) == 1
    assert session.sparse.points[1].step == -1  # the old run's points are gone from the model


def test_spread_grid_does_its_share_a_frame_later(qapp, qtbot) -> None:  # type: ignore[no-untyped-def]
    """As in the app: a batch's points are placed by the timer, one frame after the batch, and
    then look as they do when placed at once; batches in between are placed together."""
    from synapse_desktop.views.layer_grid import FRAME_MS, LayerGrid

    spread = LayerGrid(_session(), size=SIZE, spread_ms=FRAME_MS)
    at_once = LayerGrid(_session(), size=SIZE)
    try:
        for grid in (spread, at_once):
            grid.session.view.set(glow=False)
            _frame_site(grid, 1)
            for seq, (site, step) in enumerate(((1, 2), (0, 2), (1, 3)), start=2):
                grid.session.apply_frame(frame(_points(site, [7, 300, 9000]), seq=seq, step=step))
        assert spread.points.visual.count == 0 and not spread.planes.image.any()
        assert at_once.points.visual.count == 5  # neuron 9000 is outside site 0's 4096
        qtbot.waitUntil(lambda: spread.points.visual.count == 5, timeout=2000)
        np.testing.assert_array_equal(spread.planes.image, at_once.planes.image)
        np.testing.assert_array_equal(spread.points.rows, at_once.points.rows)
        assert _lit(at_once.canvas.render(), spread.canvas.render()).max() <= 3
    finally:
        spread.close()
        at_once.close()


def test_a_spread_grid_clears_on_restart_too(qapp, qtbot) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.views.layer_grid import FRAME_MS, LayerGrid

    grid = LayerGrid(_session(), size=SIZE, spread_ms=FRAME_MS)
    try:
        session = grid.session
        for seq, step in enumerate(range(5, 9), start=2):
            session.apply_frame(frame(_points(0, list(range(640, 768))), seq=seq, step=step))
        qtbot.waitUntil(lambda: grid.points.visual.count == 128, timeout=2000)
        session.apply_frames(
            [
                frame(trainer_hello(), seq=0),
                frame(meta(1), seq=0),
                frame(_points(0, [64 * 40 + 3]), seq=1, step=0),
            ]
        )
        assert not grid.planes.image.any() and grid.points.visual.count == 0  # at once
        qtbot.waitUntil(lambda: grid.points.visual.count == 1, timeout=2000)
        assert np.count_nonzero(grid.planes.image) == 1
    finally:
        grid.close()
