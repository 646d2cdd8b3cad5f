"""``LivePanel``: what the main window asks of every panel it redraws on its refresh timer."""

from __future__ import annotations

from typing import Protocol


class LivePanel(Protocol):
    """A dock's contents that follow the session at a few hertz."""

    def refresh(self) -> None:
        """Push pending changes to the screen; cheap when hidden or when nothing changed."""

    def close_view(self) -> None:
        """Release what the panel draws with (its GL canvas) as the window closes."""
