"""The early warnings in the app: a clicked alert plots its evidence; the overview shows what the
optimizer did to each block."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QWidget

from synapse_desktop.models.anomalies import Alert, AlertKind, Severity
from synapse_desktop.qt.evidence_plot import ALERT_COLOR
from synapse_desktop.qt.notifier import SHOWN_KEPT
from synapse_native.protocol import OptimizerStats, TrainingMetrics

from .frames import frame, meta

pytestmark = pytest.mark.gui

N_LAYERS = 4


def _count_color(image, color: QColor) -> int:  # type: ignore[no-untyped-def]
    """Pixels within a few levels of ``color``."""
    width, height = image.width(), image.height()
    raw = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    pixels = raw.reshape(height, image.bytesPerLine() // 4, 4)[:, :width, :3].astype(int)
    target = np.array([color.blue(), color.green(), color.red()])  # ARGB32 is BGRA in memory
    return int((np.abs(pixels - target).sum(axis=2) < 30).sum())


def test_a_clicked_alert_plots_its_signal_baseline_and_limit(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    frames = [frame(meta(N_LAYERS), seq=1)]
    for step in range(240):
        loss = 2.5 + 0.05 * np.sin(1.3 * step)
        frames.append(frame(TrainingMetrics({"loss": loss}), seq=2 + step, step=step))
    frames.append(frame(TrainingMetrics({"loss": 6.0}), seq=300, step=240))
    window.session.apply_frames(frames)
    panel = window.alerts
    assert panel.count == 1
    alert = panel.alert_at(0)
    assert alert.kind is AlertKind.LOSS_SPIKE and alert.step == 240
    assert panel.evidence.evidence is None
    rect = panel.list.visualItemRect(panel.list.item(0))
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    evidence = panel.evidence.evidence
    assert evidence is alert.evidence and evidence is not None
    assert evidence.steps[-1] == 240 and evidence.values[-1] == 6.0
    assert evidence.baseline == pytest.approx(2.5, abs=0.02) and 2.5 < evidence.limit < 6.0
    image = panel.evidence.grab().toImage().convertToFormat(QImage.Format.Format_ARGB32)
    assert _count_color(image, ALERT_COLOR) >= 10  # the alert's sample, drawn in red


def test_the_overview_shows_update_ratios_per_block(window) -> None:  # type: ignore[no-untyped-def]
    frames = [frame(meta(N_LAYERS), seq=1)]
    layers = np.arange(N_LAYERS)
    for step in range(10):
        ratio = np.full(N_LAYERS, 1e-3)
        ratio[2] = 1e-2 if step == 5 else 1e-3
        stats = OptimizerStats(layers, ratio, np.ones(N_LAYERS), np.full(N_LAYERS, 0.5))
        frames.append(frame(stats, seq=2 + step, step=step))
    window.session.apply_frames(frames)
    panel = window.overview
    panel.blocks.setCurrentIndex(panel.blocks.findData("update_ratio"))
    assert panel.view.block_signal == "update_ratio"
    panel.view.refresh()
    grads = panel.view.grads
    assert grads.title == "update / parameter norm"
    values = grads.values
    assert values.shape[0] == N_LAYERS
    assert np.nanmax(values[2]) == pytest.approx(1e-2) and np.nanmax(values[1]) == pytest.approx(
        1e-3
    )
    panel.blocks.setCurrentIndex(panel.blocks.findData("grad_norm"))
    panel.view.refresh()
    assert "none yet" in grads.label.text  # no BLOCK_GRAD_NORMS were sent


def test_an_error_raised_while_the_window_is_inactive_is_notified(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    notifier = window.notifier
    window.session.apply_frames([frame(meta(N_LAYERS), seq=1)])
    if window.isActiveWindow():  # an error seen in the window itself: no notification
        window.session.apply_frames([frame(TrainingMetrics({"loss": float("nan")}), seq=2, step=3)])
        assert notifier.shown == []
        window.session.apply_frames([frame(TrainingMetrics({"loss": 1.0}), seq=3, step=4)])
    other = QWidget()
    qtbot.addWidget(other)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(lambda: not window.isActiveWindow())
    window.session.apply_frames([frame(TrainingMetrics({"loss": float("inf")}), seq=4, step=5)])
    (shown,) = notifier.shown
    assert shown.kind is AlertKind.LOSS_SPIKE and shown.step == 5
    for step in range(6, 6 + 2 * SHOWN_KEPT):  # a long run of errors: the newest are kept
        notifier.notify([Alert(AlertKind.LOSS_SPIKE, step, 0, -1, -1, "", "nan", Severity.ERROR)])
    assert len(notifier.shown) == SHOWN_KEPT
    assert notifier.shown[-1].step == 5 + 2 * SHOWN_KEPT
