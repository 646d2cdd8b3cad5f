"""One-way adapters from the session's models to the layer grid's visuals.

Each adapter owns one visual, created once, and turns model changes into ``set_data`` calls.
``Geometry`` (layout and atlas) is shared and replaced when the topology or spacing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

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
_NO_POINTS = np.zeros((0, 4), np.float32)
FADE_SHIFT = 1  # a neuron's brightness halves when its site's next sparse frame comes
_DOUBLINGS = 3.0  # a neuron this many doublings above the threshold is at full intensity


@dataclass(frozen=True, slots=True)
class Geometry:
    layout: Layout
    atlas: Atlas


def make_geometry(session: Session) -> Geometry:
    layout = compute_layout(session.topology.sites, session.view.values.layer_spacing)
    return Geometry(layout, pack(layout.rows, layout.cols))


def intensity(values: npt.NDArray[np.float32], thresholds: npt.NDArray[np.float32]) -> F32:
    """0.05..1 per point: log2 of value over its threshold, full at ``_DOUBLINGS`` doublings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log2(values / thresholds) * (1.0 / _DOUBLINGS)
    out: F32 = np.fmax(np.fmin(ratio, 1.0), 0.05).astype(np.float32)  # fmax/fmin drop NaN
    return out


@dataclass(frozen=True, slots=True)
class Gathered:
    """The points of several sites, flattened: which site, where on its grid, how bright."""

    counts: npt.NDArray[np.int64]  # points per site, in the order of the indices asked for
    site: npt.NDArray[np.int64]
    row: npt.NDArray[np.int64]
    col: npt.NDArray[np.int64]
    value: F32


def gather(points: list[SparsePoints], layout: Layout, indices: npt.NDArray[np.int64]) -> Gathered:
    """Flatten the sites' points in one pass (points outside a site's grid are left out)."""
    chosen = [points[i] for i in indices.tolist()]
    counts = np.fromiter((len(p.indices) for p in chosen), np.int64, len(chosen))
    site = np.repeat(indices, counts)
    neuron = np.concatenate([p.indices for p in chosen]).astype(np.int64) if chosen else site
    values = np.concatenate([p.values for p in chosen]) if chosen else np.zeros(0, np.float32)
    thresholds = np.repeat(
        np.fromiter(
            (p.threshold if p.threshold > 0 else 1.0 for p in chosen), np.float32, len(chosen)
        ),
        counts,
    )
    cols = layout.cols[site]
    row, col = np.divmod(neuron, np.maximum(cols, 1))
    inside = row < layout.rows[site]
    if not inside.all():
        slot = np.repeat(np.arange(len(indices)), counts)
        counts = np.bincount(slot[inside], minlength=len(indices))
        site, row, col = site[inside], row[inside], col[inside]
        values, thresholds = values[inside], thresholds[inside]
    return Gathered(counts, site, row, col, intensity(values, thresholds))


class PlanesAdapter:
    """Tint per site from the chosen statistic; atlas texels from the sparse points."""

    def __init__(self, session: Session, parent: scene.Node) -> None:
        self.session = session
        self.visual = Planes(parent=parent)
        self.visual.order = 0
        self._geometry: Geometry | None = None
        self._image = np.zeros((1, 1), np.uint8)
        self._atlas_dirty = False
        self._faded_step = -1

    def rebuild(self, geometry: Geometry) -> None:
        self._geometry = geometry
        self._image = np.zeros(geometry.atlas.shape, np.uint8)
        self.visual.set_data(geometry.layout.quads(), geometry.atlas.texcoords(), self._colors())
        indices = np.arange(len(geometry.layout))
        self.paint(gather(self.session.sparse.points, geometry.layout, indices), -1)
        self.upload()

    def retint(self) -> None:
        if self._geometry is not None and len(self._geometry.layout):
            self.visual.set_colors(self._colors())

    def paint(self, points: Gathered, step: int) -> None:
        """Light the newest points; the whole atlas fades by half once per new step."""
        if self._geometry is None:
            return
        if step > self._faded_step:
            np.right_shift(self._image, FADE_SHIFT, out=self._image)
            self._faded_step = step
        offsets = self._geometry.atlas.offsets[points.site]
        flat = (offsets[:, 0] + points.row) * self._image.shape[1] + offsets[:, 1] + points.col
        self._image.reshape(-1)[flat] = (points.value * 255).astype(np.uint8)
        self._atlas_dirty = True

    def upload(self) -> None:
        if self._atlas_dirty:
            self.visual.set_atlas(self._image)
            self._atlas_dirty = False

    def _colors(self) -> npt.NDArray[np.float32]:
        view = self.session.view.values
        values = self.session.stats.field(view.statistic)
        normalized = SCALES[view.statistic].normalize(values)
        return map_values(view.colormap, normalized, THEMES[view.theme].empty)


class PointsAdapter:
    """Every above-threshold neuron of every site in one ``GlowPoints`` visual."""

    def __init__(self, session: Session, parent: scene.Node) -> None:
        self.session = session
        self.visual = GlowPoints(parent=parent)
        self.visual.order = 1
        self._layout: Layout | None = None
        self._per_site: list[F32] = []
        self._dirty = False

    def rebuild(self, geometry: Geometry) -> None:
        self._layout = geometry.layout
        self._per_site = [_NO_POINTS] * len(geometry.layout)
        indices = np.arange(len(geometry.layout))
        self.update(indices, gather(self.session.sparse.points, geometry.layout, indices))

    def update(self, indices: npt.NDArray[np.int64], points: Gathered) -> None:
        layout = self._layout
        if layout is None or len(indices) == 0:
            return
        rows = np.empty((len(points.site), 4), np.float32)
        rows[:, :3] = layout.corners[points.site]
        rows[:, 1] += points.col + 0.5
        rows[:, 2] -= points.row + 0.5
        rows[:, 3] = points.value
        for i, part in zip(
            indices.tolist(), np.split(rows, np.cumsum(points.counts)[:-1]), strict=True
        ):
            self._per_site[i] = part
        self._dirty = True

    def upload(self) -> None:
        if self._dirty:
            self._dirty = False
            self.visual.set_data(np.concatenate(self._per_site) if self._per_site else _NO_POINTS)


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
