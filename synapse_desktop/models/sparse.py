"""The latest above-threshold neurons of every site."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal

_NO_INDICES = np.zeros(0, np.uint32)
_NO_VALUES = np.zeros(0, np.float32)


class SparsePoints(NamedTuple):
    """One SPARSE_ACTIVATIONS frame's content for a site.

    A named tuple rather than a frozen dataclass: a busy tick makes one per site, and a tuple
    is made four times faster.
    """

    step: int
    threshold: float
    n_above: int
    indices: npt.NDArray[np.uint32]
    values: npt.NDArray[np.float32]


EMPTY = SparsePoints(-1, float("nan"), 0, _NO_INDICES, _NO_VALUES)


@dataclass(frozen=True, slots=True)
class SparseRun:
    """Consecutive SPARSE_ACTIVATIONS frames of the stream, decoded in one pass.

    Stands for those frames in ``Session.apply_frames`` (same effect, in the same order) with
    one entry per frame in each field: the header's ``seq``, ``rank``, ``step`` and
    ``timestamp_ns``, and the message's ``site_id``, ``threshold``, ``n_above``, ``indices``
    and ``values``.
    """

    seq: Sequence[int]
    rank: Sequence[int]
    step: Sequence[int]
    timestamp_ns: Sequence[int]
    site_id: Sequence[int]
    threshold: Sequence[float]
    n_above: Sequence[int]
    indices: Sequence[npt.NDArray[np.uint32]]
    values: Sequence[npt.NDArray[np.float32]]

    def __len__(self) -> int:
        return len(self.seq)


class LatestSparse:
    """Per site, the newest sparse frame; ``changed(indices)`` from ``flush``."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.points: list[SparsePoints] = []
        self._dirty: set[int] = set()

    def __len__(self) -> int:
        return len(self.points)

    def update(self, index: int, points: SparsePoints) -> bool:
        """Keep ``points`` for site ``index`` unless it holds a newer step; returns whether kept."""
        if index < 0 or points.step < self.points[index].step:
            return False
        self.points[index] = points
        self._dirty.add(index)
        return True

    def update_all(self, indices: Iterable[int], points: Iterable[SparsePoints]) -> None:
        """``update`` each site of ``indices`` (all known) with its ``points``, in order."""
        held, dirty = self.points, self._dirty
        for index, new in zip(indices, points, strict=True):
            if new.step >= held[index].step:
                held[index] = new
                dirty.add(index)

    def load(self, points: Sequence[SparsePoints]) -> None:
        """Hold ``points`` (one per site, e.g. another rank's) in place of every site's."""
        self.points = list(points)
        self._dirty = set(range(len(self.points)))

    @property
    def total(self) -> int:
        """How many points are held across all sites."""
        return sum(len(p.indices) for p in self.points)

    def remap(self, old_to_new: npt.NDArray[np.int64], size: int) -> None:
        """Follow a topology rebuild (see ``LatestStats.remap``)."""
        points = [EMPTY] * size
        for old, new in enumerate(old_to_new.tolist()):
            if new >= 0:
                points[new] = self.points[old]
        self.points = points
        self._dirty = set(range(size))

    def clear(self) -> None:
        """Forget every point (keeps the size)."""
        self.points = [EMPTY] * len(self.points)
        self._dirty = set(range(len(self.points)))

    def flush(self) -> None:
        """Emit ``changed(indices)`` if any site got new points."""
        if self._dirty:
            dirty = np.fromiter(sorted(self._dirty), np.int64)
            self._dirty.clear()
            self.changed.emit(dirty)
