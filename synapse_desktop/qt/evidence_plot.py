"""A small plot of what an alert saw: its signal up to the alert (line and points), the baseline
it was judged against (dashed) and the limit it crossed (dotted), the alert's sample in red."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from synapse_desktop.models.early_warning import Evidence

ALERT_COLOR = QColor("#e5534b")
LIMIT_COLOR = QColor("#e8a33d")


class EvidencePlot(QWidget):
    """Shows one ``Evidence`` (None: a hint); the y axis is logarithmic when the values span
    more than two decades and are all positive."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.evidence: Evidence | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("The alert's evidence: its signal, baseline (dashed) and limit (dotted)")

    def sizeHint(self) -> QSize:
        return QSize(320, 90)

    def minimumSizeHint(self) -> QSize:
        return QSize(120, 90)

    def show_evidence(self, evidence: Evidence | None) -> None:
        self.evidence = evidence
        self.update()

    def log_scale(self) -> bool:
        ev = self.evidence
        finite = [v for v in ev.values if math.isfinite(v)] if ev is not None else []
        return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 100

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().text().color()
        box = QRectF(self.rect()).adjusted(6, 16, -6, -6)
        ev = self.evidence
        if ev is None:
            painter.setPen(text)
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter, "click an alert to see its evidence"
            )
            return
        log = self.log_scale()

        def y_of(v: float) -> float:
            return math.log10(v) if log else v

        levels = [y_of(v) for v in (*ev.values, ev.baseline, ev.limit) if _plottable(v, log)]
        if not levels:
            painter.setPen(text)
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter, f"{ev.label}: no finite value"
            )
            return
        lo, hi = min(levels), max(levels)
        pad = 0.08 * (hi - lo) if hi > lo else 1.0
        lo, hi = lo - pad, hi + pad
        first, last = ev.steps[0], ev.steps[-1]
        span = max(last - first, 1)

        def point(step: int, v: float) -> QPointF:
            x = box.left() + box.width() * (step - first) / span
            return QPointF(x, box.bottom() - box.height() * (y_of(v) - lo) / (hi - lo))

        for level, style, color in (
            (ev.baseline, Qt.PenStyle.DashLine, text),
            (ev.limit, Qt.PenStyle.DotLine, LIMIT_COLOR),
        ):
            if _plottable(level, log):
                painter.setPen(QPen(color, 1, style))
                y = point(first, level).y()
                painter.drawLine(QPointF(box.left(), y), QPointF(box.right(), y))
        path = QPainterPath()
        started = False
        for step, v in zip(ev.steps, ev.values, strict=True):
            if not _plottable(v, log):
                started = False
                continue
            p = point(step, v)
            if started:
                path.lineTo(p)
            else:
                path.moveTo(p)
                started = True
        painter.setPen(QPen(self.palette().highlight().color(), 1.5))
        painter.drawPath(path)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(ALERT_COLOR)
        if _plottable(ev.values[-1], log):
            painter.drawEllipse(point(last, ev.values[-1]), 3.5, 3.5)
        painter.setPen(text)
        scale = ", log" if log else ""
        painter.drawText(
            QRectF(self.rect()).adjusted(6, 0, -6, 0),
            Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft,
            f"{ev.label}{scale}: steps {first}-{last}, alert at {ev.values[-1]:.4g}",
        )


def _plottable(v: float, log: bool) -> bool:
    return math.isfinite(v) and (v > 0 or not log)
