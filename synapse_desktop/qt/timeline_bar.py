"""The timeline bar under the 3D view: the run's steps, the loss drawn faintly, alert markers
and the step shown; drag to scrub, play/pause, speed, previous/next alert, Live."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QToolButton,
    QToolTip,
    QWidget,
)

from synapse_desktop.models.anomalies import Severity
from synapse_desktop.models.timeline import SPEEDS, Mode, Timeline
from synapse_desktop.qt.replay_controller import ReplayController

_SEVERITY_COLORS = {
    Severity.ERROR: QColor("#f85149"),
    Severity.WARNING: QColor("#d29922"),
    Severity.INFO: QColor("#58a6ff"),
}
_CURSOR = QColor("#3fb950")
_MARGIN = 6


class TimelineTrack(QWidget):
    """The steps from first to last across the width; press or drag to show a step."""

    def __init__(self, controller: ReplayController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.timeline = controller.timeline
        self.setMinimumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setToolTip("")
        self._loss_cache: tuple[int, int, int, int] | None = None
        self._loss_path = QPainterPath()

    def sizeHint(self) -> QSize:
        return QSize(400, 34)

    # -- geometry -------------------------------------------------------------------------------

    def _span(self) -> tuple[int, int]:
        first, last = self.timeline.first, self.timeline.last
        return first, max(last, first + 1)

    def x_of(self, step: float) -> float:
        first, last = self._span()
        width = max(1, self.width() - 2 * _MARGIN)
        return _MARGIN + (step - first) / (last - first) * width

    def step_at(self, x: float) -> int:
        first, last = self._span()
        width = max(1, self.width() - 2 * _MARGIN)
        fraction = min(1.0, max(0.0, (x - _MARGIN) / width))
        return round(first + fraction * (last - first))

    # -- painting -------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.base())
        timeline = self.timeline
        if not timeline.steps:
            painter.setPen(palette.placeholderText().color())
            painter.drawText(
                self.rect(),
                Qt.AlignmentFlag.AlignCenter,
                "the timeline fills as steps arrive, or open a recording (File > Open recording)",
            )
            painter.end()
            return
        text = palette.text().color()
        self._paint_loss(painter, text)
        self._paint_alerts(painter)
        if timeline.scanned < 1.0:
            width = (self.width() - 2 * _MARGIN) * timeline.scanned
            painter.fillRect(
                QRectF(_MARGIN, self.height() - 3, width, 2),
                QColor(text.red(), text.green(), text.blue(), 90),
            )
        if timeline.position >= 0:
            x = self.x_of(timeline.position)
            painter.setPen(QPen(_CURSOR, 2))
            painter.drawLine(QPointF(x, 2), QPointF(x, self.height() - 2))
            painter.setBrush(_CURSOR)
            painter.drawEllipse(QPointF(x, self.height() / 2), 4, 4)
        painter.end()

    def _paint_loss(self, painter: QPainter, text: QColor) -> None:
        steps, loss = self.timeline.index.loss()
        if len(steps) < 2:
            return
        key = (len(steps), self.width(), self.height(), self.timeline.first)
        if key != self._loss_cache:
            self._loss_cache = key
            self._loss_path = self._loss_curve(steps, loss)
        faint = QColor(text)
        faint.setAlpha(110)
        painter.setPen(QPen(faint, 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self._loss_path)

    def _loss_curve(self, steps: np.ndarray, loss: np.ndarray) -> QPainterPath:
        """The loss as one path, at most two points per pixel column (min and max)."""
        path = QPainterPath()
        finite = np.isfinite(loss)
        if finite.sum() < 2:
            return path
        low, high = np.percentile(loss[finite], [1, 99])
        if not high > low:
            high = low + 1.0
        width = max(1, self.width() - 2 * _MARGIN)
        first, last = self._span()
        columns = np.clip(((steps - first) / (last - first) * width).astype(np.int64), 0, width)
        top, bottom = 4.0, self.height() - 6.0
        ys = bottom - (np.clip(loss, low, high) - low) / (high - low) * (bottom - top)
        started = False
        for column in np.unique(columns[finite]):
            chosen = ys[(columns == column) & finite]
            x = _MARGIN + float(column)
            for y in (float(chosen.max()), float(chosen.min())):
                if started:
                    path.lineTo(x, y)
                else:
                    path.moveTo(x, y)
                    started = True
        return path

    def _paint_alerts(self, painter: QPainter) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        drawn: set[tuple[int, int]] = set()
        for alert in self.timeline.index.alerts:
            x = int(self.x_of(alert.step))
            if (x, alert.severity) in drawn:
                continue
            drawn.add((x, alert.severity))
            painter.setBrush(_SEVERITY_COLORS.get(alert.severity, _SEVERITY_COLORS[Severity.INFO]))
            painter.drawPolygon([QPointF(x - 4, 0), QPointF(x + 4, 0), QPointF(x, 7)])

    # -- input ----------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.timeline.steps:
            self.controller.seek(self.step_at(event.position().x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if not self.timeline.steps:
            return
        step = self.step_at(event.position().x())
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.controller.seek(step)
        QToolTip.showText(event.globalPosition().toPoint(), self.describe(step), self)

    def describe(self, step: int) -> str:
        """What the tooltip says about ``step``: the step, its loss and its alerts."""
        text = f"step {step}"
        steps, loss = self.timeline.index.loss()
        i = int(np.searchsorted(steps, step, side="right")) - 1
        if i >= 0 and not math.isnan(loss[i]):
            text += f"  loss {loss[i]:.4g}"
        near = [
            a for a in self.timeline.index.alerts if abs(self.x_of(a.step) - self.x_of(step)) < 4
        ]
        for alert in near[:3]:
            text += f"\nstep {alert.step}: {alert.message}"
        return text


class TimelineBar(QWidget):
    """The track and its buttons; follows ``controller.timeline``."""

    def __init__(self, controller: ReplayController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.timeline: Timeline = controller.timeline
        style = self.style()
        self.previous_alert = self._button(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaSkipBackward),
            "previous alert",
            lambda: controller.jump_to_alert(-1),
        )
        self.play = self._button(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay),
            "play / pause (Space)",
            controller.toggle_play,
        )
        self.next_alert = self._button(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaSkipForward),
            "next alert",
            lambda: controller.jump_to_alert(1),
        )
        self.speed = QComboBox()
        self.speed.setToolTip("playback speed (1x: as recorded)")
        for speed in SPEEDS:
            self.speed.addItem(f"{speed}x", speed)
        self.speed.currentIndexChanged.connect(
            lambda i: controller.set_speed(int(self.speed.itemData(i)))
        )
        self.track = TimelineTrack(controller)
        self.label = QLabel()
        self.label.setMinimumWidth(110)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.live = QToolButton()
        self.live.setText("Live")
        self.live.setToolTip("show the newest step and follow the run again (End)")
        self.live.clicked.connect(controller.go_live)
        box = QHBoxLayout(self)
        box.setContentsMargins(4, 2, 4, 2)
        box.setSpacing(4)
        for widget in (self.previous_alert, self.play, self.next_alert, self.speed):
            box.addWidget(widget)
        box.addWidget(self.track, 1)
        box.addWidget(self.label)
        box.addWidget(self.live)
        self._play_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay)
        self._pause_icon = style.standardIcon(QStyle.StandardPixmap.SP_MediaPause)
        self.timeline.changed.connect(self.refresh)
        self.refresh()

    def _button(self, icon, tip: str, slot) -> QToolButton:  # type: ignore[no-untyped-def]
        button = QToolButton()
        button.setIcon(icon)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.clicked.connect(slot)
        return button

    def refresh(self) -> None:
        timeline = self.timeline
        has_steps = bool(timeline.steps)
        live = timeline.mode is Mode.LIVE
        for widget in (self.previous_alert, self.next_alert, self.play, self.speed):
            widget.setEnabled(has_steps and not (live and timeline.following))
        self.play.setIcon(self._pause_icon if timeline.playing else self._play_icon)
        self.live.setVisible(live)
        self.live.setEnabled(live and not timeline.following)
        self.live.setStyleSheet("" if timeline.following else "color: #3fb950; font-weight: bold")
        self.speed.blockSignals(True)
        self.speed.setCurrentIndex(SPEEDS.index(timeline.speed))
        self.speed.blockSignals(False)
        if not has_steps:
            self.label.setText("")
        else:
            where = "live" if live and timeline.following else f"step {timeline.position}"
            self.label.setText(f"{where}  ({timeline.first}-{timeline.last})")
        self.label.setToolTip(timeline.name)
        self.track.update()
