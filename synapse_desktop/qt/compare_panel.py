"""File > Compare with...: a reference recording followed at the step shown, in its own dock.

The reference is replayed into a session of its own (the same ``Replay`` as the timeline's),
kept at the step the timeline shows (live or replayed), and indexed for its loss. The dock
overlays the two losses over the steps and, per layer both runs have, the statistic the grid is
coloured by for each site kind: the run shown, the reference, and their ratio; hover a layer for
its numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from synapse_desktop.models.compare import Compared, compare
from synapse_desktop.models.session import Session
from synapse_desktop.models.timeline import Mode, RunIndex, Timeline
from synapse_desktop.net.recording_source import RecordingSource
from synapse_desktop.net.replay import Replay
from synapse_native.protocol import SiteKind

THIS = QColor("#58a6ff")
REFERENCE = QColor("#f0883e")
SCAN_SLICE_S = 0.008
_KINDS = (
    (int(SiteKind.ATTN), "attn"),
    (int(SiteKind.MLP), "mlp"),
    (int(SiteKind.RESIDUAL), "residual"),
)
_COLUMNS = {kind: column for column, (kind, _) in enumerate(_KINDS)}


class Comparison(QObject):
    """The reference run: its session, replay and index, following ``timeline``."""

    changed = Signal()

    def __init__(self, timeline: Timeline, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timeline = timeline
        self.session = Session()
        self.index = RunIndex()
        self.source: RecordingSource | None = None
        self.replay: Replay | None = None
        self._scan: Generator[tuple[float, list[bytes]], None, None] | None = None
        self._scan_timer = QTimer(self, interval=5)
        self._scan_timer.timeout.connect(self._on_scan)
        timeline.changed.connect(self.follow)

    @property
    def name(self) -> str:
        return self.source.name if self.source is not None else ""

    def open(self, path: str | Path) -> None:
        """Compare with the recording at ``path`` (``RecordingError`` if unreadable)."""
        source = RecordingSource(path)
        self.close()
        self.source = source
        self.replay = Replay(self.session, source)
        self.index = RunIndex()
        self._scan = source.scan(RunIndex.TYPES)
        self._scan_timer.start()
        self.follow()

    def close(self) -> None:
        self._scan_timer.stop()
        if self._scan is not None:
            self._scan.close()
            self._scan = None
        if self.source is not None:
            self.source.close()
        self.source = self.replay = None
        self.session.rewind()
        self.changed.emit()

    def step(self) -> int:
        """The step the run shown is at (live and following: the newest)."""
        t = self.timeline
        return t.last if t.mode is Mode.LIVE and t.following else t.position

    def follow(self) -> None:
        """Bring the reference to the step shown (its latest step at or before it)."""
        if self.replay is None or self.source is None:
            return
        step = self.step()
        steps = self.source.steps()
        if step < 0 or not steps:
            return
        target = self.replay.held(max(step, steps[0]))
        if target != self.replay.position:
            self.replay.advance(target)
            self.changed.emit()

    def compared(self, this: Session, statistic: str) -> Compared:
        return compare(this, self.session, statistic)

    def _on_scan(self) -> None:
        if self._scan is None:
            self._scan_timer.stop()
            return
        deadline = time.perf_counter() + SCAN_SLICE_S
        while time.perf_counter() < deadline:
            try:
                _, batch = next(self._scan)
            except StopIteration:
                self._scan = None
                self._scan_timer.stop()
                break
            self.index.feed(batch)
        self.changed.emit()


class ComparePanel(QWidget):
    """Top: both losses over the steps, a line at the step shown. Below: per layer, the
    statistic of each site kind in both runs (dots: this run, rings: the reference)."""

    hovered = Signal(str)

    def __init__(
        self, comparison: Comparison, session: Session, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.comparison = comparison
        self.session = session
        self.setMinimumSize(320, 220)
        self.setMouseTracking(True)
        comparison.changed.connect(self.update)
        comparison.timeline.changed.connect(self.update)
        self._rows: list[tuple[float, int]] = []  # (y, layer) of the rows drawn

    def statistic(self) -> str:
        return str(self.session.view.values.statistic)

    # -- painting -------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.base())
        text = palette.text().color()
        painter.setPen(text)
        if self.comparison.source is None:
            painter.drawText(
                self.rect(),
                Qt.AlignmentFlag.AlignCenter,
                "File > Compare with... opens a reference recording",
            )
            painter.end()
            return
        width, height = self.width(), self.height()
        top = QRectF(48, 22, width - 60, height * 0.38)
        bottom = QRectF(48, top.bottom() + 34, width - 60, height - top.bottom() - 46)
        step = self.comparison.step()
        shown = self.comparison.replay.position if self.comparison.replay else -1
        painter.drawText(
            QRectF(8, 2, width - 16, 18),
            Qt.AlignmentFlag.AlignLeft,
            f"this run (blue) vs {self.comparison.name} (orange), step {step}"
            + (f" (reference at {shown})" if shown != step else ""),
        )
        self._paint_loss(painter, top, text, step)
        self._paint_layers(painter, bottom, text)
        painter.end()

    def _paint_loss(self, painter: QPainter, rect: QRectF, text: QColor, step: int) -> None:
        mine = self.comparison.timeline.index.loss()
        theirs = self.comparison.index.loss()
        steps = np.concatenate([mine[0], theirs[0]])
        values = np.concatenate([mine[1], theirs[1]])
        finite = np.isfinite(values)
        painter.setPen(QPen(text, 1))
        painter.drawText(QRectF(4, rect.top() - 2, 44, 16), Qt.AlignmentFlag.AlignLeft, "loss")
        painter.drawRect(rect)
        if finite.sum() < 2:
            return
        lo, hi = float(values[finite].min()), float(values[finite].max())
        first, last = int(steps.min()), max(int(steps.max()), int(steps.min()) + 1)
        hi = hi if hi > lo else lo + 1.0

        def point(s: float, v: float) -> QPointF:
            x = rect.left() + (s - first) / (last - first) * rect.width()
            return QPointF(x, rect.bottom() - (v - lo) / (hi - lo) * rect.height())

        for (s, v), color in ((mine, THIS), (theirs, REFERENCE)):
            path = QPainterPath()
            started = False
            stride = max(1, len(s) // int(max(1, rect.width())))
            for a, b in zip(s[::stride].tolist(), v[::stride].tolist(), strict=True):
                if not math.isfinite(b):
                    started = False
                    continue
                if started:
                    path.lineTo(point(a, b))
                else:
                    path.moveTo(point(a, b))
                    started = True
            painter.setPen(QPen(color, 1.5))
            painter.drawPath(path)
        if step >= 0:
            x = point(step, lo).x()
            painter.setPen(QPen(QColor("#3fb950"), 1.5))
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
        painter.setPen(text)
        painter.drawText(
            QRectF(4, rect.top() + 14, 44, 16), Qt.AlignmentFlag.AlignLeft, f"{hi:.3g}"
        )
        painter.drawText(
            QRectF(4, rect.bottom() - 14, 44, 16), Qt.AlignmentFlag.AlignLeft, f"{lo:.3g}"
        )

    def _paint_layers(self, painter: QPainter, rect: QRectF, text: QColor) -> None:
        compared = self.comparison.compared(self.session, self.statistic())
        shared = compared.shared
        painter.setPen(QPen(text, 1))
        painter.drawText(
            QRectF(4, rect.top() - 18, rect.width(), 16),
            Qt.AlignmentFlag.AlignLeft,
            f"{self.statistic()} per layer ({len(set(shared.layers.tolist()))} layers shared), "
            "log scale; columns: attn, mlp, residual",
        )
        self._rows = []
        if len(shared) == 0:
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "no layer in common")
            return
        values = np.concatenate([compared.this, compared.reference])
        positive = values[np.isfinite(values) & (values > 0)]
        if len(positive) == 0:
            return
        lo, hi = math.log10(positive.min()), math.log10(positive.max())
        hi = hi if hi > lo else lo + 1.0
        layers = sorted(set(shared.layers.tolist()))
        row_h = rect.height() / max(1, len(layers))
        column_w = rect.width() / len(_KINDS)
        for k, (_, name) in enumerate(_KINDS):
            painter.drawText(
                QRectF(rect.left() + k * column_w, rect.bottom() + 1, column_w, 14),
                Qt.AlignmentFlag.AlignHCenter,
                name,
            )
        for row, layer in enumerate(layers):
            y = rect.top() + (row + 0.5) * row_h
            self._rows.append((y, layer))
            if row % max(1, math.ceil(14 / row_h)) == 0:  # labels that do not overlap
                painter.setPen(text)
                painter.drawText(QRectF(4, y - 7, 40, 14), Qt.AlignmentFlag.AlignRight, str(layer))
            for i in np.flatnonzero(shared.layers == layer).tolist():
                column = _COLUMNS.get(int(shared.kinds[i]))
                if column is None:
                    continue
                left = rect.left() + column * column_w + 6
                span = column_w - 12

                def x_of(v: float, left: float = left, span: float = span) -> float | None:
                    if not (math.isfinite(v) and v > 0):
                        return None
                    return left + (math.log10(v) - lo) / (hi - lo) * span

                mine, theirs = x_of(compared.this[i]), x_of(compared.reference[i])
                r = max(1.5, min(4.0, row_h / 2.5))
                if mine is not None and theirs is not None:
                    painter.setPen(QPen(text, 1))
                    painter.drawLine(QPointF(mine, y), QPointF(theirs, y))
                if theirs is not None:
                    painter.setPen(QPen(REFERENCE, 1.5))
                    painter.setBrush(Qt.BrushStyle.NoBrush)
                    painter.drawEllipse(QPointF(theirs, y), r + 1, r + 1)
                if mine is not None:
                    painter.setPen(Qt.PenStyle.NoPen)
                    painter.setBrush(THIS)
                    painter.drawEllipse(QPointF(mine, y), r, r)

    # -- hover ----------------------------------------------------------------------------------

    def describe_layer(self, layer: int) -> str:
        """Both runs' values of ``layer``'s shared sites, and their ratio."""
        compared = self.comparison.compared(self.session, self.statistic())
        shared = compared.shared
        parts = []
        for i in np.flatnonzero(shared.layers == layer).tolist():
            name = dict(_KINDS).get(int(shared.kinds[i]), "?")
            ratio = compared.ratio[i]
            parts.append(
                f"{name} {compared.this[i]:.3g} vs {compared.reference[i]:.3g}"
                + ("" if math.isnan(ratio) else f" ({ratio:.2f}x)")
            )
        return f"layer {layer} {self.statistic()}: " + ", ".join(parts) if parts else ""

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        y = event.position().y()
        near = min(self._rows, key=lambda row: abs(row[0] - y), default=None)
        self.hovered.emit(self.describe_layer(near[1]) if near is not None else "")

    def leaveEvent(self, event: object) -> None:
        self.hovered.emit("")
