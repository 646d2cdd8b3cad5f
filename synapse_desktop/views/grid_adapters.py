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
from synapse_desktop.views.colors import THEMES, tint
from synapse_desktop.views.visuals import GlowPoints, Planes
from synapse_native.grid import GRID_SITE, place_points

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
FADE_SHIFT = 1  # a neuron's brightness halves when its site's next sparse frame comes
_DARK_AFTER = 8  # halvings that take any byte to 0
_MIN_SLOTS = 16  # the smallest slot range of a site in the points buffer
_NO_INDICES = np.zeros(0, np.uint32)
_NO_VALUES = np.zeros(0, np.float32)


@dataclass(frozen=True, slots=True)
class Geometry:
    """Layout and atlas, and per site what placing its points needs, computed once."""

    layout: Layout
    atlas: Atlas
    # A ``GRID_SITE`` row per site: the centre of its neuron 0 (corner + half a column - half a
    # row; the points' shader places neurons from it), its grid columns (at least 1) and
    # neurons (rows x columns), and the flat atlas index of its top-left texel.
    table: npt.NDArray[np.void]


def make_geometry(session: Session) -> Geometry:
    layout = compute_layout(session.topology.sites, session.view.values.layer_spacing)
    atlas = pack(layout.rows, layout.cols)
    table = np.zeros(len(layout), GRID_SITE)
    table["origin"] = layout.corners + np.array([0.0, 0.5, -0.5], np.float32)  # exact: halves
    table["cols"] = np.maximum(layout.cols, 1)
    table["limit"] = layout.rows * layout.cols
    table["corner"] = atlas.offsets[:, 0] * atlas.shape[1] + atlas.offsets[:, 1]
    return Geometry(layout, atlas, table)


@dataclass(frozen=True, slots=True)
class SparseBatch:
    """The newest points of some sites, concatenated in the order of the sites."""

    sites: I64
    counts: I64  # points per site
    thresholds: F32  # each site's threshold (1 where it is not positive)
    indices: npt.NDArray[np.uint32]
    values: F32
    step: int  # the newest step among them (-1: none)

    @staticmethod
    def of(points: list[SparsePoints], sites: I64) -> SparseBatch:
        if not len(sites):
            return SparseBatch(sites, sites, _NO_VALUES, _NO_INDICES, _NO_VALUES, -1)
        steps, given, _, indices, values = zip(*[points[i] for i in sites.tolist()], strict=True)
        counts = np.fromiter(map(len, indices), np.int64, len(sites))
        thresholds = np.array(given, np.float32)
        thresholds[~(thresholds > 0)] = 1.0  # not positive, or NaN
        total = int(counts.sum())
        return SparseBatch(
            sites,
            counts,
            thresholds,
            _flat(indices, np.uint32, total),
            _flat(values, np.float32, total),
            max(steps),
        )


def _flat(arrays: tuple[npt.NDArray[Any], ...], dtype: type[Any], total: int) -> npt.NDArray[Any]:
    """The arrays end to end as one of ``dtype``: joined as bytes (faster than numpy's
    concatenate for a hundred small arrays) when each already is ``dtype``, as the codec's are."""
    if not total:
        return np.zeros(0, dtype)
    try:
        flat: npt.NDArray[Any] = np.frombuffer(b"".join(arrays), dtype)  # type: ignore[arg-type]
        if len(flat) == total and all(a.dtype == dtype for a in arrays):
            return flat
    except (BufferError, TypeError):  # not contiguous
        pass
    return np.concatenate(arrays).astype(dtype, copy=False)


def place(
    batch: SparseBatch,
    geometry: Geometry,
    planes: PlanesAdapter,
    points: PointsAdapter,
    *,
    fade: bool = True,
) -> None:
    """The batch's points into the points buffer and their brightness into the atlas, in one
    native pass (``synapse_native.grid.place_points``); with ``fade``, a newer step than the
    atlas has seen halves it first."""
    if not len(batch.sites):
        return
    planes.fade(batch.sites, batch.step if fade else -1)
    points.make_room(batch.sites, batch.counts)
    place_points(
        geometry.table,
        batch.sites,
        batch.counts,
        batch.thresholds,
        batch.indices,
        batch.values,
        points.rows,
        points.held,
        planes.image,
        planes.site_fades,
        planes.fades,
    )


