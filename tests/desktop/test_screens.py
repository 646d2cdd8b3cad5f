"""Screenshots of the first ten minutes: ``synapse sim`` (32 and 80 layers) on a 1280x800 and a
1920x1080 screen. The whole window is on the screen, the training metric is tall enough to read,
a deep model's grid and heatmaps stay readable, and a small fraction of each site is lit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from screens import MIN_METRIC_PX, metric_height, outside, save, use_screen

from .conftest import SimThread

pytestmark = pytest.mark.gui
WAIT_MS = 30_000


def shown(qtbot, settings_path: Path, sim: SimThread):  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings

    from synapse_desktop.net.endpoint import Endpoint
    from synapse_desktop.qt.main_window import MainWindow

    window = MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(window.isVisible)
    window.connect_to(Endpoint(sim.host, sim.port))
    session = window.session
    qtbot.waitUntil(lambda: len(session.topology) > 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: (session.stats.steps >= 0).all(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(session.metrics.series("loss")[0]) >= 5, timeout=WAIT_MS)
    qtbot.wait(600)  # a few refreshes of the docks
    return window


@pytest.mark.parametrize(
    ("layers", "size"), [(32, (1280, 800)), (80, (1280, 800)), (80, (1920, 1080))]
)
def test_the_window_fits_and_reads(qtbot, settings_path, monkeypatch, layers, size) -> None:  # type: ignore[no-untyped-def]
    screen = use_screen(monkeypatch, *size)
    sim = SimThread(layers=layers, top_k=512, fps=10.0)
    try:
        window = shown(qtbot, settings_path, sim)
        save(window, f"sim-{layers}-layers-{size[0]}x{size[1]}")
        assert outside(window, screen) == []
        assert window.width() <= 0.9 * size[0] + 1 and window.height() <= 0.9 * size[1] + 1
        assert metric_height(window) >= MIN_METRIC_PX
        layout = window.grid.geometry.layout
        if layers > 48:  # rows of cards, numbers every 2nd layer at most 16 a row
            assert layout.per_row == 40 and len(window.grid.labels.visual.text) <= 2 * 16 + 3
        for corner in layout.quads().reshape(-1, 3)[:: max(1, len(layout) // 50)]:
            x, y = window.grid.project(corner)  # the home view frames every plane
            width, height = window.grid.canvas.size
            assert 0 <= x <= width and 0 <= y <= height
        lit = [
            p.n_above / s.neurons
            for p, s in zip(
                window.session.sparse.points, window.session.topology.sites, strict=True
            )
        ]
        assert 0 < np.mean(lit) < 0.05 and max(lit) < 0.1  # a few neurons of each site
        if layers > 40:
            check_isolation(window, qtbot, f"sim-{layers}-layers-{size[0]}x{size[1]}-isolated")
        window.close()
    finally:
        sim.stop()


def check_isolation(window, qtbot, name: str) -> None:  # type: ignore[no-untyped-def]
    """A double-click on a plane shows its block and neighbours alone, framed; Esc: all."""
    from PySide6.QtCore import QPoint, Qt

    grid, layout = window.grid, window.grid.geometry.layout
    sites = window.session.topology.sites
    target = next(s for s in sites if s.layer == 41 and s.kind_name == "mlp")
    x, y = grid.project(layout.quads()[target.index].mean(axis=0))
    qtbot.mouseDClick(grid.native, Qt.MouseButton.LeftButton, pos=QPoint(int(x), int(y)))
    assert grid.isolated == 41 and grid.labels.only == {40, 41, 42}
    image = grid.canvas.render()
    background = image[2, 2, :3].astype(int)
    far = next(s for s in sites if s.layer == 70 and s.kind_name == "mlp")
    for site, drawn in ((target, True), (far, False)):
        px, py = grid.project(layout.quads()[site.index].mean(axis=0))
        inside = 0 <= px < image.shape[1] and 0 <= py < image.shape[0]
        lit = inside and np.abs(image[int(py), int(px), :3].astype(int) - background).sum() > 30
        assert lit == drawn, site.name
    save(window, name)
    assert window.show_all_action.shortcut().toString() == "Esc"
    window.show_all_action.trigger()  # Esc (an unfocused Xvfb window gets no shortcuts)
    assert grid.isolated == -1 and grid.labels.only == set()
