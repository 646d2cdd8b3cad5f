"""The status bar: connection state, training step, throughput, drops and lag."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from synapse_desktop.models.connection import Phase
from synapse_desktop.models.session import Session

REFRESH_MS = 500
_PHASE_COLORS = {
    Phase.LIVE: "#3fb950",
    Phase.CONNECTING: "#d29922",
    Phase.RETRYING: "#d29922",
    Phase.FAILED: "#f85149",
    Phase.IDLE: "#8b949e",
}


class StatusBar(QStatusBar):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.connection = QLabel()
        self.step = QLabel()
        self.rates = QLabel()
        self.drops = QLabel()
        self.lag = QLabel()
        self.addWidget(self.connection, 1)
        for label in (self.step, self.rates, self.drops, self.lag):
            self.addPermanentWidget(label)
        self.drops.setToolTip(
            "frames lost by the trainer for this viewer (sequence gaps or its own report) / "
            "frames the app discarded to keep up"
        )
        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        session.connection.changed.connect(lambda status: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        now = time.monotonic()
        status = self.session.connection.status
        color = _PHASE_COLORS[status.phase]
        self.connection.setText(f"<span style='color:{color}'>\u25cf</span> {status.describe(now)}")
        self.connection.setToolTip(status.reason)
        c = self.session.counters
        fps, bps = c.rates(now)
        self.step.setText(f"step {c.step}" if c.step >= 0 else "step -")
        self.rates.setText(f"{fps:.0f} frames/s  {bps / 1e6:.2f} MB/s")
        self.drops.setText(f"dropped: trainer {c.dropped_by_trainer}, app {c.app_dropped}")
        lag = "-" if math.isnan(c.lag_ms) else f"{c.lag_ms:.0f}"
        self.lag.setText(f"lag {lag} ms")
