"""The main window's captures: a Capture button in the alerts panel (the selected alert's
site) and under the inspector (the selected site), enabled when the trainer announces
``CAPTURE``; File > Open capture...; the answer in the status bar and the alerts panel, and a
capture written on this machine opened in a ``CaptureView``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QMenu, QMessageBox, QPushButton

from synapse_desktop.models.capture_file import CaptureFileError, load
from synapse_desktop.models.captures import describe, local_path
from synapse_desktop.qt.capture_view import CaptureView
from synapse_native.protocol import Capability, CaptureDone, CaptureStatus

if TYPE_CHECKING:
    from synapse_desktop.qt.main_window import MainWindow

FILTER = "Synapse captures (*.safetensors);;All files (*)"
STATUS_MS = 20000


class CaptureActions(QObject):
    """Installs the capture buttons and File > Open capture... into ``window``."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session = session = window.session
        self.views: list[CaptureView] = []
        self.open_action = QAction("Open &capture...", window)
        self.open_action.triggered.connect(self.show_open_dialog)
        window.addAction(self.open_action)
        file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
        assert isinstance(file_menu, QMenu)
        file_menu.insertAction(window.quit_action, self.open_action)
        self.inspector_button = QPushButton("Capture this site")
        self.inspector_button.clicked.connect(self.capture_selected)
        holder = window.inspector_dock.widget()
        layout = holder.layout() if holder is not None else None
        if layout is not None:
            row = QHBoxLayout()
            row.setContentsMargins(4, 0, 4, 2)
            row.addStretch(1)
            row.addWidget(self.inspector_button)
            layout.addItem(row)
        self.alert_button = window.alerts.capture_button
        self.alert_button.clicked.connect(self.capture_alert)
        window.alerts.list.currentItemChanged.connect(lambda *_: self.update_buttons())
        session.captures.changed.connect(self.update_buttons)
        session.captures.done.connect(self._on_done)
        session.connection.changed.connect(lambda *_: self.update_buttons())
        session.selection.selected_changed.connect(lambda *_: self.update_buttons())
        self.update_buttons()

    @property
    def available(self) -> bool:
        """The trainer captures, and no capture of ours is in flight."""
        capabilities = self.session.connection.status.capabilities
        return bool(capabilities & Capability.CAPTURE) and not self.session.captures.in_flight

    def update_buttons(self) -> None:
        ready = self.available
        why = "" if ready else self._why_not()
        selected = self.session.selection.selected
        self.inspector_button.setEnabled(ready and 0 <= selected < len(self.session.topology))
        self.inspector_button.setToolTip(
            why or "Write the selected site's full tensors at the trainer's next step"
        )
        alert = self.window.alerts.current_alert()
        self.alert_button.setEnabled(ready and alert is not None)
        self.alert_button.setToolTip(
            why or "Write the selected alert's site's full tensors at the trainer's next step"
        )

    def _why_not(self) -> str:
        if self.session.captures.in_flight:
            return "a capture is in flight"
        return "the trainer does not capture (attach(model, capture=True) turns it on)"

    # -- asking ---------------------------------------------------------------------------------

    def capture_selected(self) -> None:
        index = self.session.selection.selected
        if 0 <= index < len(self.session.topology):
            self._capture(self.session.topology.sites[index].site_id)

    def capture_alert(self) -> None:
        alert = self.window.alerts.current_alert()
        if alert is not None:
            self._capture(alert.site_id)

    def _capture(self, site_id: int) -> None:
        topology = self.session.topology
        index = topology.index_of(site_id)
        name = topology.sites[index].name if index >= 0 else f"site {site_id}"
        self.session.captures.request([site_id], [name])
        self._say(self.session.captures.status)

    # -- answers and files ----------------------------------------------------------------------

    def _on_done(self, done: CaptureDone) -> None:
        self._say(describe(done))
        if done.status != CaptureStatus.WRITTEN:
            return
        path = local_path(done)
        if path is None:
            self._say(describe(done) + " (on the trainer's machine: copy it here to open it)")
            return
        self.open(path)

    def _say(self, text: str) -> None:
        self.window.status.showMessage(text, STATUS_MS)
        label = self.window.alerts.capture_status
        label.setText(text)
        label.setToolTip(text)
        label.show()

    def show_open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open capture", "", FILTER)
        if path:
            self.open(path)

    def open(self, path: str | Path) -> CaptureView | None:
        """Show the capture at ``path``; a file that is not one is said so."""
        try:
            capture = load(path)
        except CaptureFileError as exc:
            QMessageBox.warning(self.window, "Open capture", str(exc))
            return None
        view = CaptureView(capture, self.window)
        view.finished.connect(lambda _=0, v=view: self._forget(v))
        self.views.append(view)
        view.show()
        return view

    def _forget(self, view: CaptureView) -> None:
        if view in self.views:
            self.views.remove(view)
        view.deleteLater()
