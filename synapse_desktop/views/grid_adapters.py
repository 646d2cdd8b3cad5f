"""One-way adapters from the session's models to the layer grid's visuals.

Each adapter owns one visual, created once, and turns model changes into ``set_data`` calls.
``Geometry`` (layout and atlas) is shared and replaced when the topology or spacing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from vispy import scene

from synapse_desktop.models.session import Session
from synapse_desktop.models.sparse import SparsePoints
from synapse_desktop.scene.atlas import Atlas, pack
from synapse_desktop.scene.layout import Layout, compute_layout
from synapse_desktop.scene.scales import SCALES
from synapse_desktop.views.colors import THEMES, map_values
from synapse_desktop.views.visuals import GlowPoints, Planes

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
FADE_SHIFT = 1  # a neuron's brightness halves when its site's next sparse frame comes
_DOUBLINGS = 3.0  # a neuron this many doublings above the threshold is at full intensity
_DARK_AFTER = 8  # halvings that take any byte to 0
_MIN_SLOTS = 16  # the smallest slot range of a site in the points buffer
_EXACT_F32 = 1 << 24  # float32 holds every integer below this exactly


@dataclass(frozen=True, slots=True)
class Geometry:
    """Layout and atlas, and per site what placing its points needs, computed once."""

    layout: Layout
    atlas: Atlas
    # (n, 4) float32 per site: the centre of its neuron 0 (corner + half a column - half a
    # row), then 0: a point's row of the points buffer before its cell and intensity are added.
    origins: F32
    # (3, n) float64 per site: grid columns (at least 1), neurons in the grid (rows x columns)
    # and the flat atlas index of its top-left texel.
    sites: npt.NDArray[np.float64]


def make_geometry(session: Session) -> Geometry:
    layout = compute_layout(session.topology.sites, session.view.values.layer_spacing)
    atlas = pack(layout.rows, layout.cols)
    origins = np.zeros((len(layout), 4), np.float32)
    origins[:, :3] = layout.corners + np.array([0.0, 0.5, -0.5], np.float32)  # exact: halves
    sites = np.stack(
        [
            np.maximum(layout.cols, 1),
            layout.rows * layout.cols,
            atlas.offsets[:, 0] * atlas.shape[1] + atlas.offsets[:, 1],
        ]
    ).astype(np.float64)
    return Geometry(layout, atlas, origins, sites)


def intensity(values: npt.NDArray[np.float32], thresholds: npt.NDArray[np.float32]) -> F32:
    """0.05..1 per point: log2 of value over its threshold, full at ``_DOUBLINGS`` doublings.

    Computed in place in ``thresholds`` (returned).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.divide(values, thresholds, out=thresholds)
        np.log2(ratio, out=ratio)
    ratio *= np.float32(1.0 / _DOUBLINGS)
    np.fmin(ratio, 1.0, out=ratio)  # fmax/fmin drop NaN
    return np.fmax(ratio, 0.05, out=ratio)


@dataclass(frozen=True, slots=True)
class Gathered:
    """The points of several sites, flattened in the order of the sites asked for."""

    counts: I64  # points per site (those inside its grid)
    rows: F32  # (n, 4): x, y, z and intensity, ready for the points buffer
    texels: I64  # flat index of each point's atlas texel
    levels: npt.NDArray[np.uint8]  # its atlas byte


