"""The main window: the 3D layer grid, control panel and inspector docks, menus, status."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QCursor, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QMainWindow,
    QMessageBox,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from synapse_desktop import __version__
from synapse_desktop.models.session import Session
from synapse_desktop.net.client import Client
from synapse_desktop.net.endpoint import Endpoint
from synapse_desktop.qt.connect_dialog import ConnectDialog
from synapse_desktop.qt.control_panel import ControlPanel
from synapse_desktop.qt.settings_store import (
    load_view,
    open_settings,
    recent_endpoints,
    remember_endpoint,
    save_view,
)
from synapse_desktop.qt.status_bar import StatusBar
from synapse_desktop.qt.theme import apply_theme
from synapse_desktop.resources import ICON
from synapse_desktop.views.inspector import InspectorView
from synapse_desktop.views.layer_grid import LayerGrid

INSPECTOR_REFRESH_MS = 250


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, session: Session | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else open_settings()
        self.session = session if session is not None else Session()
        load_view(self.settings, self.session.view)
        self.setWindowTitle("Synapse")
        self.setWindowIcon(QIcon(str(ICON)))
        self.client = Client(self.session, self)
        self.grid = LayerGrid(self.session)
        self.setCentralWidget(self.grid.native)
        self.panel = ControlPanel(self.session)
        self.panel_dock = self._dock("Controls", self.panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.inspector = InspectorView(self.session)
        holder = QWidget()
        box = QVBoxLayout(holder)
        box.addWidget(self.inspector.native)
        box.setContentsMargins(0, 0, 0, 0)
        self.inspector_dock = self._dock(
            "Inspector", holder, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.status = StatusBar(self.session)
        self.setStatusBar(self.status)
        self._token: str | None = None
        self._build_menus()
        self._inspector_timer = QTimer(self, interval=INSPECTOR_REFRESH_MS)
        self._inspector_timer.timeout.connect(self.inspector.refresh)
        self._inspector_timer.start()
        self.session.view.changed.connect(self._on_view)
        self.session.selection.hovered_changed.connect(self._on_hover)
        self.session.selection.selected_changed.connect(self._on_selected)
        self.session.peer_error.connect(lambda text: self.status.showMessage(text, 8000))
        self._apply_theme()
        self._on_selected(-1)
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 950)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)

    # -- building -------------------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, shortcut: str | QKeySequence.StandardKey | None, slot) -> QAction:  # type: ignore[no-untyped-def]
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work whatever has focus
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self.connect_action = self._action("&Connect...", "Ctrl+K", self.show_connect_dialog)
        self.disconnect_action = self._action("&Disconnect", "Ctrl+Shift+K", self.client.close)
        self.quit_action = self._action("&Quit", "Ctrl+Q", self.close)
        file.addActions([self.connect_action, self.disconnect_action])
        file.addSeparator()
        file.addAction(self.quit_action)
        view = bar.addMenu("&View")
        self.reset_camera_action = self._action("&Reset camera", "R", self.grid.reset_camera)
        self.theme_action = self._action("Toggle &theme", "Ctrl+T", self._toggle_theme)
        self.glow_action = self._action("Toggle &glow", "G", self._toggle("glow"))
        self.points_action = self._action("Toggle neuron &points", "P", self._toggle("points"))
        view.addActions(
            [self.reset_camera_action, self.theme_action, self.glow_action, self.points_action]
        )
        view.addSeparator()
        for dock, key in ((self.panel_dock, "Ctrl+1"), (self.inspector_dock, "Ctrl+2")):
            toggle = dock.toggleViewAction()
            toggle.setShortcut(QKeySequence(key))
            view.addAction(toggle)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&About Synapse", None, self._about))

    # -- actions --------------------------------------------------------------------------------

    def connect_to(self, endpoint: Endpoint, token: str | None = None) -> None:
        """Connect (and keep reconnecting) to ``endpoint``; remembered as a recent endpoint."""
        self._token = token
        remember_endpoint(self.settings, str(endpoint))
        self.client.open(endpoint, token)

    def show_connect_dialog(self) -> None:
        dialog = ConnectDialog(recent_endpoints(self.settings), self._token or "", self)
        if dialog.exec() and dialog.endpoint is not None:
            self.connect_to(dialog.endpoint, dialog.token)

    def _toggle(self, name: str):  # type: ignore[no-untyped-def]
        def toggle() -> None:
            self.session.view.set(**{name: not getattr(self.session.view.values, name)})

        return toggle

    def _toggle_theme(self) -> None:
        theme = "light" if self.session.view.values.theme == "dark" else "dark"
        self.session.view.set(theme=theme)

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "About Synapse",
            f"<b>Synapse {__version__}</b><br>Live activation statistics from a PyTorch "
            "training loop.<br>Drag to orbit, shift-drag to pan, wheel to zoom, R to reset.",
        )

    # -- model changes --------------------------------------------------------------------------

    def _on_view(self, name: str, value: object) -> None:
        save_view(self.settings, self.session.view)
        if name == "theme":
            self._apply_theme()

    def _apply_theme(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, self.session.view.values.theme)

    def _on_hover(self, index: int) -> None:
        text = self.describe_site(index)
        if text:
            self.status.showMessage(text.replace("\n", "   "))
            QToolTip.showText(QCursor.pos(), text, self.grid.native)
        else:
            self.status.clearMessage()
            QToolTip.hideText()

    def _on_selected(self, index: int) -> None:
        sites = self.session.topology.sites
        if 0 <= index < len(sites):
            site = sites[index]
            title = f"Inspector: layer {site.layer} {site.kind_name} ({site.name})"
        else:
            title = "Inspector: click a plane in the 3D view"
        self.inspector_dock.setWindowTitle(title)

    def describe_site(self, index: int) -> str:
        """Name and latest numbers of a site (empty for -1)."""
        sites = self.session.topology.sites
        if not 0 <= index < len(sites):
            return ""
        site = sites[index]
        lines = [f"{site.name} (layer {site.layer}, {site.kind_name}, {site.neurons} neurons)"]
        stats = self.session.stats
        if stats.steps[index] >= 0:
            r = stats.records[index]
            lines.append(
                f"step {stats.steps[index]}: mean {r['mean']:.3g}  rms {r['rms']:.3g}  "
                f"max {r['max']:.3g}  above {100 * r['frac_above']:.2f}%"
            )
        points = self.session.sparse.points[index]
        neuron = self.session.selection.hovered_neuron
        if points.n_above:
            lines.append(f"{points.n_above} neurons above {points.threshold:.3g}")
        if neuron >= 0:
            lines.append(f"neuron {neuron}")
        return "\n".join(lines)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.client.close()
        self._inspector_timer.stop()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        save_view(self.settings, self.session.view)
        self.settings.sync()
        super().closeEvent(event)
        if event.isAccepted():
            self.inspector.close()
            self.grid.close()
