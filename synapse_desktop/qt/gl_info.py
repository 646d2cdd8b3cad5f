"""Read the OpenGL version, vendor and renderer from a Qt context.

``python -m synapse_desktop.qt.gl_info`` makes an offscreen context the way the app's windows
get theirs and prints what it got as JSON (``synapse info`` runs it in a child process).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext

from synapse_desktop.environment import GlInfo

GL_VENDOR, GL_RENDERER, GL_VERSION = 0x1F00, 0x1F01, 0x1F02


def read(context: QOpenGLContext) -> GlInfo:
    """What ``context`` (current on this thread) reports."""
    functions = context.functions()
    return GlInfo(
        platform=QGuiApplication.platformName(),
        version=str(functions.glGetString(GL_VERSION) or ""),
        vendor=str(functions.glGetString(GL_VENDOR) or ""),
        renderer=str(functions.glGetString(GL_RENDERER) or ""),
    )


def of_canvas(canvas: Any) -> GlInfo:
    """The context a VisPy canvas draws with (made current for the read)."""
    canvas.set_current()
    context = QOpenGLContext.currentContext()
    if context is None:
        raise RuntimeError("the canvas has no OpenGL context yet")
    return read(context)


def probe() -> GlInfo:
    """A new offscreen context's report; needs a QGuiApplication (made here when there is none)."""
    if QGuiApplication.instance() is None:
        QGuiApplication(sys.argv[:1])
    surface = QOffscreenSurface()
    surface.create()
    context = QOpenGLContext()
    if not context.create() or not context.makeCurrent(surface):
        raise RuntimeError(f"no OpenGL context on the {QGuiApplication.platformName()!r} platform")
    try:
        return read(context)
    finally:
        context.doneCurrent()


def main() -> int:
    try:
        info = probe()
    except RuntimeError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(dataclasses.asdict(info)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
