"""Which plane (and which neuron) a ray through the pointer hits first."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.scene.layout import Layout


@dataclass(frozen=True, slots=True)
class Hit:
    """The nearest plane hit: site index, neuron index in that site, distance along the ray."""

    index: int
    neuron: int
    distance: float


def pick(layout: Layout, origin: npt.ArrayLike, direction: npt.ArrayLike) -> Hit | None:
    """Intersect the ray with every plane at once; None when it misses them all."""
    if not len(layout):
        return None
    o = np.asarray(origin, np.float64)
    d = np.asarray(direction, np.float64)
    normal = np.cross(layout.U, layout.V).astype(np.float64)  # the same for every plane
    facing = float(d @ normal)
    if abs(facing) < 1e-12:
        return None
    corners = layout.corners.astype(np.float64)
    t = ((corners - o) @ normal) / facing
    hits = o + t[:, None] * d
    rel = hits - corners
    col = rel @ layout.U
    row = rel @ layout.V
    inside = (t > 0) & (col >= 0) & (col < layout.cols) & (row >= 0) & (row < layout.rows)
    if not inside.any():
        return None
    candidates = np.flatnonzero(inside)
    best = int(candidates[np.argmin(t[candidates])])
    neuron = int(row[best]) * int(layout.cols[best]) + int(col[best])
    return Hit(best, neuron, float(t[best]))
