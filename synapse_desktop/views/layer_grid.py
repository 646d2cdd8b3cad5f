"""The 3D layer grid: a VisPy canvas, an auto-framing turntable camera, picking, and adapters.

Models change -> adapters mark work; ``refresh`` (after each batch of model changes, on the
session's ``flushed``, or after a view setting changed) pushes it to the visuals, one
``set_data`` per kind of data and visual.

With ``spread_ms`` (the app uses one display frame), the grid's share of a batch (placing the
new points, the atlas, the tint, the uploads) runs that much later on a timer, so that a
training step's decoding and model updates and the grid's work fall in two displayed frames
instead of one; several batches in between are placed together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from vispy import app, gloo, scene
from vispy.color import Color

from synapse_desktop.models.session import Session
from synapse_desktop.scene.picking import Hit, pick
from synapse_desktop.views.clicks import ClickFilter
from synapse_desktop.views.colors import THEMES
from synapse_desktop.views.grid_adapters import (
    Geometry,
    HighlightAdapter,
    LabelsAdapter,
    PlanesAdapter,
    PointsAdapter,
    SparseBatch,
    make_geometry,
    place,
)
from synapse_desktop.views.visuals import KEEP_ALL, Bloom

FRAME_MS = 16.0  # one display frame: the app's ``spread_ms``
HOME_AZIMUTH = -35.0
HOME_ELEVATION = 12.0
FOV = 30.0
EMPTY_NOTE = (
    "No model yet: the grid of its layers appears here once a trainer streams.\n"
    "File > Connect (Ctrl+K) to a trainer that called synapse_probe.attach(model),\n"
    "or run `synapse sim` (a simulated run) or `synapse demo` (a small real one).\n"
    "Help > Quick tour (F1) explains what you will see."
)
FILL = 0.9  # the home view's share of the canvas taken by the model's box
FIT_ROUNDS = 3


class GridCanvas(scene.SceneCanvas):  # type: ignore[misc]
    """A SceneCanvas that re-enables depth and colour writes before each clear, and draws the
    scene through the bloom when ``glow`` is on.

    GL state outlives a draw: the points turn depth writes off (and with glow, the other
    visuals alpha writes), and a clear with writes off keeps last frame's values.
    """

    glow = False
    bloom: Bloom | None = None

    def _draw_scene(self, bgcolor=None):  # type: ignore[no-untyped-def]
        gloo.set_depth_mask(True)
        gloo.set_color_mask(True, True, True, True)
        if not self.glow or self.bloom is None:
            super()._draw_scene(bgcolor=bgcolor)
            return
        # The scene into a texture of the current target's size, mapped like the target (a
        # region of the canvas for ``render``), then the bloom's passes and the composite.
        _, offset, csize = self._current_framebuffer()
        x, y, width, height = self._vp_stack[-1] if self._vp_stack else (0, 0, *self.physical_size)
        viewport = (int(x), int(y), int(width), int(height))
        fbo = self.bloom.prepare((viewport[3], viewport[2]))
        background = Color(self._bgcolor if bgcolor is None else bgcolor).rgba
        self.push_fbo(fbo, offset, csize)
        try:
            # Cleared transparent: the alpha channel holds the points' light alone.
            super()._draw_scene(bgcolor=(*background[:3], 0.0))
        finally:
            self.pop_fbo()
            # The clear colour outlives the draw, and the Qt backend clears the widget's alpha
            # with it after each frame: transparent, the widget would show nothing.
            self.context.set_clear_color(background)
        self.bloom.finish(viewport)


class LayerGrid:
    """Owns the canvas and its visuals; reads the session, writes only ``session.selection``."""

    def __init__(
        self,
        session: Session,
        size: tuple[int, int] = (1000, 700),
        *,
        spread_ms: float | None = None,
    ) -> None:
        self.session = session
        self._pending = np.zeros(0, bool)  # per site: new points not placed yet (spread)
        self._timer: app.Timer | None = None
        if spread_ms is not None:
            self._timer = app.Timer(
                interval=spread_ms / 1000.0, connect=self._on_timer, start=False
            )
        theme = THEMES[session.view.values.theme]
        self.canvas = GridCanvas(keys=None, size=size, show=False, bgcolor=theme.background)
        self.canvas.unfreeze()
        self.canvas.bloom = Bloom()
        self.view = self.canvas.central_widget.add_view()
        self.camera = scene.TurntableCamera(fov=FOV, up="+z")
        self.view.camera = self.camera
        root = self.view.scene
        self.planes = PlanesAdapter(session, root)
        self.points = PointsAdapter(session, root)
        self.labels = LabelsAdapter(session, root)
        self.highlight = HighlightAdapter(session, root)
        self.geometry: Geometry = make_geometry(session)
        self.homed = True  # the camera frames the model (until the user moves it)
        self.isolated = -1  # the layer shown alone with its neighbours (-1: all)
        self.empty_note = scene.visuals.Text(
            EMPTY_NOTE, parent=self.canvas.scene, font_size=11, anchor_x="center"
        )
        self._apply_theme()
        self._rebuild()
        self.reset_camera()

        session.topology.changed.connect(self._on_topology)
        session.stats.changed.connect(self._on_stats)
        session.ranks.updated.connect(self._on_ranks)
        session.skew.changed.connect(self._on_ranks)
        session.sparse.changed.connect(self._on_sparse)
        session.data_reset.connect(self._on_data_reset)
        session.flushed.connect(self._on_flushed)
        session.view.changed.connect(self._on_view)
        session.selection.hovered_changed.connect(self._on_selection)
        session.selection.selected_changed.connect(self._on_selection)
        self.canvas.events.mouse_move.connect(self._on_mouse_move)
        self.canvas.events.resize.connect(self._on_resize)
        for moved in (self.canvas.events.mouse_press, self.canvas.events.mouse_wheel):
            moved.connect(self._on_user_camera)
        self.clicks = ClickFilter(self.canvas, self._on_click)
        self.canvas.events.mouse_double_click.connect(self._on_double_click)

    @property
    def native(self) -> Any:
        """The Qt widget to put in a layout."""
        return self.canvas.native

    # -- camera ---------------------------------------------------------------------------------

    def reset_camera(self) -> None:
        """Home angles, framed so that every plane is in view and the model is centred; kept
        framed through canvas resizes until the user moves the camera."""
        self.camera.azimuth = HOME_AZIMUTH
        self.camera.elevation = HOME_ELEVATION
        self._frame(None)

    def _frame(self, sites: npt.NDArray[np.bool_] | None) -> None:
        """Frame the planes of ``sites`` (None: all of them)."""
        layout = self.geometry.layout
        quads = layout.quads().reshape(len(layout), 4, 3)
        if sites is not None:
            quads = quads[sites]
        if len(quads):
            points = quads.reshape(-1, 3)
            lo, hi = points.min(axis=0), points.max(axis=0)
        else:
            lo, hi = np.full(3, -50.0), np.full(3, 50.0)
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        self.camera.center = tuple((lo + hi) / 2)
        self.camera.scale_factor = float(np.linalg.norm(hi - lo)) or 100.0
        box = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        for _ in range(FIT_ROUNDS):  # perspective: the span shrinks a little less than the scale
            corners = np.array([self.project(p) for p in box])
            size = np.asarray(self.canvas.size, np.float64)
            span = float(np.max((corners.max(axis=0) - corners.min(axis=0)) / size))
            if not np.isfinite(span) or span <= 0:
                break
            self.camera.scale_factor *= span / FILL
            corners = np.array([self.project(p) for p in box])
            middle = (corners.min(axis=0) + corners.max(axis=0)) / 2
            shift = self._unproject(middle, self.camera.center) - self._unproject(
                size / 2, self.camera.center
            )
            self.camera.center = tuple(np.asarray(self.camera.center, np.float64) + shift)
        self.homed = True

    def isolate(self, layer: int) -> None:
        """Show only ``layer``'s block and its neighbours in its row of cards, framed; the
        rest is not drawn until ``show_all``."""
        layout = self.geometry.layout
        if layer not in layout.layer_x:
            return
        layers = sorted(layout.layer_x)
        at = layers.index(layer)
        top = layout.top_of(layer)
        near = [n for n in layers[max(0, at - 1) : at + 2] if layout.top_of(n) == top]
        xs = [layout.layer_x[n] for n in near]
        inside = np.array([s.layer in near for s in self.session.topology.sites])
        bottom = float(layout.quads()[inside][:, :, 2].min()) if inside.any() else top - 1.0
        keep = (min(xs) - 1.0, max(xs) + 1.0, bottom - 1.0, top + 1.0)
        self.isolated = layer
        self.planes.visual.set_keep(keep)
        self.points.visual.set_keep(keep)
        self.labels.only = set(near)
        self.labels.rebuild(self.geometry)
        self._frame(inside)
        self.canvas.update()

    def show_all(self) -> None:
        """Draw every block again (after ``isolate``), framed."""
        self.isolated = -1
        self.planes.visual.set_keep(KEEP_ALL)
        self.points.visual.set_keep(KEEP_ALL)
        self.labels.only = set()
        self.labels.rebuild(self.geometry)
        self.reset_camera()
        self.canvas.update()

    def _unproject(self, pixel: npt.ArrayLike, at: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The scene point under canvas ``pixel`` at the depth of scene point ``at``."""
        transform = self.view.scene.transform
        depth = np.asarray(transform.map([*np.asarray(at, float), 1.0]), np.float64)
        point = np.asarray(transform.imap([*np.asarray(pixel, float), depth[2] / depth[3], 1.0]))
        world: npt.NDArray[np.float64] = point[:3] / point[3]
        return world

    def _place_note(self) -> None:
        width, height = self.canvas.size
        self.empty_note.pos = (width / 2, height / 2)

    def _on_resize(self, event: Any = None) -> None:
        self._place_note()
        if self.homed and self.isolated < 0:
            self.reset_camera()

    def _on_user_camera(self, event: Any = None) -> None:
        self.homed = False

    # -- model changes --------------------------------------------------------------------------

    def _rebuild(self) -> None:
        self.empty_note.visible = not len(self.session.topology)
        self._place_note()
        self.geometry = make_geometry(self.session)
        for adapter in (self.planes, self.points, self.labels, self.highlight):
            adapter.rebuild(self.geometry)
        everyone = np.arange(len(self.geometry.layout))
        self._pending = np.zeros(len(everyone), bool)
        batch = SparseBatch.of(self.session.sparse.points, everyone)
        place(batch, self.geometry, self.planes, self.points, fade=False)
        self.refresh()
        self.canvas.update()

    def _on_topology(self) -> None:
        self._rebuild()
        self.reset_camera()

    def _on_stats(self, indices: npt.NDArray[np.int64]) -> None:
        del indices  # a tint is cheap to recompute for every site
        self.planes.retint()

    def _on_ranks(self) -> None:
        if self.session.view.values.rank_spread:  # another rank's data moved the spread
            self.planes.retint()

    def _on_sparse(self, indices: npt.NDArray[np.int64]) -> None:
        if self._timer is not None:
            self._pending[indices] = True
            return
        batch = SparseBatch.of(self.session.sparse.points, indices)
        place(batch, self.geometry, self.planes, self.points)

    def _on_flushed(self) -> None:
        if self._timer is None:
            self.refresh()
        elif not self._timer.running:
            self._timer.start()

    def _on_timer(self, event: Any = None) -> None:
        del event
        assert self._timer is not None
        # Stopped here, not by its iteration count (VisPy stops it one interval after its last
        # event, so a batch in between would not restart it and would wait for the next one).
        self._timer.stop()
        self.apply_pending()

    def apply_pending(self) -> None:
        """Place the points that came since the last time and push everything to the visuals
        (what the spread timer does; at once without ``spread_ms``)."""
        if self._pending.any():
            indices = np.flatnonzero(self._pending)
            self._pending[:] = False
            batch = SparseBatch.of(self.session.sparse.points, indices)
            place(batch, self.geometry, self.planes, self.points)
        self.refresh()

    def _on_data_reset(self) -> None:
        """A new training run: nothing of the old one's activity stays on screen."""
        self.planes.clear()
        self.points.clear()

    def _on_view(self, name: str, value: object) -> None:
        if name in ("statistic", "colormap", "rank_spread"):
            self.planes.retint()
            self.refresh()
        elif name == "theme":
            self._apply_theme()
            self.planes.retint()
            self.refresh()
            self.labels.recolor()
            self.highlight.update()
        elif name == "glow":
            self._apply_glow()
        elif name == "points":
            self.points.visual.visible = bool(value)
            self._apply_glow()
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
        self.empty_note.color = theme.text
        self.points.visual.set_color(theme.points)
        assert self.canvas.bloom is not None
        self.canvas.bloom.set_color(theme.points, additive=theme.additive)
        self._apply_glow()

    def _apply_glow(self) -> None:
        """Glow on: the canvas draws through the bloom, whose light is what the points write
        to alpha, so the other visuals leave alpha alone and the points' alpha adds up. With
        the points hidden there is nothing to glow: no bloom passes."""
        values = self.session.view.values
        on = values.glow and values.points
        theme = THEMES[values.theme]
        self.canvas.glow = on
        blend = ("one", "one") if theme.additive else ("src_alpha", "one_minus_src_alpha")
        self.points.visual.update_gl_state(
            blend_func=(*blend, "one", "one") if on else blend,
            color_mask=(True, True, True, True),
        )
        for visual in (self.planes.visual, self.labels.visual, self.highlight.visual):
            visual.update_gl_state(color_mask=(True, True, True, not on))

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

    def _on_click(self, where: tuple[float, float]) -> None:
        hit = self.pick(*where)
        self.session.selection.select(hit.index if hit else -1)

    def _on_double_click(self, event: Any) -> None:
        """Double-click a plane: its block alone with its neighbours; elsewhere: all again."""
        hit = self.pick(float(event.pos[0]), float(event.pos[1]))
        sites = self.session.topology.sites
        if hit is not None and 0 <= hit.index < len(sites):
            self.isolate(sites[hit.index].layer)
        elif self.isolated >= 0:
            self.show_all()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.canvas.close()
