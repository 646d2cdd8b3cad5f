"""The 3D layer grid: a VisPy canvas, an auto-framing turntable camera, picking, and adapters.

Models change -> adapters mark work; ``refresh`` (after each batch of model changes, on the
session's ``flushed``, or after a view setting changed) pushes it to the visuals, one
``set_data`` per kind of data and visual.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from vispy import gloo, scene

from synapse_desktop.models.session import Session
from synapse_desktop.scene.picking import Hit, pick
from synapse_desktop.views.colors import THEMES
from synapse_desktop.views.grid_adapters import (
    Geometry,
    HighlightAdapter,
    LabelsAdapter,
    PlanesAdapter,
    PointsAdapter,
    gather,
    make_geometry,
)

HOME_AZIMUTH = -35.0
HOME_ELEVATION = 12.0
FOV = 30.0
_CLICK_SLOP_PX = 4


class GridCanvas(scene.SceneCanvas):  # type: ignore[misc]
    """A SceneCanvas that re-enables depth writes before each clear.

    GL state outlives a draw: the glow points turn depth writes off, and a clear with depth
    writes off keeps last frame's depths, which would hide this frame's planes.
    """

    def _draw_scene(self, bgcolor=None):  # type: ignore[no-untyped-def]
        gloo.set_depth_mask(True)
        super()._draw_scene(bgcolor=bgcolor)


class LayerGrid:
    """Owns the canvas and its visuals; reads the session, writes only ``session.selection``."""

    def __init__(self, session: Session, size: tuple[int, int] = (1000, 700)) -> None:
        self.session = session
        theme = THEMES[session.view.values.theme]
        self.canvas = GridCanvas(keys=None, size=size, show=False, bgcolor=theme.background)
        self.canvas.unfreeze()
        self.view = self.canvas.central_widget.add_view()
        self.camera = scene.TurntableCamera(fov=FOV, up="+z")
        self.view.camera = self.camera
        root = self.view.scene
        self.planes = PlanesAdapter(session, root)
        self.points = PointsAdapter(session, root)
        self.labels = LabelsAdapter(session, root)
        self.highlight = HighlightAdapter(session, root)
        self.geometry: Geometry = make_geometry(session)
        self._press: tuple[float, float] | None = None
        self._apply_theme()
        self._rebuild()
        self.reset_camera()

        session.topology.changed.connect(self._on_topology)
        session.stats.changed.connect(self._on_stats)
        session.sparse.changed.connect(self._on_sparse)
        session.flushed.connect(self.refresh)
        session.view.changed.connect(self._on_view)
        session.selection.hovered_changed.connect(self._on_selection)
        session.selection.selected_changed.connect(self._on_selection)
        self.canvas.events.mouse_move.connect(self._on_mouse_move)
        self.canvas.events.mouse_press.connect(self._on_mouse_press)
        self.canvas.events.mouse_release.connect(self._on_mouse_release)

    @property
    def native(self) -> Any:
        """The Qt widget to put in a layout."""
        return self.canvas.native

    # -- camera ---------------------------------------------------------------------------------

    def reset_camera(self) -> None:
        """Home angles, framed so that every plane is in view."""
        self.camera.azimuth = HOME_AZIMUTH
        self.camera.elevation = HOME_ELEVATION
        lo, hi = self.geometry.layout.bounds
        if not len(self.geometry.layout):
            lo, hi = np.full(3, -50.0), np.full(3, 50.0)
        margin = 0.04 * float(np.max(hi - lo))
        self.camera.set_range(
            x=(lo[0] - margin, hi[0] + margin),
            y=(lo[1] - margin, hi[1] + margin),
            z=(lo[2] - margin, hi[2] + margin),
            margin=0.0,
        )

    # -- model changes --------------------------------------------------------------------------

    def _rebuild(self) -> None:
        self.geometry = make_geometry(self.session)
        for adapter in (self.planes, self.points, self.labels, self.highlight):
            adapter.rebuild(self.geometry)
        self.refresh()
        self.canvas.update()

    def _on_topology(self) -> None:
        self._rebuild()
        self.reset_camera()

    def _on_stats(self, indices: npt.NDArray[np.int64]) -> None:
        del indices  # a tint is cheap to recompute for every site
        self.planes.retint()

    def _on_sparse(self, indices: npt.NDArray[np.int64]) -> None:
        sparse = self.session.sparse.points
        points = gather(sparse, self.geometry, indices)
        newest = max(sparse[i].step for i in indices.tolist())
        self.planes.paint(indices, points, newest)
        self.points.update(indices, points)

    def _on_view(self, name: str, value: object) -> None:
        if name in ("statistic", "colormap"):
            self.planes.retint()
            self.refresh()
        elif name == "theme":
            self._apply_theme()
            self.planes.retint()
            self.refresh()
            self.labels.recolor()
            self.highlight.update()
        elif name == "glow":
            self.points.visual.set_glow(bool(value))
        elif name == "points":
            self.points.visual.visible = bool(value)
        elif name == "layer_spacing":
            self._rebuild()
            self.reset_camera()
        self.canvas.update()

    def _on_selection(self, index: int) -> None:
        del index
        self.highlight.update()
        self.canvas.update()

    def _apply_theme(self) -> None:
        theme = THEMES[self.session.view.values.theme]
        self.canvas.bgcolor = theme.background
        self.points.visual.set_color(theme.points)
        blend = ("one", "one") if theme.additive else ("src_alpha", "one_minus_src_alpha")
        self.points.visual.update_gl_state(blend_func=blend)

    def refresh(self) -> None:
        """Push the pending changes to the visuals; ask for a redraw if there were any."""
        planes = self.planes.upload()
        if self.points.upload() or planes:
            self.canvas.update()

    # -- picking --------------------------------------------------------------------------------

    def ray(self, x: float, y: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Origin and direction in scene coordinates of the ray through canvas pixel (x, y)."""
        transform = self.view.scene.transform
        near = np.asarray(transform.imap([x, y, -1.0, 1.0]), np.float64)
        far = np.asarray(transform.imap([x, y, 1.0, 1.0]), np.float64)
        near, far = near[:3] / near[3], far[:3] / far[3]
        return near, far - near

    def project(self, point: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Canvas pixel (x, y) of a scene point."""
        p = np.asarray(self.view.scene.transform.map([*np.asarray(point, float), 1.0]), float)
        xy: npt.NDArray[np.float64] = p[:2] / p[3]
        return xy

    def pick(self, x: float, y: float) -> Hit | None:
        origin, direction = self.ray(x, y)
        return pick(self.geometry.layout, origin, direction)

    def _on_mouse_move(self, event: Any) -> None:
        if event.is_dragging:
            return
        hit = self.pick(*event.pos[:2])
        self.session.selection.hover(hit.index if hit else -1, hit.neuron if hit else -1)

    def _on_mouse_press(self, event: Any) -> None:
        self._press = (float(event.pos[0]), float(event.pos[1]))

    def _on_mouse_release(self, event: Any) -> None:
        if self._press is None or event.button != 1:
            return
        moved = np.hypot(event.pos[0] - self._press[0], event.pos[1] - self._press[1])
        self._press = None
        if moved <= _CLICK_SLOP_PX:
            hit = self.pick(*event.pos[:2])
            self.session.selection.select(hit.index if hit else -1)

    def close(self) -> None:
        self.canvas.close()
