"""Window furniture: settings that persist, the connect dialog, shortcuts, the icon, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.gui


def test_panel_writes_the_model_and_settings_persist(window, qtbot, settings_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings

    from synapse_desktop.qt.main_window import MainWindow

    window.panel.colormap.setCurrentText("viridis")
    window.panel.glow.setChecked(False)
    assert window.session.view.values.colormap == "viridis"
    assert not window.session.view.values.glow
    window.session.view.set(theme="light")  # model -> widget, without looping back
    assert window.panel.theme.currentText() == "light"
    statistic = window.attention_panel.statistic
    statistic.setCurrentIndex(statistic.findData("max_logit"))
    assert window.attention_panel.choice.statistic == "max_logit"
    window.close()
    again = MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    values = again.session.view.values
    assert (values.colormap, values.glow, values.theme) == ("viridis", False, "light")
    assert again.panel.colormap.currentText() == "viridis"
    assert again.attention_panel.choice.statistic == "max_logit"
    assert again.attention_panel.statistic.currentData() == "max_logit"
    again.close()


def test_connect_dialog_remembers_endpoints_and_explains_tunnels(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.net.endpoint import Endpoint
    from synapse_desktop.qt.connect_dialog import ConnectDialog
    from synapse_desktop.qt.settings_store import recent_endpoints

    window.connect_to(Endpoint("127.0.0.1", 1))  # nothing listens: it retries
    window.links.close()
    assert recent_endpoints(window.settings)[0] == "127.0.0.1:1"
    dialog = ConnectDialog(recent_endpoints(window.settings), parent=window)
    qtbot.addWidget(dialog)
    assert dialog.endpoint_box.currentText() == "127.0.0.1:1"
    assert "ssh -N -L 9000:127.0.0.1:9000" in dialog.help_text.text()
    dialog.endpoint_box.setEditText("gpu:70000")
    dialog.accept()
    assert "port" in dialog.error.text() and dialog.endpoint is None
    dialog.endpoint_box.setEditText("localhost:9100")
    dialog.token_edit.setText("t")
    dialog.accept()
    assert dialog.endpoint == Endpoint("localhost", 9100) and dialog.token == "t"


def test_shortcuts_icon_and_hover_text(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QKeySequence

    shortcuts = {a.shortcut().toString() for a in window.actions()}
    assert {"Ctrl+K", "Ctrl+Q", "R", "Ctrl+T"} <= shortcuts
    assert window.panel_dock.toggleViewAction().shortcut() == QKeySequence("Ctrl+1")
    assert not window.windowIcon().isNull()
    window.session.view.set(glow=True)
    window.glow_action.trigger()
    assert not window.session.view.values.glow
    assert window.describe_site(-1) == ""


def test_cli_knows_the_app_command() -> None:
    from synapse_desktop.cli import build_parser

    args = build_parser().parse_args(["app", "--connect", "localhost:9001", "--token", "x"])
    assert (args.command, args.connect, args.token) == ("app", ["localhost:9001"], "x")
    args = build_parser().parse_args(["app", "--connect", "a:9000-9001", "--connect", "b:9000"])
    assert args.connect == ["a:9000-9001", "b:9000"]  # one endpoint per rank


def test_docks_tab_in_pairs_with_one_tab_bar_each_and_the_layout_persists(  # type: ignore[no-untyped-def]
    qtbot, settings_path: Path
) -> None:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QTabBar

    from synapse_desktop.qt.main_window import MainWindow

    def shown(win):  # type: ignore[no-untyped-def]
        qtbot.addWidget(win)
        win.resize(1600, 1000)  # another size than the window gave itself (as a restored one)
        win.show()
        qtbot.waitUntil(win.isVisible)
        qtbot.wait(300)
        return win

    def tab_groups(win) -> list[tuple[str, ...]]:  # type: ignore[no-untyped-def]
        bars = [bar for bar in win.findChildren(QTabBar) if bar.isVisible()]
        return sorted(tuple(bar.tabText(i) for i in range(bar.count())) for bar in bars)

    # One bar per group: no stale bar left on screen (docs/APP.md, the window's dock layout).
    inspector = "Inspector: click a plane in the 3D view"
    want = [
        ("Controls", "Depth profile", "Experts", "Alerts"),
        ("Overview", inspector, "Attention"),
    ]
    first = shown(MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat)))
    assert tab_groups(first) == want
    first.close()
    again = shown(MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat)))
    assert tab_groups(again) == want  # the saved layout, restored
    assert set(again.tabifiedDockWidgets(again.overview_dock)) == {
        again.inspector_dock,
        again.attention_dock,
    }
    again.close()


def test_a_saved_layout_too_big_for_the_screen_is_not_restored_and_reset_brings_it_back(  # type: ignore[no-untyped-def]
    qtbot, settings_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtCore import QSettings, Qt
    from screens import outside, use_screen

    from synapse_desktop.qt.main_window import MainWindow

    def opened():  # type: ignore[no-untyped-def]
        win = MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat))
        qtbot.addWidget(win)
        win.show()
        qtbot.waitUntil(win.isVisible)
        qtbot.wait(300)
        return win

    use_screen(monkeypatch, 1920, 1080)
    big = opened()
    assert (big.width(), big.height()) == (1500, 950)  # the preferred size fits: taken
    big.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, big.alerts_dock)  # moved by the user
    big.close()
    small_screen = use_screen(monkeypatch, 1280, 800)
    small = opened()
    assert small.width() <= 1152 and small.height() <= 720 and outside(small, small_screen) == []
    assert small.dockWidgetArea(small.alerts_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    small.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, small.panel_dock)
    small.reset_layout_action.trigger()
    assert small.dockWidgetArea(small.panel_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    small.close()