def gather(points: list[SparsePoints], geometry: Geometry, indices: I64) -> Gathered:
    """Place the sites' points in one vectorised pass (points outside a site's grid left out).

    A busy tick places tens of thousands of points, so the passes over them are few, in
    place where possible, and in float32 when that is exact (indices and atlas below 2**24).
    """
    chosen = [points[i] for i in indices.tolist()]
    n = len(chosen)
    counts = np.fromiter((len(p.indices) for p in chosen), np.int64, n)
    total = int(counts.sum())
    if not total:
        return Gathered(counts, np.zeros((0, 4), np.float32), counts[:0], np.zeros(0, np.uint8))
    cols, limit, corner = geometry.sites[:, indices]
    neuron = np.concatenate([p.indices for p in chosen])
    some = counts > 0
    largest = np.maximum.reduceat(neuron, (np.cumsum(counts) - counts)[some])
    inside = None
    if (largest >= limit[some]).any():
        inside = neuron < np.repeat(limit, counts)
    texel_count = geometry.atlas.shape[0] * geometry.atlas.shape[1]
    exact = int(largest.max()) + int(cols.max()) < _EXACT_F32 and texel_count < _EXACT_F32
    real: type[np.floating[Any]] = np.float32 if exact else np.float64
    # Row and column of each neuron in its site's grid: floor division, exact in ``real``.
    col: npt.NDArray[np.floating[Any]] = neuron.astype(real)
    per_point = np.repeat(cols.astype(real), counts)
    row: npt.NDArray[np.floating[Any]] = np.divide(col, per_point)
    np.floor(row, out=row)
    col -= np.multiply(row, per_point, out=per_point)
    out = np.repeat(geometry.origins[indices], counts, axis=0)
    out[:, 1] += col
    out[:, 2] -= row
    thresholds = np.fromiter(
        (p.threshold if p.threshold > 0 else 1.0 for p in chosen), np.float32, n
    )
    values = np.concatenate([p.values for p in chosen])
    out[:, 3] = intensity(values, np.repeat(thresholds, counts))
    texels = np.multiply(row, geometry.atlas.shape[1], out=row)
    texels += col
    texels += np.repeat(corner.astype(real), counts)
    if inside is not None:
        counts = np.bincount(np.repeat(np.arange(n), counts)[inside], minlength=n)
        out, texels = out[inside], texels[inside]
    levels = np.multiply(out[:, 3], 255).astype(np.uint8)
    return Gathered(counts, out, texels.astype(np.intp), levels)


class PlanesAdapter:
    """Tint per site from the chosen statistic; atlas texels from the sparse points.

    Every texel halves once per new step. Rather than shifting (and uploading) the whole atlas
    at each step, a shelf of the atlas (a band of rows) is brought up to date only when one of
    its sites gets new points, and only those shelves are uploaded; the shader halves each
    plane's texels by the steps its shelf is behind. The image on the CPU is always what the
    GPU should hold, so uploads queued before a draw need no copy.
    """

    def __init__(self, session: Session, parent: scene.Node) -> None:
        self.session = session
        self.visual = Planes(parent=parent)
        self.visual.order = 0
        self._geometry: Geometry | None = None
        self._image = np.zeros((1, 1), np.uint8)
        self._faded_step = -1
        self._fades = 0  # halvings of the whole atlas so far
        self._shelf_fades = np.zeros(0, np.int64)  # per shelf: the halvings its rows have had
        self._tint = False
        self._band: tuple[int, int] | None = None  # atlas rows to upload
        self._whole = False  # upload the whole atlas

    def rebuild(self, geometry: Geometry) -> None:
        self._geometry = geometry
        self._image = np.zeros(geometry.atlas.shape, np.uint8)
        self._fades = 0
        self._shelf_fades = np.zeros(len(geometry.atlas.shelves), np.int64)
        self.visual.set_data(geometry.layout.quads(), geometry.atlas.texcoords(), self._colors())
        self._tint = False
        indices = np.arange(len(geometry.layout))
        self.paint(indices, gather(self.session.sparse.points, geometry, indices), -1)
        self._whole = True

    def retint(self) -> None:
        """Recolour the planes at the next ``upload``."""
        self._tint = True

    def paint(self, indices: I64, points: Gathered, step: int) -> None:
        """Light the newest points of sites ``indices``; the atlas halves once per new step."""
        geometry = self._geometry
        if geometry is None or not len(indices):
            return
        if step > self._faded_step:
            self._fades += FADE_SHIFT
            self._faded_step = step
        atlas, image = geometry.atlas, self._image
        shelves = np.flatnonzero(np.bincount(atlas.shelf[indices], minlength=len(atlas.shelves)))
        owed = self._fades - self._shelf_fades[shelves]
        for shelf, k in zip(shelves[owed > 0].tolist(), owed[owed > 0].tolist(), strict=True):
            rows = image[atlas.shelves[shelf, 0] : atlas.shelves[shelf, 1]]
            if k >= _DARK_AFTER:
                rows.fill(0)
            else:
                np.right_shift(rows, k, out=rows)
        self._shelf_fades[shelves] = self._fades
        image.reshape(-1)[points.texels] = points.levels
        first, stop = int(atlas.shelves[shelves[0], 0]), int(atlas.shelves[shelves[-1], 1])
        if self._band is not None:
            first, stop = min(first, self._band[0]), max(stop, self._band[1])
        self._band = (first, stop)

    def upload(self) -> bool:
        """Push what changed since the last upload, one call per kind of data; whether any."""
        geometry = self._geometry
        if geometry is None:
            return False
        colors = shifts = None
        if self._tint and len(geometry.layout):
            colors = self._colors()
        if self._whole or self._band is not None:
            if self._whole:
                self.visual.set_atlas(self._image)
            else:
                assert self._band is not None
                first, stop = self._band
                self.visual.set_atlas(self._image[first:stop], first)
            behind = self._fades - self._shelf_fades[geometry.atlas.shelf]
            shifts = np.minimum(behind, _DARK_AFTER)
        if colors is not None or shifts is not None:
            self.visual.set_planes(colors, shifts)
        pushed = self._tint or self._whole or self._band is not None
        self._tint, self._whole, self._band = False, False, None
        return pushed

    def _colors(self) -> npt.NDArray[np.float32]:
        view = self.session.view.values
        values = self.session.stats.field(view.statistic)
        normalized = SCALES[view.statistic].normalize(values)
        return map_values(view.colormap, normalized, THEMES[view.theme].empty)


