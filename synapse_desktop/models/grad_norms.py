"""Per-block parameter-gradient norms (BLOCK_GRAD_NORMS) of the last ``capacity`` steps."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal


class GradNorms:
    """A ring of steps, each with one norm per block (NaN: not measured).

    Frames of a step already held are merged into it: a block keeps the largest norm reported,
    so ranks that each measure their own blocks (pipeline stages, NaN elsewhere) fill one step.
    A step older than every held one that is not held is dropped. ``changed`` fires from
    ``flush`` when anything was added; memory is fixed by ``capacity`` and the block count.
    """

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.capacity = capacity
        self.changed = Signal()
        self._allocate(0)
        self._dirty = False

    def _allocate(self, blocks: int) -> None:
        self.steps = np.full(self.capacity, -1, np.int64)
        self.norms = np.full((self.capacity, blocks), np.nan, np.float32)
        self.count = 0  # steps appended so far (the ring head is count % capacity)

    @property
    def n_blocks(self) -> int:
        return int(self.norms.shape[1])

    @property
    def newest(self) -> int:
        """The newest step held (-1: none)."""
        return int(self.steps[(self.count - 1) % self.capacity]) if self.count else -1

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    def append(self, step: int, norms: npt.ArrayLike) -> bool:
        """Add one step's norms (block ``i`` at ``norms[i]``); returns whether it was kept."""
        values = np.asarray(norms, np.float32).ravel()
        if len(values) > self.n_blocks:
            grown = np.full((self.capacity, len(values)), np.nan, np.float32)
            grown[:, : self.n_blocks] = self.norms
            self.norms = grown
        held = np.flatnonzero(self.steps == step) if self.count else np.zeros(0, np.intp)
        if len(held):
            row = self.norms[held[0], : len(values)]
            np.fmax(row, values, out=row)
        elif step > self.newest:
            slot = self.count % self.capacity
            self.steps[slot] = step
            self.norms[slot] = np.nan
            self.norms[slot, : len(values)] = values
            self.count += 1
        else:
            return False
        self._dirty = True
        return True

    def window(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The held steps, oldest first, and their norms (steps, blocks)."""
        n = len(self)
        order = (np.arange(n) + self.count - n) % self.capacity
        return self.steps[order], self.norms[order]

    def clear(self) -> None:
        """Forget every step (keeps the block count)."""
        self._allocate(self.n_blocks)
        self._dirty = True

    def flush(self) -> None:
        """Emit ``changed()`` if anything was added or cleared since the last flush."""
        if self._dirty:
            self._dirty = False
            self.changed.emit()
