"""Deterministic 3D layout of the site planes: one card per layer along x, sites stacked in z.

A site's plane spans ``cols`` neuron columns along +y and ``rows`` rows down -z, one world unit
per neuron, so a 14336-neuron MLP plane is visibly larger than a 4096-neuron attention plane.
Neuron ``i`` sits at row ``i // cols``, column ``i % cols``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.topology import Site

LAYER_SPACING = 40.0  # world units between cards at spacing factor 1
SITE_GAP = 10.0  # between planes of one card
WRAP_ABOVE = 40  # deeper models wrap their cards into rows ...
ROW_LAYERS = 40  # ... of at most this many layers
ROW_GAP = 30.0  # between rows of cards
DEFAULT_GRID = (64, 64)  # for sites known only by id

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Layout:
    """Per site: the plane's top-left corner, its rows and columns, and the card's x."""

    corners: F32  # (n, 3)
    rows: npt.NDArray[np.int64]
    cols: npt.NDArray[np.int64]
    layer_x: dict[int, float]
    layer_top: float  # the first row's top
    layer_z: dict[int, float] | None = None  # each layer's card top (rows of a deep model)
    per_row: int = 0  # layers a row (0: one row)

    def top_of(self, layer: int) -> float:
        """The top z of ``layer``'s card."""
        return self.layer_z.get(layer, self.layer_top) if self.layer_z else self.layer_top

    U = np.array([0.0, 1.0, 0.0], np.float32)  # one column step
    V = np.array([0.0, 0.0, -1.0], np.float32)  # one row step

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def bounds(self) -> tuple[F32, F32]:
        """Axis-aligned box around every plane (zeros when empty)."""
        if not len(self):
            return np.zeros(3, np.float32), np.zeros(3, np.float32)
        quads = self.quads().reshape(-1, 3)
        return quads.min(axis=0), quads.max(axis=0)

    def quads(self) -> F32:
        """(n, 4, 3) corners of every plane: top-left, top-right, bottom-right, bottom-left."""
        u = self.cols[:, None].astype(np.float32) * self.U
        v = self.rows[:, None].astype(np.float32) * self.V
        c = self.corners
        return np.stack([c, c + u, c + u + v, c + v], axis=1).astype(np.float32)

    def neuron_positions(self, index: int, neurons: npt.NDArray[np.integer]) -> F32:
        """World positions of neurons (indices into the site) at the centres of their cells."""
        cols = int(self.cols[index])
        row, col = np.divmod(neurons.astype(np.int64), max(cols, 1))
        pos = np.empty((len(neurons), 3), np.float32)
        pos[:] = self.corners[index]
        pos[:, 1] += col + 0.5
        pos[:, 2] -= row + 0.5
        return pos


def grid_of(site: Site) -> tuple[int, int]:
    """The site's (rows, cols): from meta, else near-square from the neuron count, else default."""
    if site.grid_rows > 0 and site.grid_cols > 0:
        return site.grid_rows, site.grid_cols
    if site.neurons > 0:
        cols = int(np.ceil(np.sqrt(site.neurons)))
        return -(-site.neurons // cols), cols
    return DEFAULT_GRID


def layers_per_row(n_layers: int) -> int:
    """Cards a row: all of them up to ``WRAP_ABOVE`` layers, else rows as even as can be of at
    most ``ROW_LAYERS`` (80 layers: 2 rows of 40), so a deep model keeps a screen-like shape."""
    if n_layers <= WRAP_ABOVE:
        return max(n_layers, 1)
    rows = -(-n_layers // ROW_LAYERS)
    return -(-n_layers // rows)


def compute_layout(sites: Sequence[Site], spacing: float = 1.0) -> Layout:
    """Cards for layers in ascending order along +x, centred on y = 0, tops aligned at z = 0;
    a deep model's cards wrap into rows going down -z."""
    grids = [grid_of(s) for s in sites]
    layers = sorted({s.layer for s in sites})
    per_row = layers_per_row(len(layers))
    layer_x = {layer: (i % per_row) * LAYER_SPACING * spacing for i, layer in enumerate(layers)}
    height: dict[int, float] = {}  # each card's height
    for site, (rows, _) in zip(sites, grids, strict=True):
        height[site.layer] = height.get(site.layer, -SITE_GAP) + rows + SITE_GAP
    row_of = {layer: i // per_row for i, layer in enumerate(layers)}
    row_height: dict[int, float] = {}
    for layer, row in row_of.items():
        row_height[row] = max(row_height.get(row, 0.0), height[layer])
    row_top = [0.0]
    for row in range(1, max(row_of.values(), default=0) + 1):
        row_top.append(row_top[-1] - row_height[row - 1] - ROW_GAP * spacing - 12.0)
    layer_z = {layer: row_top[row] for layer, row in row_of.items()}
    corners = np.zeros((len(sites), 3), np.float32)
    z_next: dict[int, float] = {}
    for i, (site, (rows, cols)) in enumerate(zip(sites, grids, strict=True)):
        z = z_next.get(site.layer, layer_z[site.layer])
        corners[i] = (layer_x[site.layer], -cols / 2.0, z)
        z_next[site.layer] = z - rows - SITE_GAP
    return Layout(
        corners=corners,
        rows=np.array([g[0] for g in grids], np.int64),
        cols=np.array([g[1] for g in grids], np.int64),
        layer_x=layer_x,
        layer_top=0.0,
        layer_z=layer_z,
        per_row=per_row if len(layers) > per_row else 0,
    )
