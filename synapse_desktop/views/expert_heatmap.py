"""The experts canvas: how an MoE router spreads tokens over its experts (``session.routing``).

Three plots:

- top left, **layer x expert**: each expert's share of its layer's assignments, averaged over
  the last ``RECENT_STEPS`` routing steps, as a multiple of the balanced share ``1 / E``
  (colour 0 .. 2x; an expert that gets nothing is the map's darkest colour);
- top right, **CV per layer**: the coefficient of variation of the counts across the layer's
  experts at the newest step (0: balanced), as bars on the same rows;
- bottom, **expert x step** of one layer (``shown_layer``): the same share over time, time
  across, experts down; it follows the newest steps like the overview (pan or zoom to stop,
  double-click to follow again).

The colour scale is drawn under the top plot. A click on a row of the top plots selects the
layer's MLP site; the bottom plot shows the selected layer whenever it is an MoE layer. A
one-way adapter: it reads the session and writes only ``session.selection``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from vispy import scene
from vispy.geometry import Rect
from vispy.visuals.text.text import FontManager
from vispy.visuals.transforms import STTransform

from synapse_desktop.models.routing import RoutingWindow, layer_site
from synapse_desktop.models.session import Session
from synapse_desktop.models.signal import Signal
from synapse_desktop.scene.steps import StepAxis
from synapse_desktop.views.axes import make_axis
from synapse_desktop.views.clicks import ClickFilter
from synapse_desktop.views.colors import THEMES, map_values
from synapse_desktop.views.label_axis import make_label_axis, set_labels
from synapse_desktop.views.overview import StepCamera
from synapse_desktop.views.plot2d import (
    NamedPlots,
    in_rect,
    mark_row,
    plot_text,
    row_marks,
)

RECENT_STEPS = 16  # the top heatmap averages this many routing steps
SHARE_RANGE = (0.0, 2.0)  # colour range, in multiples of the balanced share
WIDTH = 512  # columns of the expert x step image
CV_COLOR = (0.48, 0.64, 0.97, 0.9)
_BORDER = (0.5, 0.5, 0.5, 0.4)
_TITLE_PX = 18
_AXIS_PX = 34
_X_AXIS_PX = 22
_BAR_PX = 10  # the colour bar's height
_MARGIN = 4
_RIGHT_PX = 8  # room for the last CV tick label
_GAP = 12
_BAR_HALF = 0.35


def _rgba(cmap: str, share_x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Shares (in multiples of balanced) to RGBA, NaN transparent; shape kept plus 4."""
    lo, hi = SHARE_RANGE
    normalized = np.clip((share_x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    flat = map_values(cmap, normalized.ravel(), (0.0, 0.0, 0.0, 0.0))
    return flat.reshape(*share_x.shape, 4)


class _Plot:
    """A framed view box with a title above it, rows down (flipped y), and the selected row
    outlined."""

    def __init__(self, root: Any, text: tuple[float, ...], fonts: FontManager) -> None:
        self.title = plot_text(root, text, fonts)
        self.view = scene.ViewBox(border_color=_BORDER, parent=root)
        self.marks = row_marks(self.view.scene)

    def contains(self, x: float, y: float) -> bool:
        return in_rect(self.view.camera.rect, x, y)

    def mark(self, row: int, color: tuple[float, ...]) -> None:
        mark_row(self.marks, row, color)


def _fixed_camera() -> scene.PanZoomCamera:
    camera = scene.PanZoomCamera(aspect=None)
    camera.interactive = False
    camera.flip = (False, True, False)
    return camera


def _set_rect(camera: Any, left: float, top: float, width: float, height: float) -> None:
    rect = camera.rect
    if (rect.left, rect.bottom, rect.width, rect.height) != (left, top, width, height):
        camera.rect = Rect(left, top, width, height)


class ExpertHeatmapView(NamedPlots):
    """Reads ``session.routing``, ``ranks``, ``topology`` and ``selection``; call ``refresh``
    at a few Hz."""

    def __init__(self, session: Session, size: tuple[int, int] = (560, 600)) -> None:
        self.session = session
        theme = THEMES[session.view.values.theme]
        self.canvas = scene.SceneCanvas(keys=None, size=size, show=False, bgcolor=theme.background)
        self.canvas.unfreeze()
        root = self.canvas.scene
        fonts = FontManager()
        text = theme.text
        # top left: layer x expert
        self.share_plot = _Plot(root, text, fonts)
        self.share_plot.view.camera = _fixed_camera()
        self.share_image = scene.visuals.Image(
            np.zeros((1, 1, 4), np.float32),
            clim=(0.0, 1.0),
            interpolation="nearest",
            parent=self.share_plot.view.scene,
        )
        self.share_image.transform = STTransform(translate=(-0.5, -0.5))
        self.layer_axis, self.layer_ticks = make_label_axis("left", text)
        self.expert_axis = make_axis("bottom", text, integer=True)
        # top right: CV per layer
        self.cv_plot = _Plot(root, text, fonts)
        self.cv_plot.view.camera = _fixed_camera()
        self.cv_bars = scene.visuals.Mesh(color=CV_COLOR, parent=self.cv_plot.view.scene)
        self.cv_bars.visible = False
        self.cv_axis = make_axis("bottom", text, integer=False)
        # the colour bar
        self.colorbar = scene.visuals.Image(
            np.zeros((1, 256, 4), np.float32), clim=(0.0, 1.0), interpolation="linear", parent=root
        )
        self.colorbar.transform = STTransform()
        self.colorbar_labels = [
            scene.visuals.Text(
                label,
                color=text,
                font_size=7,
                anchor_x=anchor,
                anchor_y="bottom",
                parent=root,
                font_manager=fonts,
            )
            for label, anchor in (("0", "left"), ("balanced (1/E)", "center"), ("2x", "right"))
        ]
        # bottom: expert x step of one layer
        self.time_plot = _Plot(root, text, fonts)
        self.time_camera = StepCamera(aspect=None)
        self.time_camera.flip = (False, True, False)
        self.time_plot.view.camera = self.time_camera
        self.time_image = scene.visuals.Image(
            np.zeros((1, WIDTH, 4), np.float32),
            clim=(0.0, 1.0),
            interpolation="nearest",
            parent=self.time_plot.view.scene,
        )
        self.time_image.transform = STTransform()
        self.time_expert_axis = make_axis("left", text, integer=True)
        self.step_axis = make_axis("bottom", text, integer=True)
        self.axes = (
            self.layer_axis,
            self.expert_axis,
            self.cv_axis,
            self.time_expert_axis,
            self.step_axis,
        )
        for axis in self.axes:
            axis.parent = root
        self.layer_axis.link_view(self.share_plot.view)
        self.expert_axis.link_view(self.share_plot.view)
        self.cv_axis.link_view(self.cv_plot.view)
        self.time_expert_axis.link_view(self.time_plot.view)
        self.step_axis.link_view(self.time_plot.view)
        self.plots = {"share": self.share_plot, "cv": self.cv_plot, "time": self.time_plot}
        self.top_title = plot_text(root, text, fonts)

        self.window: RoutingWindow = session.routing.shown()
        self.recent_share = np.zeros((0, 0), np.float64)  # [L, E] multiples of balanced
        self.cv = np.zeros(0, np.float64)  # [L] at the newest step
        self.time_share = np.zeros((0, WIDTH), np.float64)  # [E, WIDTH] of ``shown_layer``
        self.time_axis = StepAxis(0, 1, WIDTH)
        self.shown_layer = -1  # the layer of the bottom plot (-1: none)
        self.follow = True
        self.hovered = Signal()  # (text): what the pointer is over ("" when nothing)
        self.readout = ""
        self._dirty = True
        self._layout()
        self.canvas.events.resize.connect(self._layout)
        self.time_camera.user_moved.connect(self._on_user_moved)
        session.routing.changed.connect(self._on_data)
        session.ranks.changed.connect(self._on_data)
        session.topology.changed.connect(self._on_data)
        session.view.changed.connect(self._on_view)
        session.selection.selected_changed.connect(self._on_selected)
        self.canvas.events.mouse_move.connect(self._on_mouse_move)
        self.canvas.events.mouse_double_click.connect(self._on_double_click)
        self.clicks = ClickFilter(self.canvas, self.click)
        self.refresh()

    @property
    def native(self) -> Any:
        return self.canvas.native

    # -- layout ---------------------------------------------------------------------------------

    def _layout(self, event: Any = None) -> None:
        """Top: layer x expert (2/3 of the width) and CV bars, over the expert axis and the
        colour bar; bottom: expert x step over the step axis. Heights 1 : 1."""
        del event
        w, h = self.canvas.size
        m = _MARGIN
        left = m + _AXIS_PX
        usable = max(60.0, w - left - m - _GAP - _RIGHT_PX)
        share_w, cv_w = usable * 0.7, usable * 0.3
        fixed = 3 * _TITLE_PX + 2 * _X_AXIS_PX + _BAR_PX + 16 + 2 * m
        plots = max(60.0, h - fixed)
        top_h, bottom_h = plots * 0.5, plots * 0.5
        y = m + 2 * _TITLE_PX
        self.top_title.pos = (left, y - 3 * _TITLE_PX / 2)
        self.share_plot.title.pos = (left, y - _TITLE_PX / 2)
        self.cv_plot.title.pos = (left + share_w + _GAP, y - _TITLE_PX / 2)
        self.share_plot.view.rect = Rect(left, y, share_w, top_h)
        self.cv_plot.view.rect = Rect(left + share_w + _GAP, y, cv_w, top_h)
        self.layer_axis.rect = Rect(m, y, _AXIS_PX, top_h)
        y += top_h
        self.expert_axis.rect = Rect(left, y, share_w, _X_AXIS_PX)
        self.cv_axis.rect = Rect(left + share_w + _GAP, y, cv_w, _X_AXIS_PX)
        y += _X_AXIS_PX + 2
        self.colorbar.transform.translate = (left, y)
        self.colorbar.transform.scale = (share_w / 256, _BAR_PX)
        for label, x in zip(
            self.colorbar_labels, (left, left + share_w / 2, left + share_w), strict=True
        ):
            label.pos = (x, y + _BAR_PX + 2)
        y += _BAR_PX + 14 + _TITLE_PX
        self.time_plot.title.pos = (left, y - _TITLE_PX / 2)
        self.time_plot.view.rect = Rect(left, y, w - left - m, bottom_h)
        self.time_expert_axis.rect = Rect(m, y, _AXIS_PX, bottom_h)
        self.step_axis.rect = Rect(left, y + bottom_h, w - left - m, _X_AXIS_PX)
        for axis in self.axes:
            axis.sync()

    # -- model changes --------------------------------------------------------------------------

    def _on_data(self, *args: object) -> None:
        self._dirty = True

    def _on_view(self, name: str, value: object) -> None:
        if name == "colormap":
            self._dirty = True
        elif name == "theme":
            theme = THEMES[str(value)]
            self.canvas.bgcolor = theme.background
            for plot in self.plots.values():
                plot.title.color = theme.text
            self.top_title.color = theme.text
            for label in self.colorbar_labels:
                label.color = theme.text
            for widget in self.axes:
                axis = widget.axis
                axis.text_color = axis.axis_color = axis.tick_color = theme.text
            self._mark()

    def _on_selected(self, index: int) -> None:
        sites = self.session.topology.sites
        layer = sites[index].layer if 0 <= index < len(sites) else -1
        if self.window.row_of(layer) >= 0 and layer != self.shown_layer:
            self.show_layer(layer)
        else:
            self._mark()

    def _on_user_moved(self) -> None:
        self.follow = False

    def _on_double_click(self, event: Any) -> None:
        del event
        self.follow_newest()

    # -- pushing --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute and push if routing, ranks or topology changed since the last call."""
        if not self._dirty:
            return
        self._dirty = False
        self.window = window = self.session.routing.shown(self.session.ranks.lens_choice)
        cmap = self.session.view.values.colormap
        n_layers, n_experts = len(window.layers), window.n_experts
        balanced = window.experts[:, None].astype(np.float64)
        self.recent_share = window.mean_share(RECENT_STEPS) * balanced
        self.cv = window.tail(1).cv()[0] if len(window) else np.full(n_layers, np.nan)
        rows = max(n_layers, 1)
        if n_layers and n_experts:
            self.share_image.set_data(_rgba(cmap, self.recent_share))
        else:
            self.share_image.set_data(np.zeros((1, 1, 4), np.float32))
        _set_rect(self.share_plot.view.camera, -0.5, -0.5, max(n_experts, 1), rows)
        set_labels(self.layer_axis, self.layer_ticks, [str(v) for v in window.layers.tolist()])
        self._push_cv(rows)
        gradient = np.linspace(SHARE_RANGE[0], SHARE_RANGE[1], 256)[None, :]
        self.colorbar.set_data(_rgba(cmap, gradient))
        shown = min(RECENT_STEPS, len(window))
        self.top_title.text = "token share / balanced" + (f" (last {shown} steps)" if shown else "")
        self.share_plot.title.text = "layer x expert"
        self.cv_plot.title.text = "CV" + (f", step {window.newest}" if shown else "")
        if self.window.row_of(self.shown_layer) < 0:
            self.shown_layer = int(window.layers[0]) if n_layers else -1
        selected = self.session.selection.selected
        sites = self.session.topology.sites
        if 0 <= selected < len(sites) and window.row_of(sites[selected].layer) >= 0:
            self.shown_layer = sites[selected].layer
        self._push_time()
        for axis in self.axes:
            axis.sync()
        self._mark()

    def _push_cv(self, rows: int) -> None:
        cv = self.cv
        top = float(np.nanmax(cv)) if np.isfinite(cv).any() else 0.0
        limit = max(1.0, float(np.ceil(top * 1.15 * 4) / 4))
        _set_rect(self.cv_plot.view.camera, 0.0, -0.5, limit, rows)
        keep = np.isfinite(cv)
        self.cv_bars.visible = bool(keep.any())
        if not keep.any():
            return
        y, x1 = np.flatnonzero(keep).astype(np.float64), cv[keep]
        x0 = np.zeros_like(x1)
        vertices = np.zeros((4 * len(y), 3), np.float32)
        vertices[:, 0] = np.column_stack([x0, x1, x1, x0]).ravel()
        vertices[:, 1] = np.column_stack(
            [y - _BAR_HALF, y - _BAR_HALF, y + _BAR_HALF, y + _BAR_HALF]
        ).ravel()
        base = 4 * np.arange(len(y), dtype=np.uint32)[:, None]
        faces = (base + np.array([[0, 1, 2], [0, 2, 3]], np.uint32).reshape(1, 6)).reshape(-1, 3)
        self.cv_bars.set_data(vertices=vertices, faces=faces, color=CV_COLOR)

    def _push_time(self) -> None:
        """The expert x step image of ``shown_layer``: per column, the mean share of its steps."""
        window, row = self.window, self.window.row_of(self.shown_layer)
        experts = int(window.experts[row]) if row >= 0 else 0
        present = window.present[:, row] if row >= 0 else np.zeros(0, bool)
        steps = window.steps[present]
        if not len(steps):
            self.time_share = np.full((max(experts, 1), WIDTH), np.nan)
            self.time_axis = StepAxis(0, 1, WIDTH)
            self.time_image.set_data(np.zeros((1, WIDTH, 4), np.float32))
            self.time_plot.title.text = "experts x steps: no routing yet"
            return
        axis = StepAxis.spanning(int(steps[0]), int(steps[-1]), WIDTH)
        share = window.layer(row).share()[present, 0] * experts  # [S, E]
        columns = axis.columns(steps)
        total = np.zeros((experts, WIDTH), np.float64)
        count = np.zeros((experts, WIDTH), np.float64)
        finite = np.isfinite(share)
        np.add.at(total.T, columns, np.where(finite, share, 0.0))
        np.add.at(count.T, columns, finite.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            self.time_share = total / count
        self.time_axis = axis
        self.time_image.set_data(_rgba(self.session.view.values.colormap, self.time_share))
        self.time_image.transform.scale = (axis.stride, 1.0)
        self.time_image.transform.translate = (axis.x0, -0.5)
        stride = f", {axis.stride} steps a column" if axis.stride > 1 else ""
        self.time_plot.title.text = (
            f"layer {self.shown_layer}, expert x step: token share / balanced{stride}"
        )
        camera = self.time_camera
        rect = camera.rect
        if self.follow:
            lo, hi = float(steps[0]) - 0.5, float(steps[-1]) + 0.5
            _set_rect(camera, lo, -0.5, max(hi - lo, 1.0), float(experts))
        elif (rect.bottom, rect.height) != (-0.5, float(experts)):
            _set_rect(camera, rect.left, -0.5, rect.width, float(experts))

    def _mark(self) -> None:
        theme = THEMES[self.session.view.values.theme]
        sites = self.session.topology.sites
        selected = self.session.selection.selected
        layer = sites[selected].layer if 0 <= selected < len(sites) else -1
        row = self.window.row_of(layer)
        for plot in (self.share_plot, self.cv_plot):
            plot.mark(row, theme.selected)
        self.canvas.update()

    def show_layer(self, layer: int) -> None:
        """Show ``layer`` in the expert x step plot (an MoE layer; others are ignored)."""
        if self.window.row_of(layer) < 0:
            return
        self.shown_layer = layer
        self._push_time()
        self.time_expert_axis.sync()
        self._mark()

    def follow_newest(self) -> None:
        """Frame every held step of the bottom plot again, and keep following new ones."""
        self.follow = True
        self._push_time()
        self.canvas.update()

    # -- reading --------------------------------------------------------------------------------

    def summary(self) -> str:
        """One line about ``shown_layer`` at the newest step: CV, drops, the longest-idle expert."""
        window, layer = self.window, self.shown_layer
        row = window.row_of(layer)
        if row < 0 or not len(window):
            return ""
        present = np.flatnonzero(window.present[:, row])
        if not len(present):
            return f"layer {layer}: no routing yet"
        s = int(present[-1])
        step = window.layer(row).tail(len(window) - s)
        cv = float(step.cv()[0, 0])
        parts = [f"layer {layer}: CV {cv:.2f}" if np.isfinite(cv) else f"layer {layer}: CV -"]
        dropped = int(window.dropped[s, row])
        fraction = float(step.drop_fraction()[0, 0])
        parts.append(
            f"{dropped} dropped ({100 * fraction:.1f}%)"
            if dropped and np.isfinite(fraction)
            else f"{dropped} dropped"
        )
        idle = window.idle_steps()[row]
        if idle.max(initial=0) > 0:
            expert = int(np.argmax(idle))
            n = int(idle[expert])
            others = int((idle > 0).sum()) - 1
            text = f"expert {expert} idle for {n} step{'' if n == 1 else 's'}"
            parts.append(text + (f" (+{others} more idle)" if others else ""))
        else:
            parts.append("every expert busy")
        return ", ".join(parts)

    # -- pointer --------------------------------------------------------------------------------

    def click(self, pos: tuple[float, float]) -> None:
        """A click on a row of the top plots selects that layer's MLP site."""
        hit = self.plot_at(pos)
        if hit is None or hit[0] == "time":
            return
        row = int(np.floor(hit[2] + 0.5))
        if 0 <= row < len(self.window.layers):
            index = layer_site(self.session.topology, int(self.window.layers[row]))
            if index >= 0:
                self.session.selection.select(index)
            self.show_layer(int(self.window.layers[row]))

    def describe(self, plot: str, x: float, y: float) -> str:
        """What the pointer is over, for the status bar."""
        window = self.window
        row = int(np.floor(y + 0.5))
        if plot in ("share", "cv"):
            if not 0 <= row < len(window.layers):
                return ""
            layer = int(window.layers[row])
            if plot == "cv":
                return f"layer {layer}: CV of the expert counts {self.cv[row]:.3g}"
            expert = int(np.floor(x + 0.5))
            if not 0 <= expert < window.experts[row]:
                return ""
            share = self.recent_share[row, expert] / window.experts[row]
            return (
                f"layer {layer} expert {expert}: {100 * share:.2f}% of the assignments "
                f"(balanced {100 / window.experts[row]:.2f}%), "
                f"mean of the last {min(RECENT_STEPS, len(window))} steps"
            )
        column = self.time_axis.column_at(x)
        if not (0 <= row < self.time_share.shape[0] and 0 <= column < WIDTH):
            return ""
        first, last = self.time_axis.steps_of(column)
        value = self.time_share[row, column]
        span = f"steps {first}..{last}" if last > first else f"step {first}"
        shown = "no routing" if np.isnan(value) else f"{value:.2f}x balanced"
        return f"layer {self.shown_layer} expert {row}, {span}: {shown}"

    def hover(self, pos: tuple[float, float] | None) -> None:
        hit = self.plot_at(pos) if pos is not None else None
        readout = self.describe(*hit) if hit is not None else ""
        if readout != self.readout:
            self.readout = readout
            self.hovered.emit(readout)

    def _on_mouse_move(self, event: Any) -> None:
        if event.is_dragging:
            return
        self.hover((float(event.pos[0]), float(event.pos[1])))

    def close(self) -> None:
        self.canvas.close()
