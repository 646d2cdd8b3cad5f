"""The timeline under the 3D view: a run's steps, the step shown, playback, loss and alerts.

``Timeline`` is the state the timeline bar draws and changes; ``RunIndex`` gathers, from a
run's frames in stream order, what the bar shows over the whole run: the loss and the steps of
the alerts (found by the same detectors as the Alerts dock, on a session of its own).
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.anomalies import Alert, Anomalies
from synapse_desktop.models.frame_log import frame_step, frame_type
from synapse_desktop.models.session import Session
from synapse_desktop.models.signal import Signal
from synapse_native.protocol import MsgType, ProtocolError, TrainingMetrics, decode_frame

SPEEDS = (1, 2, 4, 8, 16, 32, 64)
LOSS = "loss"
# What the alert detectors read (``Session`` feeds them); other frames are passed over.
_INDEXED = frozenset(
    int(t)
    for t in (
        MsgType.HELLO,
        MsgType.MODEL_META,
        MsgType.LAYER_SUMMARY_BATCH,
        MsgType.BLOCK_GRAD_NORMS,
        MsgType.HEAD_STATS,
        MsgType.MOE_ROUTING,
        MsgType.TRAINING_METRICS,
        MsgType.OPTIMIZER_STATS,
    )
)
_METRICS = int(MsgType.TRAINING_METRICS)


class Mode(enum.Enum):
    IDLE = "idle"  # nothing to show
    LIVE = "live"  # a live session: the steps kept in memory
    REPLAY = "replay"  # a recording


class Timeline:
    """Steps held, the step shown, whether it follows the newest (live), playback.

    ``changed`` fires after any change; ``index`` holds the loss and alerts of the run.
    """

    def __init__(self) -> None:
        self.changed = Signal()
        self.index = RunIndex()
        self.mode = Mode.IDLE
        self.name = ""  # the recording's file name, or the live session's peer
        self.steps: Sequence[int] = ()
        self.position = -1  # the step shown
        self.following = True  # live: show each newest step as it comes
        self.playing = False
        self.speed = 1
        self.scanned = 0.0  # how much of a recording the run index has read (live: 1)

    @property
    def first(self) -> int:
        return self.steps[0] if self.steps else -1

    @property
    def last(self) -> int:
        return self.steps[-1] if self.steps else -1

    def start(self, mode: Mode, name: str, steps: Sequence[int]) -> None:
        """A new run to show: forget the position, the index and playback."""
        self.mode, self.name, self.steps = mode, name, steps
        self.index = RunIndex()
        self.position = -1
        self.following = mode is Mode.LIVE
        self.playing = False
        self.scanned = 0.0 if mode is Mode.REPLAY else 1.0
        self.changed.emit()

    def set_steps(self, steps: Sequence[int]) -> None:
        self.steps = steps
        self.changed.emit()

    def show(self, step: int) -> None:
        if step != self.position:
            self.position = step
            self.changed.emit()

    def set(self, **values: object) -> None:
        """Change ``following``, ``playing`` or ``speed`` (one of ``SPEEDS``)."""
        speed = values.get("speed", self.speed)
        if speed not in SPEEDS:
            raise ValueError(f"speed must be one of {SPEEDS}, got {speed}")
        for name, value in values.items():
            if name not in ("following", "playing", "speed"):
                raise AttributeError(name)
            setattr(self, name, value)
        self.changed.emit()

    def neighbour(self, step: int, direction: int) -> int:
        """The held step just after (``direction`` > 0) or before ``step`` (itself at an end)."""
        steps = self.steps
        if not steps:
            return -1
        if direction > 0:
            i = bisect_right(steps, step)
            return steps[min(i, len(steps) - 1)]
        i = bisect_left(steps, step) - 1
        return steps[max(i, 0)]

    def alert_step(self, step: int, direction: int) -> int | None:
        """The step of the next alert after ``step`` (``direction`` > 0) or the one before."""
        steps = self.index.alert_steps()
        if direction > 0:
            i = bisect_right(steps, step)
            return steps[i] if i < len(steps) else None
        i = bisect_left(steps, step) - 1
        return steps[i] if i >= 0 else None


class RunIndex:
    """Loss by step and the alerts of a run, fed its frames in stream order.

    A recording's index holds the whole file's. A live run's is bounded by ``forget_before``
    (called with the oldest step the frame log holds): the loss of the steps held, and their
    alerts plus the ``Anomalies`` capacity (500) of alerts before them, all the Alerts dock
    can list at the first step held.
    """

    TYPES = _INDEXED  # the frames it reads (it passes over others)

    def __init__(self) -> None:
        # Its own detectors; no metric series (the loss is kept here, by step).
        self._session = Session(history_capacity=2, metrics_capacity=2)
        self._seen = 0  # alerts of the private session taken so far
        self._loss_steps: list[int] = []
        self._loss_values: list[float] = []
        self.alerts: list[Alert] = []  # in the order found (steps ascending per rank)
        self.forgotten = 0  # alerts dropped from the front of ``alerts`` by ``forget_before``
        self._alert_steps: list[int] | None = None

    def feed(self, frames: Sequence[bytes]) -> None:
        """Take the loss and the alerts out of ``frames`` (other frames are passed over)."""
        batch = []
        for frame in frames:
            kind = frame_type(frame)
            if kind == _METRICS:
                self._metrics(frame)
            if kind in _INDEXED:
                try:
                    decoded = decode_frame(frame)
                except ProtocolError:
                    continue
                if decoded is not None:
                    batch.append(decoded)
        if batch:
            self._session.apply_frames(batch)
            self._take_alerts()

    def forget_before(self, step: int) -> None:
        """Drop the loss of the steps before ``step``, and the alerts before it but the newest
        ``Anomalies`` capacity of them."""
        steps = self._loss_steps
        if steps and steps[0] < step:
            gone = bisect_left(steps, step)
            del steps[:gone]
            del self._loss_values[:gone]
        earlier = bisect_left(self.alert_steps(), step)
        gone = earlier - self._session.anomalies.config.capacity
        if gone > 0:
            del self.alerts[:gone]
            self.forgotten += gone
            self._alert_steps = None

    def loss(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The loss by step, steps ascending."""
        return np.asarray(self._loss_steps, np.int64), np.asarray(self._loss_values, np.float64)

    def alert_steps(self) -> list[int]:
        """The steps of the alerts, ascending (repeats kept)."""
        if self._alert_steps is None:
            self._alert_steps = [a.step for a in self.alerts]
        return self._alert_steps

    def alerts_until(self, step: int) -> list[Alert]:
        """The alerts of steps up to ``step``, steps ascending."""
        return self.alerts[: bisect_right(self.alert_steps(), step)]

    def _metrics(self, frame: bytes) -> None:
        try:
            decoded = decode_frame(frame)
        except ProtocolError:
            return
        if decoded is None or not isinstance(decoded.message, TrainingMetrics):
            return
        value = decoded.message.values.get(LOSS)
        if value is None:
            return
        step = frame_step(frame)
        steps = self._loss_steps
        if steps and step <= steps[-1]:
            i = bisect_left(steps, step)
            if steps[i] == step:  # another rank's loss of the same step: keep the first
                return
            steps.insert(i, step)
            self._loss_values.insert(i, float(value))
            return
        steps.append(step)
        self._loss_values.append(float(value) if math.isfinite(value) else math.nan)

    def _take_alerts(self) -> None:
        anomalies = self._session.anomalies
        if anomalies.total < self._seen:  # the run restarted: its detectors started over
            self._seen = 0
        new = anomalies.total - self._seen
        if new:
            self.alerts.extend(list(anomalies.alerts)[-min(new, len(anomalies)) :])
            self.alerts.sort(key=lambda a: a.step)  # stable: ranks found at one step stay
            self._seen = anomalies.total
            self._alert_steps = None


def restore_alerts(anomalies: Anomalies, alerts: Sequence[Alert], earlier: int = 0) -> None:
    """Make ``anomalies`` list ``alerts`` (the run's, up to the step shown; ``earlier``: how
    many the run found before them), notifying only when that changes what it lists."""
    listed = anomalies.alerts
    keep = alerts[-listed.maxlen :] if listed.maxlen else alerts
    same_tail = not keep or (len(listed) == len(keep) and listed[-1] is keep[-1])
    total = earlier + len(alerts)
    if anomalies.total == total and len(listed) == len(keep) and same_tail:
        return
    listed.clear()
    listed.extend(keep)
    anomalies.total = total
    anomalies.generation += 1
    anomalies.changed.emit()
