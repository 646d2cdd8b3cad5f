"""Screenshots of ``synapse demo`` (dense on 1280x800, ``--moe 4`` on 1920x1080) with a tiny
trainer: the window is on the screen, the loss reads, and each site lights a few neurons."""

from __future__ import annotations

from pathlib import Path

import pytest
from screens import MIN_METRIC_PX, metric_height, outside, save, use_screen

from synapse_desktop.commands.demo import launch

from .test_demo_app import TINY_TRAINER, WAIT_MS

pytestmark = pytest.mark.gui


@pytest.mark.parametrize(
    ("extra", "size"), [([], (1280, 800)), (["--moe", "4"], (1920, 1080))], ids=["dense", "moe"]
)
def test_the_demo_window_fits_and_lights_a_few_neurons_a_site(  # type: ignore[no-untyped-def]
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], size
) -> None:
    from PySide6.QtCore import QSettings

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    screen = use_screen(monkeypatch, *size)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    demo = launch([*TINY_TRAINER, *extra], settings)
    qtbot.addWidget(demo.window)
    try:
        window, session = demo.window, demo.window.session
        qtbot.waitUntil(
            lambda: (session.stats.steps >= 0).all() and len(session.topology) > 0, timeout=WAIT_MS
        )
        qtbot.waitUntil(lambda: len(session.metrics.series("loss")[0]) >= 3, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: all(p.step >= 0 for p in session.sparse.points), timeout=WAIT_MS)
        qtbot.wait(600)
        save(window, f"demo-{'-'.join(extra) or 'dense'}-{size[0]}x{size[1]}".replace("--", ""))
        assert outside(window, screen) == []
        assert metric_height(window) >= MIN_METRIC_PX
        for points, site in zip(session.sparse.points, session.topology.sites, strict=True):
            assert points.n_above / site.neurons < 0.1, site.name  # never a solid block
        lit = sum(p.n_above for p in session.sparse.points) / sum(
            s.neurons for s in session.topology.sites
        )
        assert 0 < lit < 0.05
    finally:
        demo.window.close()
        demo.finish()
