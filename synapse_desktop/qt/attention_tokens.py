"""The chosen head's attention over the sampled sequence: the tokens in a row with arcs from each
query to the keys it attends to (``TokenArcsView``), and the full query x key pattern as a
heatmap (``PatternView``).

QPainter widgets (tokens are text; QPainter draws it crisply at any size). They read the
session and the ``HeadChoice``, and write only the choice's query: hovering a token, or a row of
the heatmap, highlights what that query attends to in both views; a click pins it.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QWidget

from synapse_desktop.models.attention import HeadChoice, Pattern
from synapse_desktop.models.ranks import MERGED
from synapse_desktop.models.session import Session
from synapse_desktop.models.signal import Signal
from synapse_desktop.qt.head_heatmap import CHOSEN_COLOR, qcolor, rgba_image, themed_painter
from synapse_desktop.views.colors import THEMES, map_values

FLOOR = 0.05  # weights under this are not drawn as arcs (uniform attention would be a blur)
MAX_ARCS = 2000  # the strongest ones, at most
MIN_SPACING = 10.0  # px per token; a longer sequence makes the view wider (it scrolls)
MAX_LABEL_CHARS = 14
_EDGE_COLORS = {"dark": "#7aa2f7", "light": "#1f5fbf"}
_MARGIN = 6
_READOUT_PX = 16
_TOP_KEYS = 4


def shown_token(token: str) -> str:
    """A token as drawn: spaces as a middle dot, newlines and tabs as arrows, shortened."""
    text = token.replace(" ", "\u00b7").replace("\n", "\u21b5").replace("\t", "\u21e5")
    text = text or "\u2205"
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "\u2026"


def chosen_pattern(session: Session, choice: HeadChoice) -> Pattern | None:
    """The chosen head's latest pattern, from the rank the app shows (merged: lowest rank)."""
    rank = session.ranks.lens_choice
    return session.attention.pattern(choice.layer, choice.head, None if rank == MERGED else rank)


def describe_query(pattern: Pattern, query: int) -> str:
    """Which keys ``query`` attends to most, e.g. ``'sat' (2) -> 'cat' (1) 0.91, ...``."""
    if not 0 <= query < len(pattern.tokens):
        return ""
    row = pattern.weights[query, : query + 1].astype(np.float32)
    order = np.argsort(-np.nan_to_num(row, nan=-1.0), kind="stable")[:_TOP_KEYS]
    keys = ", ".join(f"'{shown_token(pattern.tokens[k])}' ({k}) {row[k]:.2f}" for k in order)
    return f"'{shown_token(pattern.tokens[query])}' ({query}) attends to {keys}"


