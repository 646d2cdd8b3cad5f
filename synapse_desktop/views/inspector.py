"""The inspector canvas: the selected site's history and its percentile bands over steps.
Visuals are made once; ``refresh`` pushes only what changed (the layers x steps view of every
site is the overview's).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from vispy import scene
from vispy.visuals.text.text import FontManager

from synapse_desktop.models.history import FIELDS, QUANTILES, Series
from synapse_desktop.models.session import Session
from synapse_desktop.views.colors import THEMES

_LINE_COLORS = {"mean": "#7aa2f7", "rms": "#f7768e", "max": "#e0af68", "frac_above": "#9ece6a"}


class _Plot:
    """A framed view box with one line; its title and value range are written in its corner.

    Every text of the inspector shares one ``FontManager``: VisPy renders each glyph once per
    manager, and glyphs are slow to make with a software renderer.
    """

    def __init__(
        self,
        grid: scene.widgets.Grid,
        row: int,
        col: int,
        title: str,
        color: str,
        text: tuple[float, ...],
        fonts: FontManager,
        col_span: int = 1,
    ) -> None:
        self.title = title
        self.view = grid.add_view(
            row=row, col=col, col_span=col_span, border_color=(0.5, 0.5, 0.5, 0.4)
        )
        self.view.camera = scene.PanZoomCamera()
        self.view.camera.interactive = False
        self.line = scene.visuals.Line(
            pos=np.zeros((2, 2), np.float32), color=color, parent=self.view.scene, width=1.5
        )
        self.label = scene.visuals.Text(
            title,
            color=text,
            font_size=8,
            anchor_x="left",
            anchor_y="bottom",
            pos=(6, 18),
            parent=self.view,
            font_manager=fonts,
        )

    def show(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> None:
        keep = np.isfinite(y)
        x, y = x[keep], y[keep]
        if len(x) < 2:
            self.line.visible = False
            self.label.text = self.title
            return
        self.line.visible = True
        self.line.set_data(pos=np.column_stack([x, y]).astype(np.float32))
        self.view.camera.set_range(x=_span(x), y=_span(y), margin=0.05)
        self.describe(x, y)

    def describe(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> None:
        self.label.text = (
            f"{self.title}  latest {y[-1]:.4g}  range {np.min(y):.4g} .. {np.max(y):.4g}  "
            f"steps {int(x[0])}..{int(x[-1])}"
        )


class _Bands:
    """p5..p95 and p25..p75 as filled meshes, the median as a line."""

    def __init__(self, plot: _Plot) -> None:
        self.plot = plot
        parent = plot.view.scene
        self.outer = scene.visuals.Mesh(color=(0.48, 0.64, 0.97, 0.25), parent=parent)
        self.inner = scene.visuals.Mesh(color=(0.48, 0.64, 0.97, 0.5), parent=parent)

    def show(self, x: npt.NDArray[np.float64], bands: npt.NDArray[np.float32]) -> None:
        keep = np.isfinite(bands).all(axis=1)
        x, bands = x[keep], bands[keep]
        if len(x) < 2:
            for visual in (self.outer, self.inner, self.plot.line):
                visual.visible = False
            return
        for visual, lo, hi in ((self.outer, 0, 4), (self.inner, 1, 3)):
            vertices, faces = _ribbon(x, bands[:, lo], bands[:, hi])
            visual.set_data(vertices=vertices, faces=faces)
            visual.visible = True
        self.plot.show(x, bands[:, 2].astype(np.float64))
        self.plot.view.camera.set_range(x=_span(x), y=_span(bands), margin=0.05)
        self.plot.describe(x, bands[:, 2].astype(np.float64))


class InspectorView:
    """Reads ``session.history`` and ``session.selection``; call ``refresh`` at a few Hz."""

    def __init__(self, session: Session, size: tuple[int, int] = (900, 320)) -> None:
        self.session = session
        theme = THEMES[session.view.values.theme]
        self.canvas = scene.SceneCanvas(keys=None, size=size, show=False, bgcolor=theme.background)
        self.canvas.unfreeze()
        grid = self.canvas.central_widget.add_grid(spacing=4, margin=4)
        text = theme.text
        fonts = FontManager()
        self.plots = {
            name: _Plot(grid, row, col, title, _LINE_COLORS[name], text, fonts)
            for name, row, col, title in (
                ("mean", 0, 0, "mean"),
                ("rms", 0, 1, "rms"),
                ("max", 1, 0, "max"),
                ("frac_above", 1, 1, "fraction above threshold"),
            )
        }
        self.bands = _Bands(
            _Plot(grid, 2, 0, "median, p25..p75, p5..p95", "#c0caf5", text, fonts, col_span=2)
        )
        self._selected_dirty = True
        session.history.changed.connect(self._on_history)
        session.selection.selected_changed.connect(self._on_selected)
        session.view.changed.connect(self._on_view)
        self.refresh()

    @property
    def native(self):  # type: ignore[no-untyped-def]
        return self.canvas.native

    def _on_history(self, indices: npt.NDArray[np.int64]) -> None:
        if self.session.selection.selected in set(indices.tolist()):
            self._selected_dirty = True

    def _on_selected(self, index: int) -> None:
        del index
        self._selected_dirty = True

    def _on_view(self, name: str, value: object) -> None:
        del value
        if name == "theme":
            self.canvas.bgcolor = THEMES[self.session.view.values.theme].background

    def refresh(self) -> None:
        """Push pending changes to the visuals (nothing when nothing changed)."""
        if self._selected_dirty:
            self._selected_dirty = False
            self._show_selected()

    def _show_selected(self) -> None:
        index = self.session.selection.selected
        sites = self.session.topology.sites
        if 0 <= index < len(sites):
            series = self.session.history.series(index)
        else:
            series = Series(
                np.zeros(0, np.int64),
                np.zeros((0, len(FIELDS)), np.float32),
                np.zeros((0, len(QUANTILES)), np.float32),
            )
        x = series.steps.astype(np.float64)
        for name, plot in self.plots.items():
            plot.show(x, series.field(name).astype(np.float64))
        self.bands.show(x, series.bands)

    def close_view(self) -> None:
        """Close the canvas (the name the main window's live panels share)."""
        self.canvas.close()


def _span(values: npt.NDArray[np.floating]) -> tuple[float, float]:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.1 + 1e-6
        return lo - pad, hi + pad
    return lo, hi


def _ribbon(
    x: npt.NDArray[np.float64], lo: npt.NDArray[np.float32], hi: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint32]]:
    """Triangles filling between two curves."""
    n = len(x)
    vertices = np.zeros((2 * n, 3), np.float32)
    vertices[0::2, 0] = vertices[1::2, 0] = x
    vertices[0::2, 1], vertices[1::2, 1] = lo, hi
    i = np.arange(n - 1, dtype=np.uint32) * 2
    faces = np.concatenate([np.stack([i, i + 1, i + 2], 1), np.stack([i + 1, i + 3, i + 2], 1)])
    return vertices, faces
