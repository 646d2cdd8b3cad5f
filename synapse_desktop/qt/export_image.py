"""File > Export image: a PNG of the 3D view or of a dock, at its current size.

VisPy canvases are ``QOpenGLWidget``s, which ``QWidget.grab`` renders through their frame
buffer, so a dock holding plots comes out as it is on screen.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDockWidget, QWidget

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMainWindow


def export_targets(window: QMainWindow) -> list[tuple[str, QWidget]]:
    """(name, widget) of what can be exported: the 3D view, then each dock on screen."""
    targets: list[tuple[str, QWidget]] = []
    grid = getattr(window, "grid", None)
    if grid is not None:
        targets.append(("3D view", grid.native))
    for dock in window.findChildren(QDockWidget):
        widget = dock.widget()
        if dock.isVisible() and widget is not None and widget.isVisible():  # not a hidden tab
            title = dock.windowTitle().split(":")[0].split(" (")[0]
            targets.append((title, widget))
    return targets


def grab(widget: QWidget) -> QImage:
    """``widget`` as an image, at its size on screen (device pixels)."""
    return widget.grab().toImage()


def save_png(widget: QWidget, path: str | os.PathLike[str]) -> bool:
    """Write ``widget``'s image to ``path`` as PNG; False if it could not be written."""
    image = grab(widget)
    return not image.isNull() and image.save(os.fspath(path), "PNG")  # type: ignore[call-overload]
