"""The status bar: connection state, training step, throughput, drops and lag."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from synapse_desktop.models.connection import Phase
from synapse_desktop.models.session import Session
from synapse_native.protocol import ProbeCost

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
        self.cost = QLabel()
        self.addWidget(self.connection, 1)
        for label in (self.step, self.rates, self.drops, self.lag, self.cost):
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
        job = self.session.skew.health()  # a job stream: its ranks, or why it stopped
        if self.session.skew.status is not None and self.session.skew.status.state:
            color = _PHASE_COLORS[Phase.FAILED]
        shown = f"{status.describe(now)} ({job})" if job else status.describe(now)
        self.connection.setText(f"<span style='color:{color}'>\u25cf</span> {shown}")
        self.connection.setToolTip(status.reason)
        c = self.session.counters
        fps, bps = c.rates(now)
        self.step.setText(f"step {c.step}" if c.step >= 0 else "step -")
        self.rates.setText(f"{fps:.0f} frames/s  {bps / 1e6:.2f} MB/s")
        skipped = f", {c.steps_skipped} old steps skipped" if c.steps_skipped else ""
        self.drops.setText(f"dropped: trainer {c.dropped_by_trainer}, app {c.app_dropped}{skipped}")
        lag = "-" if math.isnan(c.lag_ms) else f"{c.lag_ms:.0f}"
        self.lag.setText(f"lag {lag} ms")
        self._show_cost(c.probe_cost)

    def _show_cost(self, cost: ProbeCost | None) -> None:
        """'probe 0.6 % of step, budget 1 %', from the costliest rank's PROBE_COST."""
        self.cost.setVisible(cost is not None)
        if cost is None:
            return
        budget = f"budget {_percent(cost.budget)}" if cost.budget > 0 else "no budget"
        over = cost.budget > 0 and cost.cost > cost.budget
        text = f"probe {_percent(cost.cost)} of step, {budget}"
        self.cost.setText(f"<span style='color:#f85149'>{text}</span>" if over else text)
        lenses = f", lenses every {cost.lens_interval}" if cost.lens_interval else ""
        self.cost.setToolTip(
            f"statistics every {cost.interval} step(s){lenses}; a measured step costs "
            f"{cost.stats_ns / 1e6:.2f} ms more than another (training thread, encoder, GPU, "
            f"and the slower steps around it), the lenses "
            f"{cost.lens_ns / 1e6:.2f} ms; a step takes {cost.step_ns / 1e6:.1f} ms"
        )


def _percent(share: float) -> str:
    """0.006 -> '0.6 %', 0.01 -> '1 %', 0.125 -> '12.5 %'."""
    return f"{100 * share:.2g} %" if share < 0.1 else f"{100 * share:.3g} %"
