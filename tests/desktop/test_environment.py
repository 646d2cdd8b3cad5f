"""What ``synapse info`` and Help > About tell the user about their machine: OpenGL and
whether it is software, the Qt platform, the C core's SIMD path, torch on the probe side; and
the app's one-time warning when it renders in software. (The tests run under Xvfb with Mesa's
llvmpipe: software rendering.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from synapse_desktop.environment import GlInfo, is_software

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(
    ("renderer", "software"),
    [
        ("llvmpipe (LLVM 15.0.6, 256 bits)", True),
        ("softpipe", True),
        ("Software Rasterizer", True),
        ("Google SwiftShader", True),
        ("NVIDIA GeForce RTX 4090/PCIe/SSE2", False),
        ("Mesa Intel(R) UHD Graphics 620 (KBL GT2)", False),
        ("AMD Radeon RX 7900 XTX (radeonsi, navi31, LLVM 17.0.6, DRM 3.57)", False),
    ],
)
def test_software_renderers_are_told_from_hardware_ones(renderer: str, software: bool) -> None:
    assert is_software(renderer) is software
    info = GlInfo("xcb", "4.6", "vendor", renderer)
    assert ("SOFTWARE (slow)" in info.describe()) is software
    assert ("hardware" in info.describe()) is not software


def _info(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "synapse_desktop", "info"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_info_reports_the_opengl_the_app_gets_and_warns_about_software() -> None:
    out = _info(dict(os.environ))
    rows = dict(line.split(None, 1) for line in out.splitlines() if line and "  " in line)
    assert "llvmpipe" in out and "SOFTWARE (slow)" in out
    assert "warning: software rendering" in out
    assert "Qt platform    xcb" in out
    assert "statistics kernel: " in out  # the C core's SIMD path (avx2 or generic)
    assert rows["torch"].startswith("(probe)  2.")  # probe side, asked in a child process
    assert "CUDA" in out and "Triton" in out


def test_info_without_a_display_says_so_and_does_not_crash() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "xcb"
    out = _info(env)
    assert "OpenGL         none: " in out and "display" in out
    assert "statistics kernel" in out


def test_the_window_warns_once_in_the_status_bar_when_rendering_in_software(  # type: ignore[no-untyped-def]
    window, qtbot
) -> None:
    from PySide6.QtWidgets import QLabel

    warning = window.render_warning
    qtbot.waitUntil(lambda: warning.info is not None, timeout=15_000)
    assert warning.info.software and "llvmpipe" in warning.info.renderer
    assert warning.label is not None and warning.label.isVisible()
    assert "software OpenGL" in warning.label.text()
    for _ in range(3):
        window.grid.canvas.update()
        qtbot.wait(50)
    notes = [w for w in window.status.findChildren(QLabel) if "software OpenGL" in w.text()]
    assert notes == [warning.label]


def test_about_shows_the_canvas_opengl_and_the_c_core(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    from synapse_desktop.qt.about_dialog import AboutDialog

    qtbot.waitUntil(lambda: window.render_warning.info is not None, timeout=15_000)
    dialog = AboutDialog(window.grid.canvas, window)
    qtbot.addWidget(dialog)
    rows = dict(dialog.rows)
    assert "llvmpipe" in rows["OpenGL"] and "SOFTWARE" in rows["OpenGL"]
    assert rows["Qt platform"] == "xcb"
    assert rows["C core"].startswith("built; statistics kernel: ")
    assert "llvmpipe" in dialog.label.text()
