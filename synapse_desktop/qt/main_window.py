"""The main window: the 3D layer grid, control panel, inspector and overview docks, menus,
status."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QCursor,
    QIcon,
    QKeySequence,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QMainWindow,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from synapse_desktop.models.anomalies import ROUTING_ALERTS, Alert
from synapse_desktop.models.attention import STATISTICS as HEAD_STATISTICS
from synapse_desktop.models.ranks import MERGED
from synapse_desktop.models.session import Session
from synapse_desktop.net.endpoint import Endpoint, format_endpoints
from synapse_desktop.net.links import Links
from synapse_desktop.qt import layout_policy
from synapse_desktop.qt.about_dialog import AboutDialog, SoftwareRenderWarning
from synapse_desktop.qt.alerts_panel import AlertsPanel
from synapse_desktop.qt.attention_panel import AttentionPanel
from synapse_desktop.qt.capture_actions import CaptureActions
from synapse_desktop.qt.connect_dialog import ConnectDialog
from synapse_desktop.qt.control_panel import ControlPanel
from synapse_desktop.qt.depth_panel import DepthPanel
from synapse_desktop.qt.layout_policy import scrolled
from synapse_desktop.qt.live_panel import LivePanel
from synapse_desktop.qt.moe_panel import MoePanel
from synapse_desktop.qt.notifier import AlertNotifier
from synapse_desktop.qt.overview_panel import OverviewPanel
from synapse_desktop.qt.quick_tour import QuickTour
from synapse_desktop.qt.recording_actions import RecordingActions
from synapse_desktop.qt.settings_store import (
    load_view,
    open_settings,
    recent_endpoints,
    remember_endpoint,
    save_view,
)
from synapse_desktop.qt.status_bar import StatusBar
from synapse_desktop.qt.theme import apply_theme
from synapse_desktop.qt.trainer_actions import TrainerActionsBox
from synapse_desktop.resources import ICON
from synapse_desktop.scene.scales import SCALES
from synapse_desktop.views.inspector import InspectorView
from synapse_desktop.views.layer_grid import FRAME_MS, LayerGrid
from synapse_native.protocol import SummaryFlag

INSPECTOR_REFRESH_MS = 250


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, session: Session | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else open_settings()
        self.session = session if session is not None else Session()
        load_view(self.settings, self.session.view)
        self.setWindowTitle("Synapse")
        self.setWindowIcon(QIcon(str(ICON)))
        self.links = Links(self.session, self)  # one connection per endpoint (rank)
        self.grid = LayerGrid(self.session, spread_ms=FRAME_MS)  # its work a frame after a step's
        self.setCentralWidget(self.grid.native)
        self.panel = ControlPanel(self.session)
        layout_policy.let_shrink(self.panel)
        self.panel_dock = self._dock(
            "Controls", scrolled(self.panel), Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.inspector = InspectorView(self.session)
        holder = QWidget()
        box = QVBoxLayout(holder)
        box.addWidget(self.inspector.native)
        box.setContentsMargins(0, 0, 0, 0)
        self.inspector_dock = self._dock(
            "Inspector", holder, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.overview = OverviewPanel(self.session)
        layout_policy.let_shrink(self.overview, chars=6)
        self.overview_dock = self._dock(
            "Overview", self.overview, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.splitDockWidget(self.inspector_dock, self.overview_dock, Qt.Orientation.Horizontal)
        self.attention_panel = AttentionPanel(self.session)
        statistic = self.settings.value("attention/statistic")
        if statistic in HEAD_STATISTICS:
            self.attention_panel.choice.show(str(statistic))
        self.attention_dock = self._dock(
            "Attention", self.attention_panel, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.depth_panel = DepthPanel(self.session)
        self.depth_dock = self._dock(
            "Depth profile", self.depth_panel, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.moe_panel = MoePanel(self.session)
        self.moe_dock = self._dock("Experts", self.moe_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.alerts = AlertsPanel(self.session)
        self.alerts_dock = self._dock("Alerts", self.alerts, Qt.DockWidgetArea.RightDockWidgetArea)
        self.alerts.count_changed.connect(self._on_alert_count)
        self.alerts.activated.connect(self._reveal_site)
        self._on_alert_count(self.alerts.count)
        self.notifier = AlertNotifier(self.session.anomalies, self, self.windowIcon())
        self.attention_dock.toggleViewAction().triggered.connect(self._on_attention_toggled)
        self.status = StatusBar(self.session)
        self.setStatusBar(self.status)
        self.render_warning = SoftwareRenderWarning(self.grid.canvas, self.status)
        self._token: str | None = None
        self._build_menus()
        self.recordings = RecordingActions(self)  # timeline bar, File > Open recording/Record
        self.captures = CaptureActions(self)  # Capture buttons, File > Open capture...
        self.trainer_actions = TrainerActionsBox(self.session)  # probe.on_request buttons
        panel_layout = self.panel.layout()
        assert isinstance(panel_layout, QVBoxLayout)
        panel_layout.insertWidget(1, self.trainer_actions)
        self._live_panels: tuple[LivePanel, ...] = (
            self.inspector,
            self.overview,
            self.depth_panel,
            self.moe_panel,
            self.attention_panel,
        )
        self._inspector_timer = QTimer(self, interval=INSPECTOR_REFRESH_MS)
        self._inspector_timer.timeout.connect(self._refresh_panels)
        self._inspector_timer.start()
        self.overview.view.hovered.connect(self._on_overview_hover)
        self.depth_panel.view.hovered.connect(self._on_overview_hover)
        self.attention_panel.hovered.connect(self._on_overview_hover)
        self.moe_panel.view.hovered.connect(self._on_overview_hover)
        self.session.view.changed.connect(self._on_view)
        self.session.selection.hovered_changed.connect(self._on_hover)
        self.session.selection.selected_changed.connect(self._on_selected)
        self.session.peer_error.connect(lambda text: self.status.showMessage(text, 8000))
        self._apply_theme()
        self._on_selected(-1)
        layout_policy.set_minimum_sizes(*self._dock_groups()[:2])
        self._placed = layout_policy.place_first(self, self.settings.value("window/geometry"))
        self._saved_state: object = self.settings.value("window/state")  # applied on first show

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
        self.disconnect_action = self._action("&Disconnect", "Ctrl+Shift+K", self.links.close)
        self.quit_action = self._action("&Quit", "Ctrl+Q", self.close)
        file.addActions([self.connect_action, self.disconnect_action])
        file.addSeparator()
        file.addAction(self.quit_action)
        view = bar.addMenu("&View")
        self.reset_camera_action = self._action("&Reset camera", "R", self.grid.reset_camera)
        self.theme_action = self._action("Toggle &theme", "Ctrl+T", self._toggle_theme)
        self.glow_action = self._action("Toggle &glow", "G", self._toggle("glow"))
        self.points_action = self._action("Toggle neuron &points", "P", self._toggle("points"))
        self.reset_layout_action = self._action("Reset &layout", None, self.reset_layout)
        self.show_all_action = self._action("Show &all blocks", "Esc", self.grid.show_all)
        self.show_all_action.setToolTip("After a double-click isolated a block in the 3D view")
        view.addActions(
            [self.reset_camera_action, self.theme_action, self.glow_action, self.points_action]
        )
        view.addActions([self.show_all_action, self.reset_layout_action])
        view.addSeparator()
        for dock, key in (
            (self.panel_dock, "Ctrl+1"),
            (self.inspector_dock, "Ctrl+2"),
            (self.overview_dock, "Ctrl+3"),
            (self.depth_dock, "Ctrl+5"),
            (self.alerts_dock, "Ctrl+4"),
            (self.moe_dock, "Ctrl+7"),
            (self.attention_dock, "Ctrl+6"),
        ):
            toggle = dock.toggleViewAction()
            toggle.setShortcut(QKeySequence(key))
            view.addAction(toggle)
        help_menu = bar.addMenu("&Help")
        self.tour_action = self._action("Quick &tour", "F1", self.show_tour)
        help_menu.addAction(self.tour_action)
        help_menu.addAction(self._action("&About Synapse", None, self._about))

    # -- actions --------------------------------------------------------------------------------

    def connect_to(
        self, endpoints: Endpoint | Sequence[Endpoint], token: str | None = None
    ) -> None:
        """Connect (and keep reconnecting) to ``endpoints``, one per rank; remembered as a
        recent entry. The ranks of earlier endpoints are forgotten."""
        if isinstance(endpoints, Endpoint):
            endpoints = [endpoints]
        self._token = token
        remember_endpoint(self.settings, format_endpoints(endpoints))
        self.session.ranks.reset()
        self.session.flush()  # the rank selector forgets the old ranks now
        self.links.open(endpoints, token)

    def show_connect_dialog(self) -> None:
        dialog = ConnectDialog(recent_endpoints(self.settings), self._token or "", self)
        if dialog.exec() and dialog.endpoints:
            self.connect_to(dialog.endpoints, dialog.token)

    def _toggle(self, name: str):  # type: ignore[no-untyped-def]
        def toggle() -> None:
            self.session.view.set(**{name: not getattr(self.session.view.values, name)})

        return toggle

    def show_tour(self) -> None:
        """Help > Quick tour."""
        QuickTour(self).exec()

    def _toggle_theme(self) -> None:
        theme = "light" if self.session.view.values.theme == "dark" else "dark"
        self.session.view.set(theme=theme)

    def _about(self) -> None:
        AboutDialog(self.grid.canvas, self).exec()

    # -- model changes --------------------------------------------------------------------------

    def _on_view(self, name: str, value: object) -> None:
        save_view(self.settings, self.session.view)
        if name == "theme":
            self._apply_theme()

    def _apply_theme(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, self.session.view.values.theme)

    def _on_overview_hover(self, text: str) -> None:
        if text:
            self.status.showMessage(text)
        else:
            self.status.clearMessage()

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

    def _on_attention_toggled(self, shown: bool) -> None:
        if shown:
            self.attention_dock.raise_()  # not left behind the overview's tab

    def _on_alert_count(self, n: int) -> None:
        self.alerts_dock.setWindowTitle(f"Alerts ({n})" if n else "Alerts")

    def _reveal_site(self, index: int, alert: Alert) -> None:
        """An alert was clicked: bring the Experts dock forward for a routing alert; if the
        site's plane centre is off the 3D view, go back home (the home view frames every plane;
        the selection outline then shows it)."""
        if alert.kind in ROUTING_ALERTS:
            self.moe_dock.show()
            self.moe_dock.raise_()
        layout = self.grid.geometry.layout
        if not 0 <= index < len(layout):
            return
        centre = layout.quads()[index].mean(axis=0)
        x, y = self.grid.project(centre)
        width, height = self.grid.canvas.size
        if not (0 <= x < width and 0 <= y < height):
            self.grid.reset_camera()

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
                + ("  (sampled tokens)" if r["flags"] & SummaryFlag.SAMPLED else "")
            )
        points = self.session.sparse.points[index]
        neuron = self.session.selection.hovered_neuron
        if points.n_above:
            lines.append(f"{points.n_above} neurons above {points.threshold:.3g}")
        if neuron >= 0:
            lines.append(f"neuron {neuron}")
        skew = self.session.skew.describe(index)
        return "\n".join(lines + ([skew] if skew else []) + self._rank_lines(index))

    def _rank_lines(self, index: int) -> list[str]:
        """With several ranks: each rank's value of the colour statistic, and the spread."""
        ranks = self.session.ranks
        if len(ranks) < 2:
            return []
        name = self.session.view.values.statistic
        values = ranks.by_rank(name)[:, index].tolist()
        cells = "  ".join(
            f"{rank}: {'-' if math.isnan(v) else f'{v:.3g}'}"
            for rank, v in zip(ranks.ranks, values, strict=True)
        )
        shown = "mean shown" if ranks.choice == MERGED else f"rank {ranks.choice} shown"
        lines = [f"{SCALES[name].label} by rank ({shown}): {cells}"]
        spread = ranks.spread(name)
        if spread.farthest[index] >= 0:
            lines.append(
                f"spread {spread.spread[index]:.3g}, farthest from the mean: "
                f"rank {spread.farthest[index]}"
            )
        return lines

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._saved_state is not False:
            self._arrange_docks()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._saved_state is False:  # arranged: Qt may have grown it past the screen
            QTimer.singleShot(0, lambda: layout_policy.settle_on_screen(self))

    def _arrange_docks(self) -> None:
        """The saved dock layout when it fits the screen, else the default one; once, on the
        first show: tab groups made before the window is laid out leave a stale tab bar on
        screen (a Qt 6 quirk)."""
        state, self._saved_state = self._saved_state, False
        layout_policy.let_status_shrink(self.statusBar())
        if not (self._placed and layout_policy.restore_state(self, state)):
            layout_policy.arrange(self, *self._dock_groups())
            layout_policy.hide_stale_tab_bars(self)
            QTimer.singleShot(0, self._size_default)  # once Qt has laid out the new docks
        layout_policy.settle_on_screen(self)

    def _size_default(self) -> None:
        """The first window's size from the screen (the docks as first added may have widened
        it), then the default dock sizes."""
        if not self._placed:
            layout_policy.place_first(self, None)
        right, bottom, _ = self._dock_groups()
        layout_policy.size_docks(self, right, bottom)
        layout_policy.hide_stale_tab_bars(self)

    def _dock_groups(self) -> tuple[list[QDockWidget], list[QDockWidget], list[QDockWidget]]:
        """The docks of the default layout: right column, bottom row, left column; the first of
        each in front."""
        right = [self.panel_dock, self.depth_dock, self.moe_dock, self.alerts_dock]
        bottom = [self.overview_dock, self.inspector_dock, self.attention_dock]
        return right, bottom, []

    def reset_layout(self) -> None:
        """View > Reset layout: the default arrangement of the docks."""
        right, bottom, left = self._dock_groups()
        layout_policy.arrange(self, right, bottom, left)
        layout_policy.size_docks(self, right, bottom)
        layout_policy.hide_stale_tab_bars(self)

    def _refresh_panels(self) -> None:
        for panel in self._live_panels:
            panel.refresh()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.links.close()
        self.recordings.close()
        self._inspector_timer.stop()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("attention/statistic", self.attention_panel.choice.statistic)
        save_view(self.settings, self.session.view)
        self.settings.sync()
        super().closeEvent(event)
        if event.isAccepted():
            for panel in self._live_panels:
                panel.close_view()
            self.grid.close()
