"""Bounded per-site history: a ring of the last ``capacity`` sampled steps for every site."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal

FIELDS = ("mean", "rms", "max", "frac_above")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True, slots=True)
class Series:
    """One site's history in step order: ``values[:, FIELDS.index(f)]``, ``bands[:, q]``."""

    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]
    bands: npt.NDArray[np.float32]

    def field(self, name: str) -> npt.NDArray[np.float32]:
        return self.values[:, FIELDS.index(name)]


class History:
    """Rings of shape (sites, capacity): step, the ``FIELDS`` and the ``QUANTILES`` bands.

    ``changed(indices)`` fires from ``flush``. Memory is fixed by ``capacity`` and the site count.
    """

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.capacity = capacity
        self.changed = Signal()
        self._allocate(0)
        self._dirty: set[int] = set()

    def __len__(self) -> int:
        return len(self.count)

    def _allocate(self, size: int) -> None:
        self.steps = np.full((size, self.capacity), -1, np.int64)
        self.values = np.full((size, self.capacity, len(FIELDS)), np.nan, np.float32)
        self.bands = np.full((size, self.capacity, len(QUANTILES)), np.nan, np.float32)
        self.count = np.zeros(size, np.int64)  # appended so far (the ring head is count % cap)

    def append(
        self,
        indices: npt.NDArray[np.int64],
        step: int,
        values: npt.NDArray[np.float32],
        bands: npt.NDArray[np.float32],
    ) -> None:
        """Add one sample per site in ``indices`` (rows of ``values`` (n, F) and ``bands``)."""
        if len(indices) == 0:
            return
        slots = self.count[indices] % self.capacity
        self.steps[indices, slots] = step
        self.values[indices, slots] = values
        self.bands[indices, slots] = bands
        self.count[indices] += 1
        self._dirty.update(indices.tolist())

    def put(
        self,
        indices: npt.NDArray[np.int64],
        steps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float32],
        bands: npt.NDArray[np.float32],
    ) -> None:
        """Like ``append`` with a step per site, but a site whose newest sample has the same
        step gets that sample replaced (one sample per step)."""
        if len(indices) == 0:
            return
        count = self.count[indices]
        head = (count - 1) % self.capacity
        same = (count > 0) & (self.steps[indices, head] == steps)
        slots = np.where(same, head, count % self.capacity)
        self.steps[indices, slots] = steps
        self.values[indices, slots] = values
        self.bands[indices, slots] = bands
        self.count[indices] += ~same
        self._dirty.update(indices.tolist())

    def load(self, other: History) -> None:
        """Become a copy of ``other`` (same capacity and site count)."""
        if (other.capacity, len(other)) != (self.capacity, len(self)):
            raise ValueError("load needs a history of the same capacity and size")
        self.steps[...] = other.steps
        self.values[...] = other.values
        self.bands[...] = other.bands
        self.count[...] = other.count
        self._dirty = set(range(len(self.count)))

    def series(self, index: int) -> Series:
        """Site ``index``'s samples, oldest first."""
        n = int(min(self.count[index], self.capacity))
        order = (np.arange(n) + self.count[index] - n) % self.capacity
        return Series(self.steps[index, order], self.values[index, order], self.bands[index, order])

    def remap(self, old_to_new: npt.NDArray[np.int64], size: int) -> None:
        """Follow a topology rebuild (see ``LatestStats.remap``)."""
        old = (self.steps, self.values, self.bands, self.count)
        self._allocate(size)
        keep = old_to_new >= 0
        new = old_to_new[keep]
        self.steps[new], self.values[new] = old[0][keep], old[1][keep]
        self.bands[new], self.count[new] = old[2][keep], old[3][keep]
        self._dirty = set(range(size))

    def clear(self) -> None:
        """Forget every sample (keeps the size)."""
        self._allocate(len(self.count))
        self._dirty = set(range(len(self.count)))

    def flush(self) -> None:
        """Emit ``changed(indices)`` if any site got samples."""
        if self._dirty:
            dirty = np.fromiter(sorted(self._dirty), np.int64)
            self._dirty.clear()
            self.changed.emit(dirty)
