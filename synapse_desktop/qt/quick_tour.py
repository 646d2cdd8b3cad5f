"""Help > Quick tour: one short page on what the window shows (the same text as the "Quick
tour" section of docs/APP.md)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

TOUR = """
<h3>Quick tour</h3>
<p><b>The grid (centre).</b> One card per transformer block, left to right from the first
layer; a deep model wraps its cards into rows. In each card, one plane per hooked site:
attention, MLP, residual stream, top to bottom. A plane has one cell per neuron, so a wider
layer is a larger plane. Drag to orbit, shift-drag to pan, wheel to zoom, <b>R</b> to frame the
whole model again.</p>
<p><b>Colours.</b> Each plane is tinted by the statistic chosen under <i>Colour by</i> (rms by
default), through the colour map, over a fixed range shown under the choice (log10 for
magnitudes): dark is small, bright is large, the same scale for every plane and every step.</p>
<p><b>Points.</b> The bright points are the neurons the threshold selects. By default each site
is judged by its own scale: a neuron lights when its mean |x| is more than 2.5 standard
deviations above its site's mean, about 1 % of each plane. <i>Light</i> in the control panel
switches to the top fraction of each site or to one absolute value for all.</p>
<p><b>Docks.</b> Overview: the training loss (smoothed like TensorBoard; <i>log</i> for a log
axis) over layer x step and gradient heatmaps on the same step axis. Inspector: the selected
plane's statistics over steps. Depth profile, Experts, Attention, Alerts: tabs. View &gt; Reset
layout brings the default arrangement back. Hover anything (a plane, a cell, an axis) for its
name and numbers in the status bar.</p>
<p><b>Data.</b> File &gt; Connect (Ctrl+K) to a trainer that called
<code>synapse_probe.attach(model)</code>, or run <code>synapse sim</code> or
<code>synapse demo</code>.</p>
"""


class QuickTour(QDialog):
    """The tour in a small scrollable window."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Quick tour")
        self.text = QTextBrowser()
        self.text.setHtml(TOUR)
        self.text.setOpenExternalLinks(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(560, 520)
