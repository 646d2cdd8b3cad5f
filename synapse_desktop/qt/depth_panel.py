"""The depth profile dock's widget: the depth profile canvas (with the per-token residual norms
under it once RESIDUAL frames arrive), refreshed only while shown."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout, QWidget

from synapse_desktop.models.session import Session
from synapse_desktop.views.depth_profile import DepthProfileView


class DepthPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = DepthProfileView(session)
        self.view.native.setToolTip(
            "Per layer: the residual stream's rms (left) and the rms of attention and MLP "
            "outputs over the rms of the stream entering the layer (right). Below, once the "
            "trainer sends them: each sampled token's residual L2 norm after each layer "
            "(colours on a log scale). Click a layer to select its residual site"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view.native)

    def refresh(self) -> None:
        """Push pending changes to the canvas (nothing when hidden or when nothing changed)."""
        if self.isVisible():
            self.view.refresh()

    def close_view(self) -> None:
        self.view.close()
