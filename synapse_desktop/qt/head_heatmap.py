"""The layer x head heatmap of attention entropy or max logit at the newest step (HEAD_STATS).

A QPainter widget (text-heavy, small: no GL canvas needed). It reads the session and the
``HeadChoice`` and writes only to them: a click on a cell chooses that head (and selects the
layer's attention site in the app). The chosen head is outlined, the app's selected layer has its
row marked, and a dot marks every head whose attention pattern has arrived.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from synapse_desktop.models.attention import STATISTIC_LABELS, HeadChoice, HeadStatsFrame
from synapse_desktop.models.ranks import MERGED
from synapse_desktop.models.session import Session
from synapse_desktop.models.signal import Signal
from synapse_desktop.views.colors import THEMES, Theme, map_values

CHOSEN_COLOR = "#ff9e64"  # the chosen head, here and in the token view
NONFINITE_COLOR = (1.0, 0.3, 0.35, 1.0)  # a head whose statistic came as NaN or infinite
_ATTN_KIND = 1  # SiteKind.ATTN
_TITLE_PX = 18
_HEAD_AXIS_PX = 14
_BAR_PX = 12
_BAR_LABELS_PX = 44
_MARGIN = 6


def qcolor(rgba: tuple[float, ...] | str, alpha: float | None = None) -> QColor:
    """A QColor from a theme tuple (0..1) or a name; ``alpha`` (0..1) overrides."""
    if isinstance(rgba, str):
        color = QColor(rgba)
    else:
        color = QColor.fromRgbF(rgba[0], rgba[1], rgba[2], rgba[3])
    if alpha is not None:
        color.setAlphaF(max(0.0, min(1.0, alpha)))
    return color


def themed_painter(widget: QWidget, theme: Theme) -> tuple[QPainter, QColor]:
    """A painter on ``widget``: the theme's background filled, its text colour as the pen, an
    11 px font. Returns the painter and the text colour."""
    painter = QPainter(widget)
    painter.fillRect(widget.rect(), QColor(theme.background))
    text = qcolor(theme.text)
    painter.setPen(text)
    font = QFont(widget.font())
    font.setPixelSize(11)
    painter.setFont(font)
    return painter, text


def rgba_image(rgba: npt.NDArray[np.float32]) -> QImage:
    """An (h, w, 4) float RGBA array (0..1) as a QImage that owns its pixels."""
    h, w = rgba.shape[:2]
    pixels = np.ascontiguousarray(np.clip(rgba * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return QImage(pixels.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


def statistic_range(frame: HeadStatsFrame, statistic: str) -> tuple[float, float]:
    """The colour range: entropy 0 .. ln T (uniform attention over all T tokens); max logit
    0 (or the lowest value) .. the largest value, rounded up to 1, 2 or 5 x 10^k."""
    if statistic == "entropy":
        return 0.0, max(math.log(max(frame.tokens, 2)), 1e-6)
    values = frame.values(statistic)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0, 1.0
    lo, hi = min(0.0, float(finite.min())), float(finite.max())
    return lo, _nice_ceil(max(hi, lo + 1e-6))


def _nice_ceil(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at least ``value`` (for value > 0; else 1)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10**exponent >= value * (1 - 1e-9):
            return float(m * 10**exponent)
    return 10.0 ** (exponent + 1)


class HeadHeatmapView(QWidget):
    """Rows: the layers reported, top to bottom; columns: heads. ``refresh`` (a few Hz) pulls
    the newest statistics when they changed; ``hovered(text)`` tells what the pointer is over."""

    def __init__(self, session: Session, choice: HeadChoice, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.choice = session, choice
        self.setMouseTracking(True)
        self.setMinimumSize(160, 120)
        self.setToolTip(
            "Per head at the newest step: attention entropy (low: focused on few tokens) or the "
            "largest logit. Red: NaN or infinite. A dot: its pattern has arrived (no dots once "
            "every head's has). Click a head to show its pattern"
        )
        self.hovered = Signal()  # (text): "" when off the cells
        self.frame: HeadStatsFrame | None = None
        self.range = (0.0, 1.0)
        self.image: QImage | None = None
        self.pattern_pairs: set[tuple[int, int]] = set()
        self.readout = ""
        self._statistic = choice.statistic  # the one the image shows
        self._dirty = True
        session.head_stats.changed.connect(self._on_data)
        session.attention.changed.connect(self._on_data)
        session.ranks.changed.connect(self._on_data)
        session.view.changed.connect(self._on_view)
        session.selection.selected_changed.connect(self._on_selected)
        choice.changed.connect(self._on_choice)

    def sizeHint(self) -> QSize:
        return QSize(320, 300)

    # -- model changes --------------------------------------------------------------------------

    def _on_data(self) -> None:
        self._dirty = True

    def _on_choice(self) -> None:
        if self.frame is not None and self.choice.statistic != self._statistic:
            self._dirty = True
        self.update()

    def _on_view(self, name: str, value: object) -> None:
        del value
        if name == "colormap":
            self._dirty = True
        if name in ("colormap", "theme"):
            self.update()

    def _on_selected(self, index: int) -> None:
        del index
        self.update()

    @property
    def selected_layer(self) -> int:
        """The layer of the site selected in the app (-1: none)."""
        sites = self.session.topology.sites
        index = self.session.selection.selected
        return sites[index].layer if 0 <= index < len(sites) else -1

    def refresh(self) -> None:
        """Pull the newest statistics and recolour, if anything changed since the last call."""
        if not self._dirty:
            return
        self._dirty = False
        choice = self.session.ranks.lens_choice
        rank = None if choice == MERGED else choice
        self.frame = self.session.head_stats.latest(rank)
        self.pattern_pairs = set(self.session.attention.pairs(rank))
        self._statistic = self.choice.statistic
        self.image = None
        if self.frame is not None:
            values = self.frame.values(self._statistic)
            self.range = statistic_range(self.frame, self._statistic)
            lo, hi = self.range
            normalized = np.clip((values - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
            rgba = map_values(
                self.session.view.values.colormap, normalized.ravel(), (0.0, 0.0, 0.0, 0.0)
            ).reshape(*values.shape, 4)
            rgba[~np.isfinite(values) & self.frame.reported[:, None]] = NONFINITE_COLOR
            self.image = rgba_image(rgba)
        self.update()

    # -- geometry -------------------------------------------------------------------------------

    def cells_rect(self) -> QRectF:
        """Where the cells are drawn, in widget pixels."""
        left = _MARGIN + self.fontMetrics().horizontalAdvance("L000") + 4
        top = _MARGIN + _TITLE_PX + _HEAD_AXIS_PX
        right = self.width() - _MARGIN - _BAR_PX - _BAR_LABELS_PX
        bottom = self.height() - _MARGIN
        return QRectF(left, top, max(1.0, right - left), max(1.0, bottom - top))

    def cell_rect(self, row: int, head: int) -> QRectF:
        area = self.cells_rect()
        rows, heads = self._shape()
        w, h = area.width() / max(heads, 1), area.height() / max(rows, 1)
        return QRectF(area.left() + head * w, area.top() + row * h, w, h)

    def cell_at(self, x: float, y: float) -> tuple[int, int]:
        """(row, head) under widget pixel (x, y); (-1, -1) off the cells."""
        area = self.cells_rect()
        rows, heads = self._shape()
        if not rows or not area.contains(QPointF(x, y)):
            return -1, -1
        row = int((y - area.top()) / area.height() * rows)
        head = int((x - area.left()) / area.width() * heads)
        return min(row, rows - 1), min(head, heads - 1)

    def _shape(self) -> tuple[int, int]:
        if self.frame is None:
            return 0, 0
        rows, heads = self.frame.entropy.shape
        return int(rows), int(heads)

    # -- pointer --------------------------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self.hover(event.position().x(), event.position().y())

    def leaveEvent(self, event: object) -> None:
        del event
        self.readout = ""
        self.hovered.emit("")

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.click(event.position().x(), event.position().y())

    def hover(self, x: float, y: float) -> None:
        row, head = self.cell_at(x, y)
        self.readout = self.describe(row, head) if row >= 0 else ""
        self.hovered.emit(self.readout)

    def describe(self, row: int, head: int) -> str:
        frame = self.frame
        if frame is None:
            return ""
        layer = frame.layers[row]
        text = f"layer {layer} head {head}"
        if not frame.reported[row]:
            return f"{text}: not measured at step {frame.step}"
        parts = []
        for name in ("entropy", "max_logit"):
            value = float(frame.values(name)[row, head])
            parts.append(f"{STATISTIC_LABELS[name]} {value:.3g}")
        parts.append(f"(uniform over {frame.tokens} tokens: entropy {math.log(frame.tokens):.3g})")
        if (layer, head) in self.pattern_pairs:
            parts.append("pattern: click to show")
        return f"{text}, step {frame.step}: " + "  ".join(parts)

    def click(self, x: float, y: float) -> None:
        """Choose the head under widget pixel (x, y), and select its layer's attention site."""
        row, head = self.cell_at(x, y)
        if row < 0 or self.frame is None:
            return
        layer = self.frame.layers[row]
        self.choice.choose(layer, head)
        for site in self.session.topology.sites:
            if site.layer == layer and site.kind == _ATTN_KIND:
                self.session.selection.select(site.index)
                break

    # -- painting -------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        del event
        theme = THEMES[self.session.view.values.theme]
        painter, text = themed_painter(self, theme)
        frame = self.frame
        if frame is None or self.image is None:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no head statistics yet")
            painter.end()
            return
        label = STATISTIC_LABELS[self._statistic]
        painter.drawText(
            QRectF(_MARGIN, _MARGIN, self.width() - 2 * _MARGIN, _TITLE_PX),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            f"{label}, step {frame.step}",
        )
        area = self.cells_rect()
        painter.drawImage(area, self.image)
        self._draw_axes(painter, frame, area, text)
        self._draw_marks(painter, frame, theme.selected, theme.text)
        self._draw_bar(painter, area, text)
        painter.end()

    def _draw_axes(
        self, painter: QPainter, frame: HeadStatsFrame, area: QRectF, text: QColor
    ) -> None:
        rows, heads = self._shape()
        font = QFont(painter.font())
        font.setPixelSize(9)
        painter.setFont(font)
        painter.setPen(text)
        row_h, head_w = area.height() / rows, area.width() / heads
        every_row = max(1, math.ceil(11 / row_h))
        for row in range(0, rows, every_row):
            y = area.top() + row * row_h
            painter.drawText(
                QRectF(_MARGIN, y, area.left() - _MARGIN - 3, max(row_h, 11)),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                f"L{frame.layers[row]}",
            )
        every_head = max(1, math.ceil(painter.fontMetrics().horizontalAdvance("000") / head_w))
        for head in range(0, heads, every_head):
            x = area.left() + head * head_w
            painter.drawText(
                QRectF(x - 10, area.top() - _HEAD_AXIS_PX, head_w + 20, _HEAD_AXIS_PX),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
                str(head),
            )

    def _draw_marks(
        self,
        painter: QPainter,
        frame: HeadStatsFrame,
        selected: tuple[float, ...],
        text: tuple[float, ...],
    ) -> None:
        heads = self._shape()[1]
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(qcolor(text, 0.85))
        for layer, head in self._dotted(frame):
            row = frame.row_of(layer)
            if row >= 0 and head < heads:
                cell = self.cell_rect(row, head)
                radius = max(1.0, min(cell.width(), cell.height()) * 0.16)
                painter.drawEllipse(cell.center(), radius, radius)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        area = self.cells_rect()
        row = frame.row_of(self.selected_layer)
        if row >= 0:
            painter.setPen(QPen(qcolor(selected), 1.5))
            band = self.cell_rect(row, 0)
            painter.drawRect(QRectF(area.left(), band.top(), area.width(), band.height()))
        row = frame.row_of(self.choice.layer)
        if row >= 0 and 0 <= self.choice.head < heads:
            painter.setPen(QPen(qcolor(CHOSEN_COLOR), 2.0))
            painter.drawRect(self.cell_rect(row, self.choice.head).adjusted(-1, -1, 1, 1))

    def _dotted(self, frame: HeadStatsFrame) -> list[tuple[int, int]]:
        """The heads to mark as having a pattern: none once every reported head has one."""
        heads = self._shape()[1]
        reported = {
            (frame.layers[r], h) for r in np.flatnonzero(frame.reported) for h in range(heads)
        }
        return [] if reported <= self.pattern_pairs else sorted(self.pattern_pairs)

    def _draw_bar(self, painter: QPainter, area: QRectF, text: QColor) -> None:
        """The colour bar at the right, with the range's ends and middle."""
        levels = np.linspace(1.0, 0.0, 64, dtype=np.float32)
        rgba = map_values(self.session.view.values.colormap, levels, (0.0, 0.0, 0.0, 0.0))
        bar = QRectF(area.right() + 6, area.top(), _BAR_PX, area.height())
        painter.drawImage(bar, rgba_image(rgba.reshape(64, 1, 4)))
        painter.setPen(text)
        lo, hi = self.range
        for frac, value in ((0.0, hi), (0.5, (lo + hi) / 2), (1.0, lo)):
            y = bar.top() + frac * bar.height()
            painter.drawText(
                QRectF(bar.right() + 3, y - 7, _BAR_LABELS_PX, 14),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                f"{value:.3g}",
            )
