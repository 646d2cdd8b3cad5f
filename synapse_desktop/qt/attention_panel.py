"""The attention dock's widget: head and statistic selectors, the pattern's age, and three views
(layer x head statistics, the token arcs, the query x key pattern). The selectors write the
panel's ``HeadChoice``; choice changes come back into them inside ``QSignalBlocker`` blocks."""

from __future__ import annotations

import time

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from synapse_desktop.models.attention import STATISTIC_LABELS, STATISTICS, HeadChoice
from synapse_desktop.models.session import Session
from synapse_desktop.models.signal import Signal
from synapse_desktop.qt.attention_tokens import PatternView, TokenArcsView, chosen_pattern
from synapse_desktop.qt.head_heatmap import HeadHeatmapView

WAITING = "waiting for attention frames (the trainer sends them with attention=True)"


class AttentionPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.choice = HeadChoice()
        self.heads_view = HeadHeatmapView(session, self.choice)
        self.tokens_view = TokenArcsView(session, self.choice)
        self.pattern_view = PatternView(session, self.choice)
        self.views = (self.heads_view, self.tokens_view, self.pattern_view)

        self.layer = QSpinBox()
        self.layer.setToolTip("The block (layer id) whose head the token view shows")
        self.head = QSpinBox()
        self.head.setToolTip("The head the token view shows (or click a heatmap cell)")
        self.statistic = QComboBox()
        for name in STATISTICS:
            self.statistic.addItem(STATISTIC_LABELS[name], name)
        self.statistic.setToolTip(
            "Per head at the newest step: entropy of the attention (mean over queries; low = "
            "focused), or the largest pre-softmax logit (very large = sharp, may saturate)"
        )
        self.age = QLabel()
        self.age.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        for text, widget in (
            ("Layer", self.layer),
            ("Head", self.head),
            ("Heatmap", self.statistic),
        ):
            bar.addWidget(QLabel(text))
            bar.addWidget(widget)
        bar.addSpacing(12)
        bar.addWidget(self.age, 1)

        scroll = QScrollArea()
        scroll.setWidget(self.tokens_view)
        scroll.setWidgetResizable(True)
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        views: tuple[QWidget, ...] = (self.heads_view, scroll, self.pattern_view)
        for index, (view, stretch) in enumerate(zip(views, (2, 5, 2), strict=True)):
            self.splitter.addWidget(view)
            self.splitter.setStretchFactor(index, stretch)
        self.waiting = QLabel(WAITING)
        self.waiting.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.waiting.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.waiting)
        self.stack.addWidget(self.splitter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)

        self.layer.valueChanged.connect(self._head_picked)
        self.head.valueChanged.connect(self._head_picked)
        self.statistic.currentIndexChanged.connect(
            lambda: self.choice.show(self.statistic.currentData())
        )
        self.hovered = Signal()  # (text): what the pointer is over in any view ("" when nothing)
        self.readout = ""
        for view in self.views:
            view.hovered.connect(self._on_hover)
        self.choice.changed.connect(self._on_choice)
        self._dirty = True
        session.attention.changed.connect(self._on_data)
        session.head_stats.changed.connect(self._on_data)
        self._sync_ranges()

    @property
    def has_data(self) -> bool:
        return bool(self.session.attention.ranks() or self.session.head_stats.ranks())

    def _on_data(self) -> None:
        self._dirty = True

    def _on_hover(self, text: str) -> None:
        self.readout = text
        self.hovered.emit(text)

    def _head_picked(self) -> None:
        self.choice.choose(self.layer.value(), self.head.value())

    def _on_choice(self) -> None:
        with QSignalBlocker(self.layer), QSignalBlocker(self.head), QSignalBlocker(self.statistic):
            if self.choice.layer >= 0:
                self.layer.setMaximum(max(self.layer.maximum(), self.choice.layer))
                self.layer.setValue(self.choice.layer)
            if self.choice.head >= 0:
                self.head.setMaximum(max(self.head.maximum(), self.choice.head))
                self.head.setValue(self.choice.head)
            self.statistic.setCurrentIndex(max(0, self.statistic.findData(self.choice.statistic)))

    def _sync_ranges(self) -> None:
        """Spin box ranges from the layers and heads received; the first head with a pattern
        is chosen while none is."""
        attention, stats = self.session.attention, self.session.head_stats
        pairs = attention.pairs()
        layers = [*stats.layers, *(layer for layer, _ in pairs)]
        heads = max([stats.n_heads, *(head + 1 for _, head in pairs)])
        with QSignalBlocker(self.layer), QSignalBlocker(self.head):
            self.layer.setRange(0, max(layers, default=0))
            self.head.setRange(0, max(heads - 1, 0))
        if self.choice.layer < 0 and (pairs or layers):
            self.choice.choose(*(pairs[0] if pairs else (min(layers), 0)))

    @property
    def shown(self) -> bool:
        """On screen: visible and not behind another dock's tab (Qt moves those off)."""
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def refresh(self) -> None:
        """Push pending changes to the views (nothing when not on screen)."""
        if not self.shown:
            return
        if self._dirty:
            self._dirty = False
            self._sync_ranges()
            self.stack.setCurrentIndex(1 if self.has_data else 0)
        for view in self.views:
            view.refresh()
        self.age.setText(self.describe_age())

    def close_view(self) -> None:
        """Nothing to release: the attention views paint with QPainter, not OpenGL."""

    def describe_age(self) -> str:
        """Which step the shown pattern is from and how old it is."""
        pattern = chosen_pattern(self.session, self.choice)
        if pattern is None:
            return "no pattern for this head yet" if self.has_data else ""
        newest = max(self.session.head_stats.newest, self.session.counters.step, pattern.step)
        behind = newest - pattern.step
        parts = [
            f"pattern of step {pattern.step}",
            f"{behind} steps behind" if behind else "the newest step",
        ]
        seconds = (time.time_ns() - pattern.timestamp_ns) / 1e9  # the trainer's clock
        if pattern.timestamp_ns and -1.0 < seconds < 86400.0:  # else: clocks too far apart
            parts.append(_ago(max(0.0, seconds)))
        parts.append(f"{len(pattern.tokens)} tokens of batch row {pattern.sequence}")
        if len(self.session.attention.ranks()) > 1:
            parts.append(f"rank {pattern.rank}")
        return ", ".join(parts)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"
