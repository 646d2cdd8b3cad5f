"""``synapse demo``'s window with a tiny trainer: it connects to the port the trainer announces,
shows the model, stops the trainer when closed, and outlives a trainer that dies."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse_desktop.commands.demo import DemoApp, launch
from synapse_desktop.models.connection import Phase

pytestmark = pytest.mark.gui
WAIT_MS = 60_000
TINY_TRAINER = [
    sys.executable,
    "-m",
    "synapse_probe.demo",
    "--preset",
    "tiny",
    "--port",
    "0",
    "--steps",
    "0",
    "--wait-for-viewer",
    "60",
]


@pytest.fixture
def demo(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoApp]:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    app = launch(TINY_TRAINER, settings)
    qtbot.addWidget(app.window)
    yield app
    app.window.close()
    app.finish()


def test_the_window_shows_the_trainers_layers_and_closing_it_stops_the_trainer(  # type: ignore[no-untyped-def]
    demo: DemoApp, qtbot
) -> None:
    session = demo.window.session
    qtbot.waitUntil(lambda: len(session.topology) == 24, timeout=WAIT_MS)
    assert session.topology.model_name == "demo-llama"
    assert session.topology.sites[0].name == "model.layers.0.self_attn"
    qtbot.waitUntil(lambda: (session.stats.steps >= 0).all(), timeout=WAIT_MS)  # every site
    assert session.connection.status.phase is Phase.LIVE
    demo.window.close()
    qtbot.waitUntil(lambda: demo.trainer.poll() is not None, timeout=WAIT_MS)
    assert demo.finish() == 0  # SIGINT: a clean stop


def test_the_app_stays_up_and_retries_when_the_trainer_dies(demo: DemoApp, qtbot) -> None:  # type: ignore[no-untyped-def]
    session = demo.window.session
    qtbot.waitUntil(lambda: session.connection.status.phase is Phase.LIVE, timeout=WAIT_MS)
    demo.trainer.process.send_signal(signal.SIGKILL)
    qtbot.waitUntil(lambda: demo.exit_code is not None, timeout=WAIT_MS)
    assert demo.exit_code == -signal.SIGKILL
    assert "exited with code" in demo.window.windowTitle()
    qtbot.waitUntil(lambda: session.connection.status.phase is Phase.RETRYING, timeout=WAIT_MS)
    assert demo.window.isVisible()
