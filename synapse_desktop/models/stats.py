"""The latest summary record of every site, never replaced by an older step."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal
from synapse_native.protocol import SUMMARY_DTYPE


class LatestStats:
    """One ``SUMMARY_DTYPE`` row per site plus the step it came from (-1: nothing yet).

    ``changed`` fires from ``flush`` with the indices updated since the last flush.
    """

    def __init__(self) -> None:
        self.changed = Signal()
        self.records = np.zeros(0, SUMMARY_DTYPE)
        self.steps = np.full(0, -1, np.int64)
        self._dirty = np.zeros(0, bool)

    def __len__(self) -> int:
        return len(self.steps)

    def update(
        self, indices: npt.NDArray[np.int64], records: npt.NDArray[np.void], step: int
    ) -> npt.NDArray[np.bool_]:
        """Store ``records`` (rows for ``indices``) taken at ``step``; returns which were fresh.

        A record is fresh when its step is not older than the one held; unknown indices (-1)
        are ignored.
        """
        fresh = (indices >= 0) & (step >= self.steps[np.maximum(indices, 0)])
        rows = indices[fresh]
        self.records[rows] = records[fresh]
        self.steps[rows] = step
        self._dirty[rows] = True
        return fresh

    def put(
        self,
        indices: npt.NDArray[np.int64],
        records: npt.NDArray[np.void],
        steps: int | npt.NDArray[np.int64],
    ) -> None:
        """Store ``records`` for ``indices`` as they are (with their ``steps``, one or per row)."""
        self.records[indices] = records
        self.steps[indices] = steps
        self._dirty[indices] = True

    def field(self, name: str) -> npt.NDArray[np.float32]:
        """One statistic for every site (NaN where nothing has arrived)."""
        values = self.records[name].astype(np.float32)
        values[self.steps < 0] = np.nan
        return values

    def remap(self, old_to_new: npt.NDArray[np.int64], size: int) -> None:
        """Follow a topology rebuild: row ``i`` moves to ``old_to_new[i]`` (-1: dropped)."""
        records = np.zeros(size, SUMMARY_DTYPE)
        steps = np.full(size, -1, np.int64)
        keep = old_to_new >= 0
        records[old_to_new[keep]] = self.records[keep]
        steps[old_to_new[keep]] = self.steps[keep]
        self.records, self.steps = records, steps
        self._dirty = np.ones(size, bool)

    def clear(self) -> None:
        """Forget every value (keeps the size)."""
        self.records[:] = 0
        self.steps[:] = -1
        self._dirty[:] = True

    def flush(self) -> None:
        """Emit ``changed(indices)`` if anything was updated."""
        if self._dirty.any():
            dirty = np.flatnonzero(self._dirty)
            self._dirty[:] = False
            self.changed.emit(dirty)
