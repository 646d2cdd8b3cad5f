"""The overview: a training metric, a layers x steps heatmap and block gradient norms on one step
axis. The binning without a display; the canvas rendered for real (Mesa under Xvfb)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from synapse_desktop.models.session import Session
from synapse_desktop.scene.steps import StepAxis, bin_max, grad_image, layer_image
from synapse_native.protocol import BlockGradNorms, LayerSummaryBatch, TrainingMetrics

from .frames import frame, meta, summaries

N_LAYERS = 8
STEPS = [s for s in range(60) if s % 10 != 7]  # steps 7, 17, ... were not measured
SPIKE_LAYER, SPIKE_STEP, SPIKE = 5, 40, 80.0
NAN_STEP = 50


def _base(layer: int, kind: int) -> float:
    """The rms of a site away from the spike: grows with depth, attn < mlp < residual."""
    return 0.05 * 2.0**layer * (1 + kind)


def _loss(step: int) -> float:
    if step == NAN_STEP:
        return math.nan
    return 4.0 if step == SPIKE_STEP else 3.0 - step / 60


def _session() -> Session:
    session = Session(history_capacity=256)
    frames = [frame(meta(N_LAYERS), seq=1)]
    seq = 2
    for step in STEPS:
        records = summaries(list(range(3 * N_LAYERS)), 1.0).records.copy()
        records["rms"] = [_base(i // 3, i % 3) for i in range(3 * N_LAYERS)]
        if step == SPIKE_STEP:
            records["rms"][3 * SPIKE_LAYER + 2] = SPIKE
        norms = np.full(N_LAYERS, 0.1, np.float32)
        norms[SPIKE_LAYER] = 5.0 if step == SPIKE_STEP else 0.1
        frames += [
            frame(LayerSummaryBatch(records), seq=seq, step=step),
            frame(BlockGradNorms(norms), seq=seq + 1, step=step),
            frame(TrainingMetrics({"loss": _loss(step), "lr": 1e-4}), seq=seq + 2, step=step),
        ]
        seq += 3
    session.apply_frames(frames)
    return session


# -- binning (no display) ---------------------------------------------------------------------


def test_the_step_axis_uses_the_finest_power_of_two_stride_and_keeps_its_edges() -> None:
    assert StepAxis.spanning(0, 99, 128) == StepAxis(0, 1, 128)
    axis = StepAxis.spanning(1000, 1300, 128)
    assert axis.stride == 4 and axis.first == 1000
    assert StepAxis.spanning(1001, 1301, 128).first == 1000  # the window slid, edges did not
    assert axis.columns(np.array([1000, 1003, 1004])).tolist() == [0, 0, 1]
    assert axis.steps_of(1) == (1004, 1007)
    assert axis.column_at(1003.4) == 0 and axis.column_at(1003.6) == 1
    image = bin_max(
        np.array([0, 0, 1]), np.array([1000, 1002, 1001]), np.array([1.0, 3.0, np.nan]), 2, axis
    )
    assert image[0, 0] == 3.0 and np.isnan(image[1]).all()  # the largest of a cell


def test_layer_and_grad_images_put_each_value_in_its_layer_and_step() -> None:
    session = _session()
    width = 128
    image = layer_image(session.history, session.topology, "rms", "residual", width)
    assert image.values.shape == (N_LAYERS, width) and (image.lo, image.hi) == (0, 59)
    column = image.axis.columns(np.array([SPIKE_STEP, 39, 17]))
    assert image.values[SPIKE_LAYER, column[0]] == SPIKE == np.nanmax(image.values)
    assert image.values[SPIKE_LAYER, column[1]] == pytest.approx(_base(SPIKE_LAYER, 2))
    assert np.isnan(image.values[:, column[2]]).all()  # not measured
    mlp = layer_image(session.history, session.topology, "rms", "mlp", width)
    assert mlp.values[SPIKE_LAYER, column[0]] == pytest.approx(_base(SPIKE_LAYER, 1))
    mean = layer_image(session.history, session.topology, "rms", "mean", width)
    expected = (_base(2, 0) + _base(2, 1) + _base(2, 2)) / 3
    assert mean.values[2, column[1]] == pytest.approx(expected)
    grads = grad_image(session.grad_norms, width)
    assert grads.values.shape == (N_LAYERS, width)
    assert grads.values[SPIKE_LAYER, column[0]] == 5.0 == np.nanmax(grads.values)


# -- the canvas ---------------------------------------------------------------------------------


@pytest.fixture
def overview(qapp):  # type: ignore[no-untyped-def]
    from synapse_desktop.views.overview import OverviewView

    view = OverviewView(_session(), size=(900, 480))
    view.canvas.show()
    view.canvas.render()  # lays the plots out
    yield view
    view.close()


def _pixel(image: np.ndarray, xy: tuple[float, float]) -> np.ndarray:
    return image[round(xy[1]), round(xy[0]), :3].astype(int)


@pytest.mark.gui
def test_the_heatmap_holds_layers_by_steps_and_the_spike_shows(overview) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.views.overview import WIDTH

    values = overview.activation.values
    assert values.shape == (N_LAYERS, WIDTH)
    axis = overview.activation.data.axis
    spike, gap = axis.columns(np.array([SPIKE_STEP, 17]))
    assert values[SPIKE_LAYER, spike] == SPIKE == np.nanmax(values)
    assert np.isnan(values[:, gap]).all()
    image = overview.canvas.render()
    background = image[2, 2, :3].astype(int)
    at = _pixel(image, overview.project("activation", SPIKE_STEP, SPIKE_LAYER))
    left = _pixel(image, overview.project("activation", SPIKE_STEP - 1, SPIKE_LAYER))
    above = _pixel(image, overview.project("activation", SPIKE_STEP, SPIKE_LAYER - 1))
    assert at.sum() > left.sum() + 100 and at.sum() > above.sum() + 100
    assert np.abs(left - background).sum() > 60  # a measured cell is not background
    missing = _pixel(image, overview.project("activation", 17, SPIKE_LAYER))
    assert np.abs(missing - background).sum() < 10  # an unmeasured step is
    grad_at = _pixel(image, overview.project("grads", SPIKE_STEP, SPIKE_LAYER))
    grad_left = _pixel(image, overview.project("grads", SPIKE_STEP - 1, SPIKE_LAYER))
    assert grad_at.sum() > grad_left.sum() + 100
    assert overview.grads.values[SPIKE_LAYER, spike] == pytest.approx(5.0)


@pytest.mark.gui
def test_the_metric_line_holds_the_loss_and_a_nan_is_marked(overview) -> None:  # type: ignore[no-untyped-def]
    overview.session.view.set(metric_smoothing=0.0)  # the raw values as the bold line
    overview.refresh()
    metric = overview.metric
    assert not metric.raw_line.visible
    assert metric.name == "loss"
    assert metric.steps.tolist() == STEPS
    finite = [s for s in STEPS if s != NAN_STEP]
    pos = metric.line.pos
    kept = {int(x): y for x, y in pos[np.isin(pos[:, 0], finite)]}
    assert kept == pytest.approx({s: _loss(s) for s in finite})
    assert metric.nonfinite.tolist() == [NAN_STEP] and metric.markers.visible
    assert "1 non-finite" in metric.label.text
    rect = metric.camera.rect  # y fits the finite values, with room for the markers
    assert rect.bottom < 2.0 < 4.0 < rect.top < 4.6
    image = overview.canvas.render()
    background = image[2, 2, :3].astype(int)
    mark = overview.project("metric", NAN_STEP, 4.0 + 0.08 * (4.0 - 2.05))
    assert _pixel(image, mark)[0] > background[0] + 100  # the red marker
    peak = overview.project("metric", SPIKE_STEP, 4.0)
    assert np.abs(_pixel(image, peak) - background).sum() > 60  # the line reaches the spike


@pytest.mark.gui
def test_the_metric_is_smoothed_like_tensorboard_and_reads_in_log_scale(overview) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.models.smoothing import ema

    metric = overview.metric
    assert overview.session.view.values.metric_smoothing == 0.6 and metric.raw_line.visible
    smoothed = ema(metric.values, 0.6)
    finite = np.isfinite(smoothed)
    np.testing.assert_allclose(metric.line.pos[finite, 1], smoothed[finite], rtol=1e-5)
    assert "smoothing 0.60" in metric.label.text
    overview.session.view.set(metric_log=True)
    overview.refresh()
    rect = metric.camera.rect  # y is log10 of the values now, the ticks read in values
    assert np.log10(2.0) - 0.1 < rect.bottom < np.log10(2.0) and rect.top > np.log10(4.0)
    labels = metric.axis.axis.ticker._get_tick_frac_labels()[2]
    assert labels and all(float(text) > 0 for text in labels)
    left = metric.axis.rect
    overview.hover((left.left + left.width / 2, left.bottom + left.height / 2))
    assert overview.readout.startswith("y axis: training metric loss (log scale")


@pytest.mark.gui
def test_every_heatmap_draws_its_colour_scale_and_names_it_on_hover(overview) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.scene.scales import SCALES

    image = overview.canvas.render()
    for name, heat in (("activation", overview.activation), ("grads", overview.grads)):
        bar = heat.colour_bar
        assert bar.image.visible and bar.low.visible and bar.high.visible
        scale = SCALES["rms"] if name == "activation" else None
        if scale is not None:
            assert (bar.low.text, bar.high.text) == tuple(f"{end:g}" for end in scale.clim)
        left, top = heat.title_bar.pos
        y = top + heat.title_bar.size[1] / 2
        ends = [left + bar.left + dx for dx in (2, bar.WIDTH - 2)]
        low, high = (_pixel(image, (x, y)) for x in ends)
        expected = (np.asarray(bar.colours)[[0, -1], :3] * 255).astype(int)
        assert np.abs(low - expected[0]).sum() < 40 and np.abs(high - expected[1]).sum() < 40
        assert np.abs(high - low).sum() > 150  # the dark end and the bright end, drawn
        overview.hover((left + bar.left + bar.WIDTH / 2, y))
        assert overview.readout.startswith("y axis: ")
        assert heat.note in overview.readout  # the statistic and its range, in words


@pytest.mark.gui
def test_clicking_a_cell_selects_that_layers_site(overview, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint, Qt

    session = overview.session
    x, y = overview.project("activation", 30, SPIKE_LAYER)
    qtbot.mouseClick(overview.native, Qt.MouseButton.LeftButton, pos=QPoint(int(x), int(y)))
    site = session.topology.sites[session.selection.selected]
    assert (site.layer, site.kind_name) == (SPIKE_LAYER, "residual")
    assert all(m.visible for m in overview.activation.marks)
    session.view.set(heatmap_kind="attn")
    overview.refresh()
    x, y = overview.project("grads", 30, 2)
    qtbot.mouseClick(overview.native, Qt.MouseButton.LeftButton, pos=QPoint(int(x), int(y)))
    site = session.topology.sites[session.selection.selected]
    assert (site.layer, site.kind_name) == (2, "attn")


@pytest.mark.gui
def test_hovering_shows_the_step_and_values_and_a_cursor_in_every_plot(overview, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QPoint

    heard: list[str] = []
    overview.hovered.connect(heard.append)
    x, y = overview.project("activation", SPIKE_STEP, SPIKE_LAYER)
    qtbot.mouseMove(overview.native, QPoint(int(x), int(y)))
    qtbot.waitUntil(lambda: overview.cursor_step == SPIKE_STEP)
    assert "step 40" in overview.readout and "loss 4" in overview.readout
    assert "layer 5 residual rms 80" in overview.readout and heard[-1] == overview.readout
    for panel in overview.plots.values():
        assert panel.cursor.visible and panel.cursor.pos == SPIKE_STEP
    overview.hover(overview.project("grads", 17, 1))
    assert "block 1 grad norm not measured" in overview.readout


@pytest.mark.gui
def test_the_plots_pan_and_zoom_together_along_steps_only(overview) -> None:  # type: ignore[no-untyped-def]
    grads, activation, metric = overview.grads, overview.activation, overview.metric
    assert (metric.camera.rect.left, metric.camera.rect.right) == (-0.5, 59.5)
    before_y = (activation.camera.rect.bottom, activation.camera.rect.top)
    grads.camera.zoom(0.5, center=(40.0, 3.0, 0.0))
    grads.camera.pan((5.0, 3.0))
    for panel in (activation, metric):
        assert panel.camera.rect.left == pytest.approx(grads.camera.rect.left)
        assert panel.camera.rect.right == pytest.approx(grads.camera.rect.right)
    assert grads.camera.rect.width == pytest.approx(30.0)
    assert (activation.camera.rect.bottom, activation.camera.rect.top) == before_y
    overview.show_steps(30, 45)
    overview.metric.fit_y()
    assert not overview.follow
    assert metric.camera.rect.top > 4.0  # the spike at 40 is in view
    overview.show_steps(0, 30)
    overview.metric.fit_y()
    assert metric.camera.rect.top < 3.3  # ... and out of view: y fits what is shown
    overview.follow_newest()
    assert (activation.camera.rect.left, activation.camera.rect.right) == (-0.5, 59.5)


@pytest.mark.gui
def test_the_wheel_zooms_the_steps_of_every_plot_and_a_double_click_follows_again(  # type: ignore[no-untyped-def]
    overview, qtbot
) -> None:
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    x, y = overview.project("activation", 40, 3)
    at = QPointF(x, y)
    wheel = QWheelEvent(
        at,
        at,
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(overview.native, wheel)
    rects = [panel.camera.rect for panel in overview.plots.values()]
    assert rects[0].width < 59 and not overview.follow
    assert all((r.left, r.right) == (rects[0].left, rects[0].right) for r in rects)
    assert (rects[1].bottom, rects[1].top) == (-0.5, N_LAYERS - 0.5)  # rows stay put
    qtbot.mouseDClick(overview.native, Qt.MouseButton.LeftButton, pos=QPoint(int(x), int(y)))
    assert overview.follow
    assert (overview.grads.camera.rect.left, overview.grads.camera.rect.right) == (-0.5, 59.5)


@pytest.mark.gui
def test_refresh_pushes_only_after_a_change(overview) -> None:  # type: ignore[no-untyped-def]
    pushed: list[object] = []
    image = overview.activation.image
    original = image.set_data
    image.set_data = lambda data: (pushed.append(data), original(data))
    overview.refresh()
    assert pushed == []
    records = summaries(list(range(3 * N_LAYERS)), 0.5).records
    overview.session.apply_frame(frame(LayerSummaryBatch(records), seq=500, step=60))
    overview.refresh()
    overview.refresh()
    assert len(pushed) == 1
    assert overview.activation.data.hi == 60


@pytest.mark.gui
def test_the_overview_dock_its_toolbar_and_shortcut(window, qtbot, settings_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QKeySequence

    from synapse_desktop.qt.main_window import MainWindow

    dock = window.overview_dock
    assert dock.toggleViewAction().shortcut() == QKeySequence("Ctrl+3")
    assert dock.isVisible()
    dock.toggleViewAction().trigger()
    assert not dock.isVisible()
    dock.toggleViewAction().trigger()
    panel = window.overview
    panel.kind.setCurrentIndex(panel.kind.findData("mlp"))
    panel.statistic.setCurrentIndex(panel.statistic.findData("max"))
    values = window.session.view.values
    assert (values.heatmap_kind, values.heatmap_statistic) == ("mlp", "max")
    window.session.apply_frame(frame(TrainingMetrics({"loss": 1.0, "grad_norm": 2.0}), seq=1))
    choice = panel.metric_choice
    assert [choice.itemText(i) for i in range(choice.count())] == ["loss", "grad_norm"]
    panel.metric_choice.setCurrentText("grad_norm")
    assert window.session.view.values.overview_metric == "grad_norm"
    window.session.view.set(heatmap_kind="attn")  # model -> toolbar, without looping back
    assert panel.kind.currentData() == "attn"
    window.close()
    again = MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    values = again.session.view.values
    assert (values.heatmap_kind, values.heatmap_statistic, values.overview_metric) == (
        "attn",
        "max",
        "grad_norm",
    )
    assert again.overview.metric_choice.currentText() == "grad_norm"
    again.close()
