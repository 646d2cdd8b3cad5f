"""One texture for every plane: each site's neuron grid is a rectangle of a shared atlas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ATLAS_WIDTH = 1024
PAD = 1  # texels between rectangles


@dataclass(frozen=True, slots=True)
class Atlas:
    """Where each site's (rows, cols) block lies: ``offsets[i] = (row, col)`` of its corner.

    Blocks sit on shelves, bands of whole texture rows: block ``i`` is on shelf ``shelf[i]``,
    which spans rows ``shelves[shelf[i], 0]`` to ``shelves[shelf[i], 1]`` (exclusive).
    """

    offsets: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    shape: tuple[int, int]
    shelf: npt.NDArray[np.int64]
    shelves: npt.NDArray[np.int64]

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
    on_shelf = np.zeros(len(rows), np.int64)
    shelves: list[tuple[int, int]] = []
    x = y = shelf = 0
    for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        if x + c > width and x > 0:
            shelves.append((y, y + shelf))
            x, y, shelf = 0, y + shelf + PAD, 0
        offsets[i] = (y, x)
        on_shelf[i] = len(shelves)
        x += c + PAD
        shelf = max(shelf, r)
    if len(rows):
        shelves.append((y, y + shelf))
    height = max(1, y + shelf)
    bands = np.array(shelves, np.int64).reshape(-1, 2)
    return Atlas(offsets, rows.copy(), cols.copy(), (height, width), on_shelf, bands)
