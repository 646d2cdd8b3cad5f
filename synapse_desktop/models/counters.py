"""Throughput, drops and lag, as the status bar shows them."""

from __future__ import annotations

from collections import deque

from synapse_desktop.models.signal import Signal
from synapse_native.protocol import ProbeCost

_WINDOW_S = 1.0
_LAG_SMOOTHING = 0.2


class Counters:
    """Totals and rates; ``changed`` fires from ``flush``."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.frames = 0
        self.bytes = 0
        self.step = -1
        self.seq_gaps = 0  # frames the trainer sent us that never came (sequence gaps)
        self.trainer_dropped = 0  # as reported in PROBE_STATS for this stream
        self.app_dropped = 0  # frames the app read but discarded to keep up
        self.stale = 0  # duplicates and frames older than what is shown
        self.steps_skipped = 0  # whole steps left out because a newer one was waiting
        self.lag_ms = float("nan")
        self.costs: dict[int, ProbeCost] = {}  # per rank, its latest PROBE_COST
        self._samples: deque[tuple[float, int, int]] = deque()
        self._dirty = False

    def received(self, now: float, frames: int, nbytes: int) -> None:
        """Count a drained batch at monotonic time ``now``."""
        self.frames += frames
        self.bytes += nbytes
        self._samples.append((now, frames, nbytes))
        self._dirty = True

    def skipped_steps(self, steps: int) -> None:
        """Count whole steps the reader left out to show a newer one."""
        self.steps_skipped += steps
        self._dirty = True

    def lag(self, lag_ms: float) -> None:
        """Fold one batch's end-to-end lag into a smoothed value."""
        if self.lag_ms != self.lag_ms:  # NaN: first value
            self.lag_ms = lag_ms
        else:
            self.lag_ms += _LAG_SMOOTHING * (lag_ms - self.lag_ms)
        self._dirty = True

    def rates(self, now: float) -> tuple[float, float]:
        """Frames per second and bytes per second over the last second."""
        while self._samples and self._samples[0][0] < now - _WINDOW_S:
            self._samples.popleft()
        frames = sum(s[1] for s in self._samples)
        nbytes = sum(s[2] for s in self._samples)
        return frames / _WINDOW_S, nbytes / _WINDOW_S

    def cost(self, rank: int, cost: ProbeCost) -> None:
        """Take a rank's PROBE_COST: what its probe costs its training step."""
        self.costs[rank] = cost
        self._dirty = True

    @property
    def probe_cost(self) -> ProbeCost | None:
        """The costliest rank's PROBE_COST (None before any arrived)."""
        return max(self.costs.values(), key=lambda c: c.cost, default=None)

    @property
    def dropped_by_trainer(self) -> int:
        """What the trainer lost for us: the larger of the sequence gaps and its own report."""
        return max(self.seq_gaps, self.trainer_dropped)

    def mark(self) -> None:
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self.changed.emit()
