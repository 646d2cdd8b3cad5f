"""The main window's recordings: the timeline bar under the 3D view, File > Open recording,
File > Record (a red dot and the file's size in the status bar), File > Export image, the
timeline's keys (Space, Left/Right, Home/End) and the overview heatmaps' Copy as CSV."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from synapse_desktop import __version__
from synapse_desktop.models.timeline import Mode
from synapse_desktop.net.recording_source import RecordingError
from synapse_desktop.qt.compare_panel import ComparePanel, Comparison
from synapse_desktop.qt.export_image import export_targets, save_png
from synapse_desktop.qt.heatmap_csv import install_overview_menu
from synapse_desktop.qt.replay_controller import ReplayController
from synapse_desktop.qt.timeline_bar import TimelineBar
from synapse_native.recording import RecordingWriter

if TYPE_CHECKING:
    from synapse_desktop.qt.main_window import MainWindow

RECORD_REFRESH_MS = 500
FILTER = "Synapse recordings (*.mcap);;All files (*)"


class RecordingActions(QObject):
    """Installs the timeline and the recording actions into ``window``."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.controller = ReplayController(window.session, window.links, self)
        self.controller.message.connect(lambda text: window.status.showMessage(text, 8000))
        self.bar = TimelineBar(self.controller)
        grid = window.takeCentralWidget()
        assert grid is not None
        holder = QWidget()
        box = QVBoxLayout(holder)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addWidget(grid, 1)
        box.addWidget(self.bar)
        window.setCentralWidget(holder)
        self.writer: RecordingWriter | None = None
        self.record_label = QLabel()
        self.record_label.hide()
        window.status.addPermanentWidget(self.record_label)
        self._record_timer = QTimer(self, interval=RECORD_REFRESH_MS)
        self._record_timer.timeout.connect(self._show_recording)
        self.controller.received.connect(self._record)
        self.comparison = Comparison(self.controller.timeline, self)
        self.compare_panel = ComparePanel(self.comparison, window.session)
        self.compare_panel.hovered.connect(window._on_overview_hover)
        self.compare_dock = QDockWidget("Compare", window)
        self.compare_dock.setObjectName("compare")
        self.compare_dock.setWidget(self.compare_panel)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.compare_dock)
        self.compare_dock.hide()
        self._build_actions()
        self.heatmap_menu = install_overview_menu(window.overview)

    # -- menus and keys -------------------------------------------------------------------------

    def _build_actions(self) -> None:
        window = self.window
        self.open_action = self._action("&Open recording...", "Ctrl+O", self.show_open_dialog)
        self.record_action = self._action("&Record", "Ctrl+Shift+R", self.toggle_recording)
        self.record_action.setCheckable(True)
        self.record_action.setToolTip("write the frames received to an MCAP file")
        self.compare_action = self._action(
            "Co&mpare with...", "Ctrl+Shift+O", self.show_compare_dialog
        )
        self.export_menu = QMenu("&Export image", window)
        self.export_menu.aboutToShow.connect(self._fill_export_menu)
        file_menu = _menu(window, "&File")
        before = window.quit_action if window.quit_action in file_menu.actions() else None
        if before is not None:
            file_menu.insertActions(
                before, [self.open_action, self.compare_action, self.record_action]
            )
            file_menu.insertMenu(before, self.export_menu)
            file_menu.insertSeparator(before)
        else:
            file_menu.addActions([self.open_action, self.compare_action, self.record_action])
            file_menu.addMenu(self.export_menu)
        c = self.controller
        self.keys = [
            self._action("Play / pause", "Space", c.toggle_play),
            self._action("Previous step", "Left", lambda: c.step_by(-1)),
            self._action("Next step", "Right", lambda: c.step_by(1)),
            self._action("First step", "Home", c.home),
            self._action("Last step (live)", "End", c.end),
        ]

    def _action(self, text: str, shortcut: str, slot) -> QAction:  # type: ignore[no-untyped-def]
        action = QAction(text, self.window)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.window.addAction(action)
        return action

    def _fill_export_menu(self) -> None:
        self.export_menu.clear()
        for name, widget in export_targets(self.window):
            action = self.export_menu.addAction(f"{name}...")
            action.triggered.connect(lambda _=False, n=name, w=widget: self.export_dialog(n, w))

    # -- open and replay ------------------------------------------------------------------------

    def show_open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open recording", "", FILTER)
        if path:
            self.open(path)

    def open(self, path: str | Path) -> bool:
        """Replay the recording at ``path``; a file that cannot be read is said so."""
        if self.writer is not None:
            self.toggle_recording()  # a replay receives nothing to record
        try:
            self.controller.open_recording(path)
        except (RecordingError, OSError) as exc:
            QMessageBox.warning(self.window, "Open recording", f"Cannot open {path}:\n{exc}")
            return False
        self.window.setWindowTitle(f"Synapse - {Path(path).name}")
        return True

    def show_compare_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Compare with", "", FILTER)
        if path:
            self.compare_with(path)

    def compare_with(self, path: str | Path) -> bool:
        """Follow the recording at ``path`` as a reference, in the Compare dock."""
        try:
            self.comparison.open(path)
        except (RecordingError, OSError) as exc:
            QMessageBox.warning(self.window, "Compare with", f"Cannot open {path}:\n{exc}")
            return False
        self.compare_dock.setWindowTitle(f"Compare: {Path(path).name}")
        if self.compare_dock.isHidden() and not self.compare_dock.isFloating():
            self.window.tabifyDockWidget(self.window.overview_dock, self.compare_dock)
        self.compare_dock.show()
        self.compare_dock.raise_()
        return True

    # -- recording ------------------------------------------------------------------------------

    def toggle_recording(self) -> None:
        if self.writer is not None:
            self.stop_recording()
            return
        name = time.strftime("synapse-%Y%m%d-%H%M%S.mcap")
        path, _ = QFileDialog.getSaveFileName(self.window, "Record to", name, FILTER)
        if path:
            self.start_recording(path)
        self.record_action.setChecked(self.writer is not None)

    def start_recording(self, path: str | Path) -> bool:
        """Write every frame received from now on to ``path``."""
        if self.controller.timeline.mode is Mode.REPLAY:
            self.window.status.showMessage("a replay receives no frames to record", 8000)
            return False
        try:
            writer = RecordingWriter(
                path, metadata={"source": "synapse-desktop", "app_version": __version__}
            )
        except (OSError, ValueError) as exc:
            QMessageBox.warning(self.window, "Record", f"Cannot write {path}:\n{exc}")
            return False
        log = self.controller.log
        meta = log.meta(log.steps()[-1]) if log.steps() else None
        if meta is not None:
            writer.write_frame(meta)  # the site table the coming frames are read against
        self.writer = writer
        self.record_action.setChecked(True)
        self._record_timer.start()
        self._show_recording()
        return True

    def stop_recording(self) -> None:
        writer, self.writer = self.writer, None
        self._record_timer.stop()
        self.record_label.hide()
        self.record_action.setChecked(False)
        if writer is not None:
            writer.close()
            size = writer.bytes_written / 1e6
            self.window.status.showMessage(f"recorded {size:.1f} MB to {writer.path}", 8000)

    def _record(self, frames: list[bytes]) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write_frames(frames)
        except OSError as exc:
            self.stop_recording()
            self.window.status.showMessage(f"recording stopped: {exc}", 0)

    def _show_recording(self) -> None:
        if self.writer is None:
            return
        size = self.writer.bytes_written
        text = f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"
        self.record_label.setText(f"<span style='color:#f85149'>\u25cf</span> REC {text}")
        self.record_label.setToolTip(f"recording to {self.writer.path}")
        self.record_label.show()

    # -- export ---------------------------------------------------------------------------------

    def export_dialog(self, name: str, widget: QWidget) -> None:
        default = f"synapse-{name.lower().replace(' ', '-')}.png"
        path, _ = QFileDialog.getSaveFileName(self.window, f"Export {name}", default, "PNG (*.png)")
        if path and not save_png(widget, path):
            QMessageBox.warning(self.window, "Export image", f"Cannot write {path}")

    def close(self) -> None:
        self.stop_recording()
        self.controller.close_recording()
        self.comparison.close()


def _menu(window: MainWindow, title: str) -> QMenu:
    for action in window.menuBar().actions():
        menu = action.menu()
        if action.text() == title and isinstance(menu, QMenu):
            return menu
    return window.menuBar().addMenu(title)
