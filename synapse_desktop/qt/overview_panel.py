"""The overview dock's widget: a small toolbar (statistic, site kind, metric, follow) over the
overview canvas. The toolbar writes ``session.view``; view changes come back into it inside
``QSignalBlocker`` blocks, so nothing loops."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from synapse_desktop.models.session import Session
from synapse_desktop.models.view_settings import HEATMAP_KINDS, HEATMAP_STATISTICS
from synapse_desktop.scene.scales import SCALES
from synapse_desktop.views.overview import BLOCK_SIGNALS, OverviewView

KIND_LABELS = {"attn": "attention", "mlp": "MLP", "residual": "residual", "mean": "mean of kinds"}


class OverviewPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.view = OverviewView(session)
        self.statistic = QComboBox()
        for name in HEATMAP_STATISTICS:
            self.statistic.addItem(SCALES[name].label, name)
        self.statistic.setToolTip("The statistic of the layers x steps heatmap")
        self.kind = QComboBox()
        for name in HEATMAP_KINDS:
            self.kind.addItem(KIND_LABELS[name], name)
        self.kind.setToolTip("Which site of each layer the heatmap shows (and a click selects)")
        self.blocks = QComboBox()
        for name, (title, _) in BLOCK_SIGNALS.items():
            self.blocks.addItem(title, name)
        self.blocks.setToolTip(
            "The per-block heatmap: gradient norms, or what the optimizer did to each block "
            "(the probe's optimizer=)"
        )
        self.metric_choice = QComboBox()
        self.metric_choice.setToolTip("The training metric plotted above the heatmaps")
        self.smoothing = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=0.99, singleStep=0.05)
        self.smoothing.setToolTip(
            "Smoothing of the metric: the weight of an exponential moving average, as in "
            "TensorBoard (0: none). The raw values stay as a faint line"
        )
        self.log_scale = QCheckBox("log")
        self.log_scale.setToolTip("The metric's y axis in log scale")
        self.newest = QPushButton("Newest")
        self.newest.setToolTip(
            "Follow the newest steps again (also: double-click the plots). Drag to pan, "
            "wheel to zoom the steps; click a heatmap row to select its layer"
        )
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        for text, widget in (
            ("Heatmap", self.statistic),
            ("of", self.kind),
            ("Metric", self.metric_choice),
            ("smooth", self.smoothing),
            ("Blocks", self.blocks),
        ):
            bar.addWidget(QLabel(text))
            bar.addWidget(widget)
            if widget is self.smoothing:
                bar.addWidget(self.log_scale)
        bar.addStretch(1)
        bar.addWidget(self.newest)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.view.native, 1)

        self.statistic.currentIndexChanged.connect(
            lambda: session.view.set(heatmap_statistic=self.statistic.currentData())
        )
        self.kind.currentIndexChanged.connect(
            lambda: session.view.set(heatmap_kind=self.kind.currentData())
        )
        self.metric_choice.currentTextChanged.connect(self._metric_chosen)
        self.smoothing.valueChanged.connect(lambda v: session.view.set(metric_smoothing=v))
        self.log_scale.toggled.connect(lambda v: session.view.set(metric_log=v))
        self.blocks.currentIndexChanged.connect(
            lambda: self.view.show_block_signal(self.blocks.currentData())
        )
        self.newest.clicked.connect(self.view.follow_newest)
        session.view.changed.connect(self._on_view)
        session.metrics.changed.connect(self._on_metrics)
        self._on_view("", None)

    def _metric_chosen(self, name: str) -> None:
        if name:
            self.session.view.set(overview_metric=name)

    def _on_metrics(self) -> None:
        """Offer every metric received (and the chosen one, even before it arrives)."""
        chosen = self.session.view.values.overview_metric
        names = self.session.metrics.names()
        items = names if chosen in names else [chosen, *names]
        if items != [self.metric_choice.itemText(i) for i in range(self.metric_choice.count())]:
            with QSignalBlocker(self.metric_choice):
                self.metric_choice.clear()
                self.metric_choice.addItems(items)
                self.metric_choice.setCurrentText(chosen)

    def _on_view(self, name: str, value: object) -> None:
        del value
        watched = ("heatmap_statistic", "heatmap_kind", "overview_metric")
        if name not in ("", *watched, "metric_smoothing", "metric_log"):
            return
        v = self.session.view.values
        with QSignalBlocker(self.smoothing), QSignalBlocker(self.log_scale):
            self.smoothing.setValue(v.metric_smoothing)
            self.log_scale.setChecked(v.metric_log)
        for combo, data in ((self.statistic, v.heatmap_statistic), (self.kind, v.heatmap_kind)):
            with QSignalBlocker(combo):
                combo.setCurrentIndex(max(0, combo.findData(data)))
        self._on_metrics()
        with QSignalBlocker(self.metric_choice):
            self.metric_choice.setCurrentText(v.overview_metric)

    def refresh(self) -> None:
        """Push pending changes to the canvas (nothing when hidden or when nothing changed)."""
        if self.isVisible():
            self.view.refresh()

    def close_view(self) -> None:
        self.view.close()
