"""What the optimizer did to each block (OPTIMIZER_STATS) over the last ``capacity`` steps."""

from __future__ import annotations

import numpy as np

from synapse_desktop.models.grad_norms import GradNorms
from synapse_desktop.models.signal import Signal
from synapse_native.protocol import OptimizerStats

COLUMNS = ("update_ratio", "grad_norm", "v_below_g2")


class OptimizerHistory:
    """One per-block ring (``GradNorms``: a step per row, a block per column, NaN: not measured)
    for each OPTIMIZER_STATS column; ``changed`` fires from ``flush`` when a step was added."""

    def __init__(self, capacity: int = 1024) -> None:
        self.update_ratio = GradNorms(capacity)
        self.grad_norm = GradNorms(capacity)
        self.v_below_g2 = GradNorms(capacity)
        self.changed = Signal()
        self._dirty = False

    def __len__(self) -> int:
        return len(self.update_ratio)

    def append(self, rank: int, step: int, message: OptimizerStats) -> None:
        """Add one frame's rows (block ``layers[i]`` at column ``layers[i]``)."""
        layers = np.asarray(message.layers, np.int64)
        if not len(layers):
            return
        for name in COLUMNS:
            row = np.full(int(layers.max()) + 1, np.nan, np.float32)
            row[layers] = getattr(message, name)
            self._dirty |= getattr(self, name).append(step, row)

    def clear(self) -> None:
        for name in COLUMNS:
            getattr(self, name).clear()
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self.changed.emit()
