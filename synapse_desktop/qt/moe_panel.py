"""The "Experts" dock's widget: a layer selector and a summary line over the experts canvas
(``views.expert_heatmap``), or a note while no MOE_ROUTING frame has arrived. Refreshed only
while shown. The selector writes ``session.selection`` (the layer's MLP site); selection and
data changes come back into it inside a ``QSignalBlocker``."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from synapse_desktop.models.routing import layer_site
from synapse_desktop.models.session import Session
from synapse_desktop.views.expert_heatmap import ExpertHeatmapView

NO_ROUTING = "no MoE routing frames (the trainer sends them for MoE models)"


class MoePanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.view = ExpertHeatmapView(session)
        self.view.native.setToolTip(
            "Top: each expert's share of its layer's token assignments over the balanced share "
            "1/E (mean of the last steps), and the coefficient of variation of the counts per "
            "layer. Bottom: the chosen layer's experts over steps (drag to pan, wheel to zoom, "
            "double-click to follow). Click a layer row to select it"
        )
        self.layer_choice = QComboBox()
        self.layer_choice.setToolTip("The MoE layer shown over steps (selects its MLP site)")
        self.summary = QLabel(NO_ROUTING)
        self.summary.setWordWrap(True)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.addWidget(QLabel("Layer"))
        bar.addWidget(self.layer_choice)
        bar.addWidget(self.summary, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.view.native, 1)
        self.layer_choice.currentIndexChanged.connect(self._layer_chosen)
        self._update_controls()

    def _layer_chosen(self) -> None:
        layer = self.layer_choice.currentData()
        if not isinstance(layer, int):
            return
        self.view.show_layer(layer)
        index = layer_site(self.session.topology, layer)
        if index >= 0:
            self.session.selection.select(index)
        self._update_controls()

    def _update_controls(self) -> None:
        """Bring the selector and the summary in line with the view (no signals out)."""
        window = self.view.window
        empty = len(window) == 0
        self.view.native.setVisible(not empty)
        self.layer_choice.setEnabled(not empty)
        layers = [int(v) for v in window.layers.tolist()]
        with QSignalBlocker(self.layer_choice):
            if layers != [self.layer_choice.itemData(i) for i in range(self.layer_choice.count())]:
                self.layer_choice.clear()
                for layer in layers:
                    self.layer_choice.addItem(str(layer), layer)
            self.layer_choice.setCurrentIndex(self.layer_choice.findData(self.view.shown_layer))
        self.summary.setText(NO_ROUTING if empty else self.view.summary())

    def refresh(self) -> None:
        """Push pending changes to the canvas (nothing when hidden or when nothing changed)."""
        if self.isVisible():
            self.view.refresh()
            self._update_controls()

    def close_view(self) -> None:
        self.view.close()
