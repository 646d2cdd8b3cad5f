"""Telling a click from a drag on a VisPy canvas (drags orbit, pan or zoom the camera)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

CLICK_SLOP_PX = 4  # a press and release of the left button at most this far apart is a click


class ClickFilter:
    """Calls ``on_click((x, y))`` for each left-button click on ``canvas``, never for a drag."""

    def __init__(self, canvas: Any, on_click: Callable[[tuple[float, float]], None]) -> None:
        self._on_click = on_click
        self._press: tuple[float, float] | None = None
        canvas.events.mouse_press.connect(self._on_press)
        canvas.events.mouse_release.connect(self._on_release)

    def _on_press(self, event: Any) -> None:
        self._press = (float(event.pos[0]), float(event.pos[1]))

    def _on_release(self, event: Any) -> None:
        press, self._press = self._press, None
        if press is None or event.button != 1:
            return
        where = (float(event.pos[0]), float(event.pos[1]))
        if np.hypot(where[0] - press[0], where[1] - press[1]) <= CLICK_SLOP_PX:
            self._on_click(where)
