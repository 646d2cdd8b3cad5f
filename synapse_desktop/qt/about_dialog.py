"""Help > About: versions and what this machine gives the app (the ``synapse info`` of the app
side), and the one-time warning when the 3D view is drawn by a software rasteriser."""

from __future__ import annotations

import html
import platform
from typing import Any

import numpy as np
import PySide6
import vispy
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QStatusBar, QVBoxLayout, QWidget

from synapse_desktop import __version__, environment
from synapse_desktop.environment import GlInfo
from synapse_desktop.qt import gl_info

AMBER = "#d29922"


def app_rows(canvas: Any) -> list[tuple[str, str]]:
    """(name, value) rows for the app: versions, the C core, and the canvas's OpenGL context."""
    try:
        gl: GlInfo | str = gl_info.of_canvas(canvas)
    except RuntimeError as exc:
        gl = str(exc)
    return [
        ("Synapse", __version__),
        ("Python", platform.python_version()),
        ("PySide6 (Qt)", PySide6.__version__),
        ("VisPy", vispy.__version__),
        ("numpy", np.__version__),
        ("C core", environment.native_core()),
        ("Qt platform", gl.platform if isinstance(gl, GlInfo) else "-"),
        ("OpenGL", gl.describe() if isinstance(gl, GlInfo) else f"none: {gl}"),
    ]


class AboutDialog(QDialog):
    def __init__(self, canvas: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Synapse")
        self.rows = app_rows(canvas)
        cells = "".join(
            f"<tr><td><b>{html.escape(name)}</b></td><td>{html.escape(value)}</td></tr>"
            for name, value in self.rows
        )
        self.label = QLabel(
            f"<h3>Synapse {__version__}</h3>"
            "<p>Live activation statistics from a PyTorch training loop.<br>"
            "Drag to orbit, shift-drag to pan, wheel to zoom, R to reset.</p>"
            f"<table cellspacing='6'>{cells}</table>"
            "<p><code>synapse info</code> prints this, and the probe side's torch, CUDA and "
            "Triton.</p>"
        )
        self.label.setTextInteractionFlags(self.label.textInteractionFlags().TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(self.label)
        box.addWidget(buttons)


class SoftwareRenderWarning:
    """After the canvas's first frame, warns once when its OpenGL renderer is a software one: an
    amber note in the status bar (a timed message would hide the connection state)."""

    def __init__(self, canvas: Any, status: QStatusBar) -> None:
        self.canvas = canvas
        self.status = status
        self.info: GlInfo | None = None  # the canvas's context, once it has drawn
        self.label: QLabel | None = None  # the note, when shown
        canvas.events.draw.connect(self._on_draw)

    def _on_draw(self, event: object) -> None:
        self.canvas.events.draw.disconnect(self._on_draw)
        try:
            self.info = gl_info.of_canvas(self.canvas)
        except RuntimeError:
            return
        if self.info.software:
            self.label = QLabel(f"<span style='color:{AMBER}'>\u26a0 software OpenGL</span>")
            self.label.setToolTip(
                f"{environment.SOFTWARE_HINT}.\nRenderer: {self.info.renderer}.\n"
                "Help > About and `synapse info` say more; docs/INSTALL.md how to fix it."
            )
            self.status.addPermanentWidget(self.label)
