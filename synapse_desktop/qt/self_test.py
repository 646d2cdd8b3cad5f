"""``synapse app --connect HOST:PORT --self-test``: the app's own smoke test.

It waits until the trainer is live and its sparse points are on the 3D grid, renders one frame
of the grid offscreen, prints what it saw (trainer, step, points, drawn pixels, OpenGL) and
ends the app with 0; with 1 and the reason when that does not happen in time. The bundle's test
runs it, and a user can, to check a new machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

from synapse_desktop.models.connection import Phase
from synapse_desktop.qt import gl_info
from synapse_desktop.qt.main_window import MainWindow

POLL_MS = 100
MIN_DRAWN = 0.005  # a frame with fewer pixels off the background than this drew nothing


class SelfTest(QObject):
    """Watches ``window`` and ends the application with the test's exit status."""

    def __init__(
        self,
        window: MainWindow,
        timeout_s: float,
        screenshot: Path | None = None,
        out: TextIO = sys.stdout,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.screenshot = screenshot
        self.out = out
        self.status: int | None = None
        self._start = time.monotonic()
        self._deadline = self._start + timeout_s
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._timer.start()

    def _on_grid(self) -> bool:
        session, grid = self.window.session, self.window.grid
        return (
            session.connection.status.phase is Phase.LIVE
            and len(session.topology) > 0
            and session.sparse.total > 0
            and grid.points.visual.count == session.sparse.total
        )

    def _poll(self) -> None:
        if self._on_grid():
            self._finish(self._check_frame())
        elif time.monotonic() > self._deadline:
            reason = self.window.session.connection.status.describe(time.monotonic())
            self._finish([f"FAILED: not live with points on the grid in time ({reason})"])

    def _check_frame(self) -> list[str]:
        session, grid = self.window.session, self.window.grid
        image = np.asarray(grid.canvas.render(alpha=False))
        background = image[0, 0]  # the camera frames the planes with a margin: a corner is clear
        drawn = float(np.any(image != background, axis=-1).mean())
        gl = gl_info.of_canvas(grid.canvas)
        topology, counters = session.topology, session.counters
        lines = [
            f"live after {time.monotonic() - self._start:.1f} s: {topology.model_name}, "
            f"{len(topology.layers)} layers, {len(topology)} sites, step {counters.step}, "
            f"{counters.frames} frames",
            f"grid: {grid.points.visual.count} points; one frame rendered "
            f"{image.shape[1]}x{image.shape[0]}, {100 * drawn:.1f}% of its pixels drawn",
            f"OpenGL: {gl.describe()}; Qt platform {gl.platform}",
        ]
        if drawn < MIN_DRAWN:
            lines.append("FAILED: the rendered frame is empty")
        if self.screenshot is not None:
            self.window.grab().save(str(self.screenshot))
            lines.append(f"screenshot: {self.screenshot}")
        return lines

    def _finish(self, lines: list[str]) -> None:
        self._timer.stop()
        failed = any(line.startswith("FAILED") for line in lines)
        self.status = 1 if failed else 0
        for line in lines:
            print(f"self-test: {line}", file=self.out)
        print(f"self-test: {'FAILED' if failed else 'passed'}", file=self.out, flush=True)
        self.window.close()
        QApplication.exit(self.status)
