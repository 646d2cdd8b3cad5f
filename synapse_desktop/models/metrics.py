"""Training metrics (TRAINING_METRICS: loss, learning rate, ...) per rank and name, by step."""

from __future__ import annotations

from functools import reduce

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal
from synapse_native.protocol import TrainingMetrics

DEFAULT_CAPACITY = 65536
_FIRST_SIZE = 64

Steps = npt.NDArray[np.int64]
Values = npt.NDArray[np.float64]


class _Series:
    """One (rank, name): steps strictly ascending and their values, the last ``capacity``.

    The live samples are ``[start, end)`` of buffers that grow to twice the capacity, so
    dropping the oldest is a counter increment and compacting happens once per ``capacity``
    appends.
    """

    __slots__ = ("capacity", "end", "start", "steps", "values")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        size = min(_FIRST_SIZE, 2 * capacity)
        self.steps: Steps = np.zeros(size, np.int64)
        self.values: Values = np.zeros(size, np.float64)
        self.start = 0
        self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def last_step(self) -> int:
        return int(self.steps[self.end - 1]) if self.end > self.start else -1

    def live(self) -> tuple[Steps, Values]:
        """Views of the held samples (valid until the next ``put``)."""
        return self.steps[self.start : self.end], self.values[self.start : self.end]

    def put(self, step: int, value: float) -> None:
        """Add a sample; a step already held gets its value replaced."""
        if self.end > self.start and step <= self.steps[self.end - 1]:
            steps, _ = self.live()
            i = int(np.searchsorted(steps, step))
            if steps[i] == step:
                self.values[self.start + i] = value
                return
            if len(self) >= self.capacity and i == 0:
                return  # older than everything held, and the oldest would go at once
            self._room()
            at = self.start + i
            self.steps[at + 1 : self.end + 1] = self.steps[at : self.end]
            self.values[at + 1 : self.end + 1] = self.values[at : self.end]
        else:
            self._room()
            at = self.end
        self.steps[at] = step
        self.values[at] = value
        self.end += 1
        if len(self) > self.capacity:
            self.start += 1

    def _room(self) -> None:
        """Make sure one more sample fits after ``end``."""
        if self.end < len(self.steps):
            return
        n = len(self)
        size = len(self.steps)
        if n < size // 2 or size >= 2 * self.capacity:  # compact in place
            steps, values = self.steps, self.values
        else:  # grow
            size = min(2 * size, 2 * self.capacity)
            steps, values = np.zeros(size, np.int64), np.zeros(size, np.float64)
        steps[:n] = self.steps[self.start : self.end]
        values[:n] = self.values[self.start : self.end]
        self.steps, self.values, self.start, self.end = steps, values, 0, n


class MetricsHistory:
    """Every TRAINING_METRICS value received, per (rank, name), the last ``capacity`` steps each.

    A value for a (rank, step, name) already held replaces it (a resumed trainer sends its
    steps again); steps arrive in any order and are kept sorted. ``changed()`` fires from
    ``flush`` (once per ``Session`` batch) when anything was added or cleared.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.capacity = capacity
        self.changed = Signal()
        self._series: dict[tuple[int, str], _Series] = {}
        self._names: dict[str, set[int]] = {}  # first-seen order; the ranks that sent each
        self._ranks: set[int] = set()
        self._dirty = False

    def apply(self, msg: TrainingMetrics, step: int, rank: int) -> None:
        """Add the values of one TRAINING_METRICS frame (its header's step and rank)."""
        for name, value in msg.values.items():
            key = (rank, name)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(self.capacity)
                self._names.setdefault(name, set()).add(rank)
                self._ranks.add(rank)
            series.put(step, value)
            self._dirty = True

    def names(self) -> list[str]:
        """Every metric name received, in the order first seen."""
        return list(self._names)

    def ranks(self) -> list[int]:
        """Every rank that sent a metric, ascending."""
        return sorted(self._ranks)

    def series(self, name: str, rank: int | None = None) -> tuple[Steps, Values]:
        """(steps ascending as int64, values as float64) of ``name``; copies.

        ``rank=None``: the one rank's series when a single rank sent ``name``; otherwise the
        mean over the ranks that sent it, at the steps every one of them reported (NaN from
        any rank makes that step's mean NaN). Unknown names or ranks give empty arrays.
        """
        parts = self._parts(name, rank)
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        if len(parts) == 1:
            steps, values = parts[0].live()
            return steps.copy(), values.copy()
        lives = [part.live() for part in parts]
        common: Steps = reduce(
            lambda a, b: np.intersect1d(a, b, assume_unique=True), (s for s, _ in lives)
        )
        total = np.zeros(len(common), np.float64)
        for steps, values in lives:
            total += values[np.searchsorted(steps, common)]
        return common.astype(np.int64, copy=False), total / len(lives)

    def latest(self, name: str, rank: int | None = None) -> float | None:
        """The value at the newest step of ``series(name, rank)``; None when there is none."""
        parts = self._parts(name, rank)
        if not parts or not all(len(part) for part in parts):
            return None
        if len(parts) == 1:
            return float(parts[0].values[parts[0].end - 1])
        newest = min(part.last_step for part in parts)
        total = 0.0
        for part in parts:
            steps, values = part.live()
            i = int(np.searchsorted(steps, newest))
            if steps[i] != newest:  # not every rank has it: the mean's newest step is older
                _, mean = self.series(name, rank)
                return float(mean[-1]) if len(mean) else None
            total += float(values[i])
        return total / len(parts)

    def clear(self) -> None:
        """Forget every value, name and rank (a new training run)."""
        if self._series:
            self._dirty = True
        self._series.clear()
        self._names.clear()
        self._ranks.clear()

    def flush(self) -> None:
        """Emit ``changed()`` if anything was added or cleared since the last flush."""
        if self._dirty:
            self._dirty = False
            self.changed.emit()

    def _parts(self, name: str, rank: int | None) -> list[_Series]:
        if rank is not None:
            one = self._series.get((rank, name))
            return [] if one is None else [one]
        return [self._series[(r, name)] for r in sorted(self._names.get(name, ()))]
