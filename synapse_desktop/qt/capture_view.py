"""The capture view: one capture file, site by site, as a histogram of its values, its top
neurons by mean |x| and a token x neuron heatmap of |x| (``models.capture_file`` computes them).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from synapse_desktop.models.capture_file import (
    Capture,
    CaptureSite,
    Heatmap,
    Histogram,
    heatmap,
    histogram,
    top_neurons,
)
from synapse_desktop.qt.head_heatmap import rgba_image
from synapse_desktop.views.colors import map_values

COLORMAP = "viridis"
_MARGIN = 28
_BAR = QColor("#4c9be8")
_AXIS = QColor("#8b949e")


class HistogramPlot(QWidget):
    """Bars of a ``Histogram`` on a log count scale, the value range below."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.histogram: Histogram | None = None
        self.setMinimumSize(320, 180)

    def sizeHint(self) -> QSize:
        return QSize(420, 220)

    def show_histogram(self, hist: Histogram) -> None:
        self.histogram = hist
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        hist = self.histogram
        painter = QPainter(self)
        painter.setPen(_AXIS)
        area = QRectF(self.rect()).adjusted(_MARGIN, 8, -8, -_MARGIN)
        painter.drawLine(area.bottomLeft(), area.bottomRight())
        if hist is None or not hist.counts.any():
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "no finite values")
            return
        heights = np.log1p(hist.counts.astype(np.float64))
        heights /= heights.max()
        width = area.width() / len(heights)
        for i, h in enumerate(heights):
            if h > 0:
                top = area.bottom() - h * area.height()
                bar = QRectF(area.left() + i * width, top, max(1.0, width - 1), area.bottom() - top)
                painter.fillRect(bar, _BAR)
        below = QRectF(area.left(), area.bottom() + 4, area.width(), _MARGIN - 6)
        painter.drawText(below, Qt.AlignmentFlag.AlignLeft, f"{hist.edges[0]:.3g}")
        painter.drawText(below, Qt.AlignmentFlag.AlignRight, f"{hist.edges[-1]:.3g}")
        note = "count (log)" + (f", {hist.nonfinite} NaN/inf" if hist.nonfinite else "")
        painter.drawText(below, Qt.AlignmentFlag.AlignHCenter, note)
        painter.end()


class HeatmapImage(QWidget):
    """A ``Heatmap`` as an image: tokens down, neurons across, |x| coloured from 0 to its max."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heatmap: Heatmap | None = None
        self._image: QImage | None = None
        self._top = 0.0
        self.setMinimumSize(320, 240)

    def sizeHint(self) -> QSize:
        return QSize(520, 360)

    def show_heatmap(self, data: Heatmap) -> None:
        self.heatmap = data
        cells = data.cells
        top = float(np.nanmax(cells)) if np.isfinite(cells).any() else 1.0
        normalized = (cells / (top or 1.0)).astype(np.float32).reshape(-1)
        rgba = map_values(COLORMAP, normalized, (0.5, 0.5, 0.5, 1.0)).reshape(*cells.shape, 4)
        self._image = rgba_image(rgba)
        self._top = top
        self.setToolTip(
            f"{cells.shape[0]} rows x {cells.shape[1]} columns; each cell the mean |x| of "
            f"{data.tokens_per_row} token(s) x {data.neurons_per_col} neuron(s); max {top:.3g}"
        )
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setPen(_AXIS)
        area = QRectF(self.rect()).adjusted(_MARGIN, 8, -8, -_MARGIN)
        if self._image is not None:
            painter.drawImage(area, self._image)
        painter.drawText(
            QPointF(area.left(), area.bottom() + 16), "neurons \u2192   (tokens \u2193)"
        )
        below = QRectF(area.left(), area.bottom() + 4, area.width(), _MARGIN - 6)
        painter.drawText(below, Qt.AlignmentFlag.AlignRight, f"|x| 0 (dark) to {self._top:.3g}")
        painter.end()


class CaptureView(QDialog):
    """Shows ``capture``; ``site`` picks the site, ``source`` activations or gradients."""

    def __init__(self, capture: Capture, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.capture = capture
        self.setWindowTitle(f"Capture - {capture.model}, step {capture.step}")
        self.site = QComboBox()
        self.site.addItems([site.name for site in capture.sites])
        self.source = QComboBox()
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.histogram_plot = HistogramPlot()
        self.heatmap_image = HeatmapImage()
        self.top_table = QTableWidget(0, 2)
        self.top_table.setHorizontalHeaderLabels(["neuron", "mean |x|"])
        self.top_table.verticalHeader().setVisible(False)
        self.top_table.setMinimumWidth(170)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Site"))
        bar.addWidget(self.site, 1)
        bar.addWidget(self.source)
        grid = QGridLayout()
        grid.addWidget(_titled("Values", self.histogram_plot), 0, 0)
        grid.addWidget(_titled("Top neurons", self.top_table), 0, 1, 2, 1)
        grid.addWidget(_titled("Tokens x neurons, |x|", self.heatmap_image), 1, 0)
        grid.setRowStretch(1, 1)
        grid.setColumnStretch(0, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.info)
        layout.addLayout(grid, 1)
        self.site.currentIndexChanged.connect(self._on_site)
        self.source.currentIndexChanged.connect(self._show)
        self._on_site()

    @property
    def current(self) -> CaptureSite:
        return self.capture.sites[max(0, self.site.currentIndex())]

    def _on_site(self) -> None:
        site = self.current
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem("activations")
        if site.grad is not None:
            self.source.addItem("gradients")
        self.source.blockSignals(False)
        self._show()

    def _show(self) -> None:
        site = self.current
        grads = self.source.currentIndex() == 1 and site.grad is not None
        values = site.grad if grads and site.grad is not None else site.values
        self.histogram = histogram(values)
        self.top = top_neurons(values)
        self.heatmap = heatmap(values)
        self.histogram_plot.show_histogram(self.histogram)
        self.heatmap_image.show_heatmap(self.heatmap)
        indices, means = self.top
        self.top_table.setRowCount(len(indices))
        for row, (neuron, mean) in enumerate(zip(indices, means, strict=True)):
            self.top_table.setItem(row, 0, QTableWidgetItem(str(int(neuron))))
            self.top_table.setItem(row, 1, QTableWidgetItem(f"{float(mean):.4g}"))
        tokens, neurons = values.shape
        self.info.setText(
            f"{site.name} (layer {site.layer}), shape {list(site.shape)}: {tokens} tokens x "
            f"{neurons} neurons; file {self.capture.path}"
        )


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(QLabel(f"<b>{title}</b>"))
    layout.addWidget(widget, 1)
    return box