class _ChosenHeadView(QWidget):
    """A view of the chosen head's pattern: marked dirty when the patterns, the rank or the
    choice change, repainted when the pointer moves to another query."""

    def __init__(self, session: Session, choice: HeadChoice, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.session, self.choice = session, choice
        self.setMouseTracking(True)
        self.hovered = Signal()  # (text)
        self.pattern: Pattern | None = None
        self._dirty = True
        session.attention.changed.connect(self._on_data)
        session.ranks.changed.connect(self._on_data)
        session.view.changed.connect(self._on_view)
        choice.changed.connect(self._on_data)
        choice.hovered_changed.connect(self.update)

    def _on_data(self) -> None:
        self._dirty = True

    def _on_view(self, name: str, value: object) -> None:
        """A view setting changed (each view repaints what it depends on)."""


class TokenArcsView(_ChosenHeadView):
    """Tokens left to right along a baseline, labels below it, arcs above: from each query to
    every earlier key (or itself) with weight at least ``FLOOR``, opacity and width by weight."""

    def __init__(self, session: Session, choice: HeadChoice, parent: QWidget | None = None) -> None:
        super().__init__(session, choice, parent)
        self.setMinimumHeight(120)
        self.setToolTip(
            f"The chosen head over the sampled tokens: an arc from each query to every earlier "
            f"key it gives at least {FLOOR:g} of its attention. Hover a token to see what it "
            "attends to; click to pin it"
        )
        self.labels: list[str] = []
        self.arcs = np.zeros((0, 3), np.float64)  # (query, key, weight), weakest first
        self._base: QPixmap | None = None  # every arc, redrawn only when data or size change

    def sizeHint(self) -> QSize:
        return QSize(640, 260)

    def _on_view(self, name: str, value: object) -> None:
        del value
        if name == "theme":
            self._base = None
            self.update()

    def refresh(self) -> None:
        """Pull the chosen head's pattern if anything changed since the last call."""
        if not self._dirty:
            return
        self._dirty = False
        pattern = chosen_pattern(self.session, self.choice)
        if pattern is not self.pattern:
            self.pattern = pattern
            self.labels = [shown_token(t) for t in pattern.tokens] if pattern else []
            self.arcs = _strong_arcs(pattern)
            self._base = None
            n = len(self.labels)
            self.setMinimumWidth(int(n * MIN_SPACING + 2 * _MARGIN) if n else 0)
        self.update()

    # -- geometry -------------------------------------------------------------------------------

    @property
    def spacing(self) -> float:
        n = max(len(self.labels), 1)
        return max(1.0, (self.width() - 2 * _MARGIN) / n)

    def token_x(self, index: int) -> float:
        return _MARGIN + (index + 0.5) * self.spacing

    def label_font(self) -> QFont:
        font = QFont(self.font())
        font.setPixelSize(int(max(8, min(13, self.spacing * 0.9))))
        return font

    def label_room(self) -> float:
        """The height of the labels' strip under the baseline (longer labels are elided)."""
        metrics = QFontMetrics(self.label_font())
        longest = max((metrics.horizontalAdvance(t) for t in self.labels), default=0)
        return float(min(longest + 6, max(30.0, self.height() * 0.5)))

    @property
    def baseline(self) -> float:
        """The y of the row the arcs start from; labels hang below it."""
        return max(_MARGIN + _READOUT_PX + 20.0, self.height() - _MARGIN - self.label_room())

    def token_at(self, x: float) -> int:
        """The token whose column holds widget x (-1: none)."""
        if not self.labels:
            return -1
        index = math.floor((x - _MARGIN) / self.spacing)
        return index if 0 <= index < len(self.labels) else -1

    # -- pointer --------------------------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self.hover(event.position().x())

    def leaveEvent(self, event: object) -> None:
        del event
        self.choice.hover(-1)
        self.hovered.emit("")

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.click(event.position().x())

    def hover(self, x: float) -> None:
        query = self.token_at(x)
        self.choice.hover(query)
        self.hovered.emit(describe_query(self.pattern, query) if self.pattern else "")

    def click(self, x: float) -> None:
        """Pin the query under x (a click on the pinned one unpins it)."""
        query = self.token_at(x)
        self.choice.focus(-1 if query == self.choice.query else query)

    # -- painting -------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        del event
        theme_name = self.session.view.values.theme
        theme = THEMES[theme_name]
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(theme.background))
        text = qcolor(theme.text)
        pattern = self.pattern
        if pattern is None:
            painter.setPen(text)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._empty_text())
            painter.end()
            return
        query = self.choice.shown_query
        query = query if query < len(self.labels) else -1
        if self._base is None or self._base.size() != self.size():
            self._base = self._draw_base(_EDGE_COLORS[theme_name])
        if query >= 0:
            painter.setOpacity(0.25)
        painter.drawPixmap(0, 0, self._base)
        painter.setOpacity(1.0)
        if query >= 0:
            self._draw_query(painter, pattern, query)
        self._draw_labels(painter, text, query)
        painter.setPen(text)
        readout = (
            describe_query(pattern, query)
            if query >= 0
            else f"layer {pattern.layer} head {pattern.head}, step {pattern.step}: "
            "hover a token to see what it attends to, click to pin"
        )
        font = QFont(self.font())
        font.setPixelSize(11)
        painter.setFont(font)
        painter.drawText(
            QRectF(_MARGIN, _MARGIN, self.width() - 2 * _MARGIN, _READOUT_PX),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            readout,
        )
        painter.end()

    def _empty_text(self) -> str:
        if self.choice.layer < 0:
            return "choose a head (a dot in the heatmap: its pattern has arrived)"
        return (
            f"no pattern for layer {self.choice.layer} head {self.choice.head} yet "
            "(heads with a dot in the heatmap have one)"
        )

    def _arc(self, query: int, key: int, top: float) -> QPainterPath:
        """A path from the key up and over to the query; a small loop when they are one."""
        y0 = self.baseline
        path = QPainterPath()
        if query == key:
            r = min(self.spacing * 0.4, 5.0)
            path.addEllipse(QPointF(self.token_x(query), y0 - r), r * 0.8, r)
            return path
        x1, x2 = self.token_x(key), self.token_x(query)
        height = min(y0 - top, max(6.0, (x2 - x1) * 0.5))
        lift = height * 4 / 3  # a cubic with both handles at -lift peaks at 3/4 of it
        path.moveTo(x1, y0)
        path.cubicTo(x1, y0 - lift, x2, y0 - lift, x2, y0)
        return path

    def _draw_base(self, color: str) -> QPixmap:
        pixmap = QPixmap(self.size())
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        top = _MARGIN + _READOUT_PX + 4
        for query, key, weight in self.arcs:
            painter.setPen(QPen(qcolor(color, 0.15 + 0.85 * weight), 0.5 + 2.5 * weight))
            painter.drawPath(self._arc(int(query), int(key), top))
        painter.end()
        return pixmap

    def _draw_query(self, painter: QPainter, pattern: Pattern, query: int) -> None:
        """The query's own arcs in the chosen colour, and a tint behind each key's label."""
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        top = _MARGIN + _READOUT_PX + 4
        row = np.nan_to_num(pattern.weights[query, : query + 1].astype(np.float32), nan=0.0)
        y0, half = self.baseline, self.spacing / 2
        for key in np.argsort(row, kind="stable"):
            weight = float(row[key])
            if weight <= 0:
                continue
            x = self.token_x(int(key))
            painter.fillRect(
                QRectF(x - half, y0 + 2, 2 * half, self.height() - y0 - 2),
                qcolor(CHOSEN_COLOR, 0.6 * weight),
            )
            if weight >= FLOOR / 2:
                painter.setPen(QPen(qcolor(CHOSEN_COLOR, 0.3 + 0.7 * weight), 0.8 + 3 * weight))
                painter.drawPath(self._arc(query, int(key), top))

    def _draw_labels(self, painter: QPainter, text: QColor, query: int) -> None:
        """Each token's label rotated to read upwards, ending at the baseline."""
        font = self.label_font()
        y0, room = self.baseline, int(self.label_room() - 3)  # 3 px spare: font metrics round
        painter.setPen(QPen(QColor(text.red(), text.green(), text.blue(), 128), 1.0))
        painter.drawLine(QPointF(_MARGIN, y0), QPointF(self.width() - _MARGIN, y0))
        bold = QFont(font)
        bold.setBold(True)
        for i, label in enumerate(self.labels):
            painter.save()
            painter.translate(self.token_x(i), y0 + 4)
            painter.rotate(-90)
            painter.setFont(bold if i == query else font)
            painter.setPen(qcolor(CHOSEN_COLOR) if i == query else text)
            metrics = painter.fontMetrics()
            label = metrics.elidedText(label, Qt.TextElideMode.ElideRight, room)
            width = metrics.horizontalAdvance(label)
            painter.drawText(QPointF(-width, (metrics.ascent() - metrics.descent()) / 2), label)
            painter.restore()


