"""One texture for every plane: each site's neuron grid is a rectangle of a shared atlas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ATLAS_WIDTH = 1024
PAD = 1  # texels between rectangles


@dataclass(frozen=True, slots=True)
class Atlas:
    """Where each site's (rows, cols) block lies: ``offsets[i] = (row, col)`` of its corner."""

    offsets: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    shape: tuple[int, int]

    def texcoords(self) -> npt.NDArray[np.float32]:
        """(n, 4, 2) texture coordinates matching ``Layout.quads`` corner order."""
        h, w = self.shape
        r0 = self.offsets[:, 0].astype(np.float32)
        c0 = self.offsets[:, 1].astype(np.float32)
        r1, c1 = r0 + self.rows, c0 + self.cols
        # u follows columns (texture x), v follows rows (texture y).
        tl = np.stack([c0 / w, r0 / h], axis=1)
        tr = np.stack([c1 / w, r0 / h], axis=1)
        br = np.stack([c1 / w, r1 / h], axis=1)
        bl = np.stack([c0 / w, r1 / h], axis=1)
        return np.stack([tl, tr, br, bl], axis=1).astype(np.float32)

    def block(self, image: npt.NDArray[np.generic], index: int) -> npt.NDArray[np.generic]:
        """The view of ``image`` (atlas-shaped) that belongs to site ``index``."""
        r, c = self.offsets[index]
        return image[r : r + self.rows[index], c : c + self.cols[index]]


def pack(rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]) -> Atlas:
    """Shelf packing in the given order, ``ATLAS_WIDTH`` texels wide (wider if a block is)."""
    width = max(ATLAS_WIDTH, int(cols.max(initial=0)) + PAD)
    offsets = np.zeros((len(rows), 2), np.int64)
    x = y = shelf = 0
    for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        if x + c > width:
            x, y, shelf = 0, y + shelf + PAD, 0
        offsets[i] = (y, x)
        x += c + PAD
        shelf = max(shelf, r)
    height = max(1, y + shelf)
    return Atlas(offsets, rows.copy(), cols.copy(), (height, width))