class PointsAdapter:
    """Every above-threshold neuron of every site in one ``GlowPoints`` visual.

    Site ``i`` owns slots ``i * capacity`` to ``(i + 1) * capacity`` of the visual's buffer, so
    the new points of some sites are written in place and only their slots uploaded. The
    capacity is the smallest power of two (at least ``_MIN_SLOTS``) that has held every site's
    points so far: the trainer's top-k bounds it, so the buffer is laid out again only a few
    times, early on.
    """

    def __init__(self, session: Session, parent: scene.Node) -> None:
        self.session = session
        self.visual = GlowPoints(parent=parent)
        self.visual.order = 1
        self._geometry: Geometry | None = None
        self._capacity = _MIN_SLOTS  # slots per site
        self._count = np.zeros(0, np.int64)  # points of each site
        self._dirty: tuple[int, int] | None = None  # slots to upload

    def rebuild(self, geometry: Geometry) -> None:
        self._geometry = geometry
        self._count = np.zeros(len(geometry.layout), np.int64)
        self._layout_slots()
        indices = np.arange(len(geometry.layout))
        self.update(indices, gather(self.session.sparse.points, geometry, indices))

    def update(self, indices: I64, points: Gathered) -> None:
        """Replace the points of sites ``indices`` (uploaded at the next ``upload``)."""
        if self._geometry is None or len(indices) == 0:
            return
        counts = points.counts
        largest = int(counts.max())
        if largest > self._capacity:
            self._grow(largest)
        cap = self._capacity
        starts, old = indices * cap, self._count[indices]
        total = len(points.rows)
        if total:
            self.visual.write(_ranges(starts, counts, total), points.rows)
        stale = np.maximum(old - counts, 0)  # slots that held points and now hold none
        if stale.any():
            self.visual.forget(_ranges(starts + counts, stale, int(stale.sum())))
        self._count[indices] = counts
        first, stop = int(starts.min()), int(starts.max()) + cap
        if self._dirty is not None:
            first, stop = min(first, self._dirty[0]), max(stop, self._dirty[1])
        self._dirty = (first, stop)

    def _grow(self, largest: int) -> None:
        """Room for ``largest`` points per site; the points held move along."""
        old = self._capacity
        held = np.flatnonzero(self._count)
        moving = self._count[held]
        rows = self.visual.points_at(_ranges(held * old, moving, int(moving.sum())))
        self._capacity = max(_MIN_SLOTS, 1 << (largest - 1).bit_length())
        self._layout_slots()
        self.visual.write(_ranges(held * self._capacity, moving, len(rows)), rows)
        self._dirty = (0, len(self._count) * self._capacity)

    def _layout_slots(self) -> None:
        self.visual.reserve(max(1, len(self._count) * self._capacity))
        self._dirty = None

    def upload(self) -> bool:
        """Push the slots written since the last upload; whether there were any."""
        if self._dirty is None:
            return False
        first, stop = self._dirty
        self._dirty = None
        self.visual.commit(first, stop, int(self._count.sum()))
        return True