def _strong_arcs(pattern: Pattern | None) -> np.ndarray:
    """(query, key, weight) of the causal weights at least ``FLOOR``, weakest first, at most
    ``MAX_ARCS`` (the strongest)."""
    if pattern is None:
        return np.zeros((0, 3), np.float64)
    weights = np.nan_to_num(pattern.weights.astype(np.float32), nan=0.0)
    queries, keys = np.nonzero(np.tril(weights) >= FLOOR)
    values = weights[queries, keys]
    order = np.argsort(values, kind="stable")[-MAX_ARCS:]
    return np.column_stack([queries[order], keys[order], values[order]]).astype(np.float64)


class PatternView(_ChosenHeadView):
    """The chosen head's weights, queries down and keys across, colour by the square root of
    the weight (0..1: weak attention still shows); the highlighted query's row is outlined."""

    def __init__(self, session: Session, choice: HeadChoice, parent: QWidget | None = None) -> None:
        super().__init__(session, choice, parent)
        self.setMinimumSize(120, 120)
        self.setToolTip(
            "The chosen head's attention weights: a row per query, a column per key, colour by "
            "the square root of the weight (0 to 1). Click a row to pin that query"
        )
        self.image: QImage | None = None
        self._colormap = ""  # the one the image was made with

    def sizeHint(self) -> QSize:
        return QSize(280, 280)

    def _on_view(self, name: str, value: object) -> None:
        del value
        if name == "colormap":
            self._dirty = True
        if name in ("colormap", "theme"):
            self.update()

    def refresh(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        pattern = chosen_pattern(self.session, self.choice)
        colormap = self.session.view.values.colormap
        if pattern is not self.pattern or colormap != self._colormap:
            self.pattern, self._colormap = pattern, colormap
            self.image = None
            if pattern is not None:
                t = len(pattern.tokens)
                normalized = np.sqrt(np.clip(pattern.weights.astype(np.float32), 0.0, 1.0)).astype(
                    np.float32
                )
                rgba = map_values(colormap, normalized.ravel(), (0.5, 0.5, 0.5, 1.0))
                self.image = rgba_image(rgba.reshape(t, t, 4))
        self.update()

    def grid_rect(self) -> QRectF:
        """The square the cells fill, in widget pixels."""
        left, top = _MARGIN + 24.0, _MARGIN + _READOUT_PX + 14.0
        side = max(1.0, min(self.width() - left - _MARGIN, self.height() - top - _MARGIN))
        return QRectF(left, top, side, side)

    def cell_rect(self, query: int, key: int) -> QRectF:
        t = len(self.pattern.tokens) if self.pattern else 1
        area = self.grid_rect()
        size = area.width() / t
        return QRectF(area.left() + key * size, area.top() + query * size, size, size)

    def cell_at(self, x: float, y: float) -> tuple[int, int]:
        """(query, key) under widget pixel (x, y); (-1, -1) off the cells."""
        area = self.grid_rect()
        if self.pattern is None or not area.contains(QPointF(x, y)):
            return -1, -1
        t = len(self.pattern.tokens)
        query = min(int((y - area.top()) / area.height() * t), t - 1)
        key = min(int((x - area.left()) / area.width() * t), t - 1)
        return query, key

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self.hover(event.position().x(), event.position().y())

    def leaveEvent(self, event: object) -> None:
        del event
        self.choice.hover(-1)
        self.hovered.emit("")

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            query, _ = self.cell_at(event.position().x(), event.position().y())
            self.choice.focus(-1 if query == self.choice.query else query)

    def hover(self, x: float, y: float) -> None:
        query, key = self.cell_at(x, y)
        self.choice.hover(query)
        pattern = self.pattern
        if pattern is None or query < 0:
            self.hovered.emit("")
            return
        tokens = pattern.tokens
        self.hovered.emit(
            f"query '{shown_token(tokens[query])}' ({query}) -> key "
            f"'{shown_token(tokens[key])}' ({key}): {float(pattern.weights[query, key]):.3f}"
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        del event
        theme = THEMES[self.session.view.values.theme]
        painter, text = themed_painter(self, theme)
        if self.pattern is None or self.image is None:
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no pattern")
            painter.end()
            return
        painter.drawText(
            QRectF(_MARGIN, _MARGIN, self.width() - 2 * _MARGIN, _READOUT_PX),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            "queries \u2193  keys \u2192",
        )
        area = self.grid_rect()
        painter.drawImage(area, self.image)
        self._draw_ticks(painter, area, text)
        query = self.choice.shown_query
        if 0 <= query < len(self.pattern.tokens):
            row = self.cell_rect(query, 0)
            painter.setPen(QPen(qcolor(CHOSEN_COLOR), 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(area.left(), row.top(), area.width(), row.height()))
        painter.end()

    def _draw_ticks(self, painter: QPainter, area: QRectF, text: QColor) -> None:
        assert self.pattern is not None
        t = len(self.pattern.tokens)
        font = QFont(painter.font())
        font.setPixelSize(9)
        painter.setFont(font)
        painter.setPen(text)
        size = area.width() / t
        steps = (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64)
        every = next((m for m in steps if m * size >= 18), t)
        for i in range(0, t, every):
            centre = (i + 0.5) * size
            painter.drawText(
                QRectF(area.left() + centre - 15, area.top() - 13, 30, 12),
                Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
                str(i),
            )
            painter.drawText(
                QRectF(_MARGIN, area.top() + centre - 6, area.left() - _MARGIN - 3, 12),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                str(i),
            )