class PlanesAdapter:
    """Tint per site from the chosen statistic; atlas texels from the sparse points.

    Every texel halves once per new step. Rather than shifting (and uploading) the whole atlas
    at each step, a site's block of the atlas is brought up to date (by the native placement)
    only when the site gets new points, and only the rows of such sites are uploaded; the
    shader halves each plane's texels by the steps its block is behind. The image on the CPU
    is always what the GPU should hold, so uploads queued before a draw need no copy.
    """

    def __init__(self, session: Session, parent: scene.Node) -> None:
        self.session = session
        self.visual = Planes(parent=parent)
        self.visual.order = 0
        self._geometry: Geometry | None = None
        self._image = np.zeros((1, 1), np.uint8)
        self._faded_step = -1
        self._fades = 0  # halvings of the whole atlas so far
        self._site_fades = np.zeros(0, np.int64)  # per site: the halvings its block has had
        self._tint = False
        self._band: tuple[int, int] | None = None  # atlas rows to upload
        self._whole = False  # upload the whole atlas

    @property
    def image(self) -> npt.NDArray[np.uint8]:
        """The atlas as the GPU should hold it (the placement writes the points' texels)."""
        return self._image

    @property
    def fades(self) -> int:
        """Halvings of the whole atlas so far (one per new step)."""
        return self._fades

    @property
    def site_fades(self) -> I64:
        """Per site, the halvings its block has had (the placement updates it in place)."""
        return self._site_fades

    def rebuild(self, geometry: Geometry) -> None:
        """A new layout and an empty atlas (the grid places every site's points next)."""
        self._geometry = geometry
        self._image = np.zeros(geometry.atlas.shape, np.uint8)
        self._fades = 0
        self._site_fades = np.zeros(len(geometry.layout), np.int64)
        self.visual.set_data(geometry.layout.quads(), geometry.atlas.texcoords(), self._colors())
        self._tint = False
        self._band = None
        self._whole = True

    def clear(self) -> None:
        """Darken every neuron and start counting steps again (a new training run)."""
        self._image.fill(0)
        self._faded_step = -1
        self._fades = 0
        self._site_fades[:] = 0
        self._band = None
        self._whole = True

    def retint(self) -> None:
        """Recolour the planes at the next ``upload``."""
        self._tint = True

    def fade(self, indices: I64, step: int) -> None:
        """Before new points of sites ``indices`` at ``step``: a new step halves the atlas once
        more, and the rows of these sites are marked for upload."""
        geometry = self._geometry
        if geometry is None or not len(indices):
            return
        if step > self._faded_step:
            self._fades += FADE_SHIFT
            self._faded_step = step
        top = geometry.atlas.offsets[indices, 0]
        first, stop = int(top.min()), int((top + geometry.atlas.rows[indices]).max())
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
            shifts = np.minimum(self._fades - self._site_fades, _DARK_AFTER)
        if colors is not None or shifts is not None:
            self.visual.set_planes(colors, shifts)
        pushed = self._tint or self._whole or self._band is not None
        self._tint, self._whole, self._band = False, False, None
        return pushed

    def _colors(self) -> npt.NDArray[np.float32]:
        view = self.session.view.values
        scale, ranks = SCALES[view.statistic], self.session.ranks
        if view.rank_spread and self.session.skew.active:  # a job stream: its rank skew
            normalized = self.session.skew.colour_values()
        elif view.rank_spread and len(ranks) > 1:
            normalized = scale.spread(ranks.by_rank(view.statistic))
        else:
            normalized = scale.normalize(self.session.stats.field(view.statistic))
        return tint(view.colormap, normalized, THEMES[view.theme].empty)


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

    @property
    def rows(self) -> F32:
        """The points buffer as (slots, 2) float32 rows: neuron index, intensity (-1: unused)."""
        rows: F32 = self.visual.rows
        return rows

    @property
    def held(self) -> I64:
        """Points of each site (the placement updates it in place)."""
        return self._count

    def rebuild(self, geometry: Geometry) -> None:
        """A new layout with no points (the grid places every site's points next)."""
        self._geometry = geometry
        self._count = np.zeros(len(geometry.layout), np.int64)
        self.visual.set_sites(geometry.table["origin"], geometry.table["cols"])
        self._layout_slots()

    def clear(self) -> None:
        """Forget every point (a new training run); the slot layout stays."""
        self._layout_slots()
        self._count[:] = 0

    def make_room(self, indices: I64, counts: I64) -> None:
        """Before sites ``indices`` get ``counts`` points: grow the slot ranges if one is too
        small, and mark their slots for the next ``upload``."""
        if self._geometry is None or len(indices) == 0:
            return
        largest = int(counts.max())
        if largest > self._capacity:
            self._grow(largest)
        cap = self._capacity
        first, stop = int(indices.min()) * cap, (int(indices.max()) + 1) * cap
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
        self.visual.reserve(len(self._count), self._capacity)
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


MAX_LABELS = 16  # layer numbers a row of cards


def label_step(per_row: int) -> int:
    """Label every 1st, 2nd, 4th, 8th ... layer: the finest that keeps a row of cards to
    ``MAX_LABELS`` numbers, so they never run into each other."""
    step = 1
    while per_row > step * MAX_LABELS:
        step *= 2
    return step


class LabelsAdapter:
    """Layer numbers above the cards and site names beside the first card: one Text visual."""

    def __init__(self, session: Session, parent: scene.Node) -> None:
        self.session = session
        self.visual = scene.visuals.Text(
            parent=parent, font_size=9, anchor_x="center", anchor_y="bottom", bold=False
        )
        self.visual.order = 2
        self.only: set[int] = set()  # an isolated block and its neighbours (empty: all)

    def rebuild(self, geometry: Geometry) -> None:
        layout, sites = geometry.layout, self.session.topology.sites
        texts: list[str] = []
        positions: list[tuple[float, float, float]] = []
        step = 1 if self.only else label_step(layout.per_row or len(layout.layer_x))
        for n, (layer, x) in enumerate(sorted(layout.layer_x.items())):
            if n % step == 0 and (not self.only or layer in self.only):
                texts.append(str(layer))
                positions.append((x, 0.0, layout.top_of(layer) + 6.0))
        first = min(self.only or layout.layer_x, default=None)
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
