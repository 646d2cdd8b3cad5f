"""Where the main window and its docks go.

The first window takes at most ``SCREEN_SHARE`` of the screen's available geometry, centred. The
default arrangement is one clear layout: the 3D view in the middle, the Controls on the right
(the Depth profile, Experts and Alerts tabbed behind them), the Overview with its training metric
at the bottom (the Inspector and Attention tabbed behind it). Dock minimum sizes fit a 1280x800
screen. A saved geometry or dock state is used only when it still fits the current screen.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QRect, QSize, Qt
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFrame,
    QLabel,
    QMainWindow,
    QScrollArea,
    QStatusBar,
    QTabBar,
    QWidget,
)

SCREEN_SHARE = 0.9
PREFERRED = QSize(1500, 950)  # the first window on a large screen
RIGHT_WIDTH = 340  # the Controls column, default and most
RIGHT_MIN_WIDTH = 260
BOTTOM_HEIGHT = 420  # the Overview row, at most: room for a metric plot of 120 px and heatmaps
BOTTOM_SHARE = 0.45  # of the window's height
BOTTOM_MIN_HEIGHT = 220
LEFT = Qt.DockWidgetArea.LeftDockWidgetArea
RIGHT = Qt.DockWidgetArea.RightDockWidgetArea
BOTTOM = Qt.DockWidgetArea.BottomDockWidgetArea


def screen_of(window: QMainWindow) -> QScreen:
    """The screen the window is on (the primary one before it is shown)."""
    handle = window.windowHandle()
    screen = handle.screen() if handle is not None else None
    return screen or QGuiApplication.primaryScreen()


def first_geometry(available: QRect) -> QRect:
    """The preferred size, at most ``SCREEN_SHARE`` of ``available`` each way, centred in it."""
    width = min(PREFERRED.width(), int(available.width() * SCREEN_SHARE))
    height = min(PREFERRED.height(), int(available.height() * SCREEN_SHARE))
    rect = QRect(0, 0, width, height)
    rect.moveCenter(available.center())
    return rect


def fits(frame: QRect, available: QRect) -> bool:
    """Whether a window frame lies entirely inside the available geometry."""
    return available.contains(frame)


def place_first(window: QMainWindow, saved: object) -> bool:
    """Restore the saved geometry if it fits the screen, else size the window from the screen;
    True when the saved one was used."""
    available = screen_of(window).availableGeometry()
    restored = isinstance(saved, (QByteArray, bytes)) and window.restoreGeometry(saved)
    if restored and (window.isMaximized() or fits(window.frameGeometry(), available)):
        return True
    geometry = first_geometry(available)
    window.setGeometry(geometry)
    return False


def settle_on_screen(window: QMainWindow) -> None:
    """Once shown (the frame's decorations known): pull the window inside the available
    geometry, shrinking it when it is larger."""
    available = screen_of(window).availableGeometry()
    frame = window.frameGeometry()
    if window.isMaximized() or window.isFullScreen() or fits(frame, available):
        return
    extra_w = frame.width() - window.width()
    extra_h = frame.height() - window.height()
    width = min(window.width(), available.width() - extra_w)
    height = min(window.height(), available.height() - extra_h)
    window.resize(width, height)
    x = min(max(frame.x(), available.left()), available.right() - width - extra_w + 1)
    y = min(max(frame.y(), available.top()), available.bottom() - height - extra_h + 1)
    window.move(x, y)


def set_minimum_sizes(right: list[QDockWidget], bottom: list[QDockWidget]) -> None:
    """Minimums small enough that the default layout fits a 1280x800 screen."""
    for dock in right:
        dock.setMinimumWidth(RIGHT_MIN_WIDTH)
    for dock in bottom:
        dock.setMinimumHeight(BOTTOM_MIN_HEIGHT)


def arrange(
    window: QMainWindow,
    right: list[QDockWidget],
    bottom: list[QDockWidget],
    left: list[QDockWidget],
) -> None:
    """The default layout: each list's docks tabbed in its area, the first one in front. The
    right column takes the full height, so the Controls are never squeezed by the bottom row."""
    window.setCorner(Qt.Corner.TopRightCorner, RIGHT)
    window.setCorner(Qt.Corner.BottomRightCorner, RIGHT)
    for docks, area in ((right, RIGHT), (bottom, BOTTOM), (left, LEFT)):
        for dock in docks:
            if dock.isFloating() or window.dockWidgetArea(dock) != area:
                dock.setFloating(False)
                window.addDockWidget(area, dock)
            dock.show()
        for dock in docks[1:]:
            window.tabifyDockWidget(docks[0], dock)
        if docks:
            docks[0].raise_()


def size_docks(window: QMainWindow, right: list[QDockWidget], bottom: list[QDockWidget]) -> None:
    """The default dock sizes for the window's present size."""
    width = min(RIGHT_WIDTH, max(RIGHT_MIN_WIDTH, window.width() // 4))
    if right:
        window.resizeDocks([right[0]], [width], Qt.Orientation.Horizontal)
    if bottom:
        height = min(BOTTOM_HEIGHT, max(BOTTOM_MIN_HEIGHT, int(window.height() * BOTTOM_SHARE)))
        window.resizeDocks([bottom[0]], [height], Qt.Orientation.Vertical)


def restore_state(window: QMainWindow, state: object) -> bool:
    """Restore a saved dock layout when the window (as placed) is on screen; False when there is
    none or it does not fit, and the caller arranges the default one."""
    if not isinstance(state, (QByteArray, bytes)):
        return False
    if not fits(window.frameGeometry(), screen_of(window).availableGeometry()):
        return False
    return bool(window.restoreState(state))


def scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: a tall panel in a short dock scrolls instead of
    being cut off."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


def let_shrink(panel: QWidget, chars: int = 8) -> None:
    """Let a panel narrow down to a small dock: its combo boxes size to ``chars`` characters
    (their popups still show whole names) and its labels wrap."""
    for combo in panel.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(chars)
    for label in panel.findChildren(QLabel):
        label.setWordWrap(True)


def let_status_shrink(bar: QStatusBar, least: int = 48) -> None:
    """Status items may narrow down to ``least`` pixels (their text clipped; the tooltips and
    the Help show it whole) instead of widening the window past the screen."""
    for label in bar.findChildren(QLabel):
        label.setMinimumWidth(min(least, label.minimumSizeHint().width()))


def hide_stale_tab_bars(window: QMainWindow) -> None:
    """Hide a tab bar Qt left on screen when a tab group grew (a Qt 6 quirk when the groups are
    made while the window is first laid out): one whose tabs are all in a larger visible bar."""
    bars = [bar for bar in window.findChildren(QTabBar) if bar.parent() is window]
    tabs = {bar: {bar.tabText(i) for i in range(bar.count())} for bar in bars if bar.isVisible()}
    for bar, names in tabs.items():
        if any(other is not bar and names < more for other, more in tabs.items()):
            bar.hide()