def _ranges(starts: I64, lengths: I64, total: int) -> I64:
    """The concatenation of ``arange(s, s + n)`` for each start ``s`` and length ``n``."""
    ends = np.cumsum(lengths)
    out: I64 = np.repeat(starts - (ends - lengths), lengths) + np.arange(total)
    return out


class LabelsAdapter:
    """Layer numbers above the cards and site names beside the first card: one Text visual."""

    def __init__(self, session: Session, parent: scene.Node) -> None:
        self.session = session
        self.visual = scene.visuals.Text(
            parent=parent, font_size=9, anchor_x="center", anchor_y="bottom", bold=False
        )
        self.visual.order = 2

    def rebuild(self, geometry: Geometry) -> None:
        layout, sites = geometry.layout, self.session.topology.sites
        texts: list[str] = []
        positions: list[tuple[float, float, float]] = []
        step = max(1, len(layout.layer_x) // 16)
        for n, (layer, x) in enumerate(sorted(layout.layer_x.items())):
            if n % step == 0 or n == len(layout.layer_x) - 1:
                texts.append(str(layer))
                positions.append((x, 0.0, layout.layer_top + 6.0))
        first = min(layout.layer_x, default=None)
        for site in sites:
            if site.layer == first:
                corner = layout.corners[site.index]
                middle = corner[2] - layout.rows[site.index] / 2.0
                texts.append(site.kind_name)
                positions.append((float(corner[0]), float(corner[1]) - 6.0, float(middle)))
        self.visual.text = texts or [""]
        self.visual.pos = np.array(positions or [(0.0, 0.0, 0.0)], np.float32)
        self.recolor()

    def recolor(self) -> None:
        self.visual.color = THEMES[self.session.view.values.theme].text


class HighlightAdapter:
    """Outlines of the hovered and the selected plane: one Line visual of segments."""

    def __init__(self, session: Session, parent: scene.Node) -> None:
        self.session = session
        self.visual = scene.visuals.Line(parent=parent, connect="segments", width=2.0)
        self.visual.order = 3
        self._layout: Layout | None = None

    def rebuild(self, geometry: Geometry) -> None:
        self._layout = geometry.layout
        self.update()

    def update(self) -> None:
        layout = self._layout
        theme = THEMES[self.session.view.values.theme]
        selection = self.session.selection
        segments, colors = [], []
        if layout is not None:
            quads = layout.quads()
            for index, color in (
                (selection.hovered, theme.hover),
                (selection.selected, theme.selected),
            ):
                if 0 <= index < len(layout):
                    q = quads[index]
                    segments.append(q[[0, 1, 1, 2, 2, 3, 3, 0]])
                    colors.append(np.tile(color, (8, 1)))
        if segments:
            self.visual.set_data(
                pos=np.concatenate(segments), color=np.concatenate(colors).astype(np.float32)
            )
            self.visual.visible = True
        else:
            self.visual.visible = False
