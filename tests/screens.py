"""Screenshots of the main window on a given screen size, and the checks that go with them.

The window is told the screen's available geometry (``layout_policy.screen_of`` is replaced),
so one Xvfb display serves every size; what is rendered is the real window at the size the
policy chose. PNGs go to ``$SYNAPSE_SCREENS`` (default: a folder in the temp dir).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

MIN_METRIC_PX = 120


class FakeScreen:
    def __init__(self, width: int, height: int) -> None:
        from PySide6.QtCore import QRect

        self.rect = QRect(0, 0, width, height)

    def availableGeometry(self) -> Any:
        return self.rect


def use_screen(monkeypatch: pytest.MonkeyPatch, width: int, height: int) -> FakeScreen:
    """Make windows made from now on see a ``width`` x ``height`` screen."""
    from synapse_desktop.qt import layout_policy

    screen = FakeScreen(width, height)
    monkeypatch.setattr(layout_policy, "screen_of", lambda window: screen)
    return screen


def outside(window: Any, screen: FakeScreen) -> list[str]:
    """The visible parts of ``window`` (itself, its docks, status bar, central widget) that are
    not entirely on ``screen``."""
    from PySide6.QtCore import QPoint, QRect
    from PySide6.QtWidgets import QDockWidget

    parts = [("window", window.frameGeometry())]
    widgets = [*window.findChildren(QDockWidget), window.statusBar(), window.centralWidget()]
    for widget in widgets:  # a dock behind another's tab is "visible" but has no region
        if widget.isVisible() and not widget.visibleRegion().isEmpty():
            rect = QRect(widget.mapToGlobal(QPoint(0, 0)), widget.size())
            parts.append((widget.objectName() or type(widget).__name__, rect))
    return [f"{name} {rect}" for name, rect in parts if not screen.rect.contains(rect)]


def metric_height(window: Any) -> float:
    """Pixel height of the overview's training metric plot."""
    return float(window.overview.view.metric.view.rect.height)


def save(window: Any, name: str) -> Path:
    """Grab ``window`` into ``name``.png; returns the path."""
    folder = Path(
        os.environ.get("SYNAPSE_SCREENS") or Path(tempfile.gettempdir()) / "synapse-screens"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    assert window.grab().save(str(path)), f"could not write {path}"
    return path
