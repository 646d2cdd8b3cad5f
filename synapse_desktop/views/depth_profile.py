"""The depth profile canvas: per layer, the residual stream's rms and what attention and the MLP
write into it relative to the stream entering the layer (``models.depth``).

Layers run down the vertical axis, layer 0 at the top (the order of the overview's rows and of
the 3D cards, read from the first). Left: residual rms as horizontal bars on a log x axis.
Right: attn / stream and mlp / stream as two lines on a log x axis, a line at 1. Both x ranges
are fixed. Under them, once RESIDUAL frames arrive: the per-token L2 norm of the residual stream
after each layer over the sampled sequence (``session.residual_tokens``), layers down, tokens
across, log colour over the frame's own range. The selected site's layer is outlined in every
plot; a click selects the layer's residual site. A one-way adapter: it reads the session and
writes only ``session.selection``. Visuals are made once; ``refresh`` (a few Hz) recomputes and
pushes only when statistics or the residual frame changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from vispy import scene
from vispy.geometry import Rect
from vispy.visuals.axis import Ticker
from vispy.visuals.text.text import FontManager
from vispy.visuals.transforms import STTransform

from synapse_desktop.models.depth import DepthProfile, depth_profile, empty_profile
from synapse_desktop.models.residual_tokens import ResidualSnapshot
from synapse_desktop.models.session import Session
from synapse_desktop.models.signal import Signal
from synapse_desktop.views.axes import Axis, make_axis
from synapse_desktop.views.clicks import ClickFilter
from synapse_desktop.views.colors import THEMES, map_values
from synapse_desktop.views.label_axis import make_label_axis, set_labels, short_token
from synapse_desktop.views.plot2d import (
    NamedPlots,
    in_rect,
    mark_row,
    plot_text,
    row_marks,
)

RMS_RANGE = (-2.0, 3.0)  # log10 of the residual rms: 0.01 .. 1000
RATIO_RANGE = (-3.0, 1.0)  # log10 of the ratios: 0.001 .. 10
RESIDUAL_COLOR = (0.45, 0.78, 0.75, 0.9)
ATTN_COLOR = (0.48, 0.64, 0.97, 1.0)
MLP_COLOR = (1.0, 0.62, 0.39, 1.0)
_BORDER = (0.5, 0.5, 0.5, 0.4)
_BAR_HALF = 0.35  # half a bar's height, in layers
_TITLE_PX = 30  # two rows: titles, then the step and the legend
_RIGHT_PX = 12  # room for the last x tick label
_AXIS_PX = 30
_X_AXIS_PX = 24
_MARGIN = 4
_GAP = 10
_TOKEN_SHARE = 0.45  # of the height, for the per-token plot when shown
_STRIP_PX = 50  # the colour strip beside the per-token plot's title


class _DecadeTicker(Ticker):  # type: ignore[misc]
    """Ticks at whole decades of a log10 axis, labelled with the value (0.01, 1, 100)."""

    def _get_tick_frac_labels(self) -> tuple[Any, Any, list[str]]:
        d0, d1 = (float(v) for v in self.axis.domain)
        lo, hi = min(d0, d1), max(d0, d1)
        if hi - lo <= 0:
            return np.zeros(0), np.zeros(0), []
        values = np.arange(np.ceil(lo - 1e-9), hi + 1e-9)
        minor = np.concatenate([np.log10(np.arange(2, 10)) + k for k in range(int(lo), int(hi))])
        minor = minor[(minor > lo) & (minor < hi)]
        return (
            (values - d0) / (d1 - d0),
            (minor - d0) / (d1 - d0),
            [f"{10.0**v:g}" for v in values],
        )


class _Panel:
    """A framed view box, layers down y (flipped), a fixed log10 x range, an x axis below and
    the selected layer outlined."""

    def __init__(
        self, root: Any, text: tuple[float, ...], fonts: FontManager, x_range: tuple[float, float]
    ) -> None:
        self.x_range = x_range
        self.title = plot_text(root, text, fonts)
        self.view = scene.ViewBox(border_color=_BORDER, parent=root)
        self.camera = scene.PanZoomCamera(aspect=None)
        self.camera.interactive = False
        self.camera.flip = (False, True, False)
        self.view.camera = self.camera
        self.camera.rect = Rect(x_range[0], -0.5, x_range[1] - x_range[0], 1.0)
        self.x_axis: Axis = make_axis("bottom", text, integer=False)
        self.x_axis.axis.ticker = _DecadeTicker(
            self.x_axis.axis, anchors=self.x_axis.axis.ticker._anchors
        )
        self.x_axis.parent = root
        self.x_axis.link_view(self.view)
        self.marks = row_marks(self.view.scene)

    def set_rows(self, lo: float, hi: float) -> None:
        rect = self.camera.rect
        if (rect.bottom, rect.top) != (lo, hi):
            self.camera.rect = Rect(self.x_range[0], lo, self.x_range[1] - self.x_range[0], hi - lo)

    def mark(self, layer: int, color: tuple[float, ...]) -> None:
        mark_row(self.marks, layer, color)

    def contains(self, x: float, y: float) -> bool:
        return in_rect(self.camera.rect, x, y)

    def set_text_color(self, color: tuple[float, ...]) -> None:
        self.title.color = color
        axis = self.x_axis.axis
        axis.text_color = axis.axis_color = axis.tick_color = color


class _TokenPlot:
    """The per-token residual norm: a layer x token image (y = layer id, x = token position),
    layer ids at the left, token strings below, a title with the colour range and a strip."""

    def __init__(self, root: Any, text: tuple[float, ...], fonts: FontManager) -> None:
        self.title = plot_text(root, text, fonts)
        self.strip = scene.visuals.Image(
            np.zeros((1, 64, 4), np.float32), clim=(0.0, 1.0), interpolation="linear", parent=root
        )
        self.strip.transform = STTransform()
        self.range_labels = [
            plot_text(root, text, fonts, size=7, anchor_x=anchor) for anchor in ("right", "left")
        ]
        self.view = scene.ViewBox(border_color=_BORDER, parent=root)
        self.camera = scene.PanZoomCamera(aspect=None)
        self.camera.interactive = False
        self.camera.flip = (False, True, False)
        self.view.camera = self.camera
        self.image = scene.visuals.Image(
            np.zeros((1, 1, 4), np.float32),
            clim=(0.0, 1.0),
            interpolation="nearest",
            parent=self.view.scene,
        )
        self.image.transform = STTransform(translate=(-0.5, -0.5))
        self.layer_axis = make_axis("left", text, integer=True)
        self.token_axis, self.token_ticks = make_label_axis("bottom", text)
        for axis in (self.layer_axis, self.token_axis):
            axis.parent = root
            axis.link_view(self.view)
        self.marks = row_marks(self.view.scene)
        self.visuals = (
            self.title,
            self.strip,
            *self.range_labels,
            self.view,
            self.layer_axis,
            self.token_axis,
        )
        self.set_visible(False)

    def set_visible(self, visible: bool) -> None:
        for visual in self.visuals:
            visual.visible = visible

    def contains(self, x: float, y: float) -> bool:
        rect = self.camera.rect
        return bool(
            self.view.visible and rect.left <= x <= rect.right and rect.bottom <= y <= rect.top
        )

    def mark(self, layer: int, color: tuple[float, ...]) -> None:
        mark_row(self.marks, layer, color)

    def set_text_color(self, color: tuple[float, ...]) -> None:
        self.title.color = color
        for label in self.range_labels:
            label.color = color
        for widget in (self.layer_axis, self.token_axis):
            axis = widget.axis
            axis.text_color = axis.axis_color = axis.tick_color = color


def _log(values: npt.NDArray[np.float64], bounds: tuple[float, float]) -> npt.NDArray[np.float64]:
    """log10 of positive values clipped to ``bounds``; NaN elsewhere."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.where(values > 0, values, np.nan))
    return np.clip(out, *bounds)


class DepthProfileView(NamedPlots):
    """Reads ``session.stats``, ``topology`` and ``selection``; call ``refresh`` at a few Hz."""

    def __init__(self, session: Session, size: tuple[int, int] = (420, 600)) -> None:
        self.session = session
        theme = THEMES[session.view.values.theme]
        self.canvas = scene.SceneCanvas(keys=None, size=size, show=False, bgcolor=theme.background)
        self.canvas.unfreeze()
        root = self.canvas.scene
        fonts = FontManager()
        self.rms_panel = _Panel(root, theme.text, fonts, RMS_RANGE)
        self.ratio_panel = _Panel(root, theme.text, fonts, RATIO_RANGE)
        self.plots = {"rms": self.rms_panel, "ratio": self.ratio_panel}
        self.layer_axis = make_axis("left", theme.text, integer=True)
        self.layer_axis.parent = root
        self.layer_axis.link_view(self.rms_panel.view)
        self.legend = [
            plot_text(root, color, fonts, text=name)
            for name, color in (("attn", ATTN_COLOR), ("mlp", MLP_COLOR))
        ]
        self.step_text = plot_text(root, theme.text, fonts)
        self.rms_panel.title.text = "residual rms (per element)"
        self.ratio_panel.title.text = "output rms / stream in"
        # residual bars: one quad per layer, made once, moved by set_data
        self.bars = scene.visuals.Mesh(color=RESIDUAL_COLOR, parent=self.rms_panel.view.scene)
        self.bars.visible = False
        self.unity = scene.visuals.InfiniteLine(
            0.0, color=(*theme.text[:3], 0.35), vertical=True, parent=self.ratio_panel.view.scene
        )
        self.attn_line = scene.visuals.Line(
            pos=np.zeros((2, 2), np.float32),
            color=ATTN_COLOR,
            width=1.5,
            method="gl",
            parent=self.ratio_panel.view.scene,
        )
        self.mlp_line = scene.visuals.Line(
            pos=np.zeros((2, 2), np.float32),
            color=MLP_COLOR,
            width=1.5,
            method="gl",
            parent=self.ratio_panel.view.scene,
        )
        self.dots = scene.visuals.Markers(parent=self.ratio_panel.view.scene)
        self.dots.order = 1
        for visual in (self.attn_line, self.mlp_line, self.dots):
            visual.visible = False
        self.tokens = _TokenPlot(root, theme.text, fonts)
        self.snapshot: ResidualSnapshot | None = None  # the per-token frame shown
        self.token_norms = np.zeros((0, 0), np.float32)  # [layer id, token] (NaN: not sent)
        self.token_labels: tuple[str, ...] = ()
        self.token_range = (0.0, 1.0)  # log10 of the norms coloured from the map's low to high end
        self.profile: DepthProfile = empty_profile()
        self.bar_ends = np.zeros(0, np.float64)  # log10 residual rms pushed per layer (clipped)
        self.hovered = Signal()  # (text): the layer under the pointer ("" when none)
        self.readout = ""
        self.selected_layer = -1
        self._dirty = True
        self._tokens_dirty = True
        self._layout()
        self.canvas.events.resize.connect(self._layout)
        session.residual_tokens.changed.connect(self._on_tokens)
        session.ranks.changed.connect(self._on_tokens)
        session.data_reset.connect(self._on_tokens)
        session.stats.changed.connect(self._on_data)
        session.topology.changed.connect(self._on_data)
        session.data_reset.connect(self._on_data)
        session.view.changed.connect(self._on_view)
        session.selection.selected_changed.connect(self._on_selected)
        events = self.canvas.events
        events.mouse_move.connect(self._on_mouse_move)
        self.clicks = ClickFilter(self.canvas, self.click)
        self.refresh()

    @property
    def native(self) -> Any:
        return self.canvas.native

    def _layout(self, event: Any = None) -> None:
        """Two plots side by side (rms : ratios = 1 : 1) under a title strip, over x axes."""
        del event
        w, h = self.canvas.size
        m = _MARGIN
        left = m + _AXIS_PX
        width = max(40.0, (w - left - _RIGHT_PX - _GAP) / 2)
        top = m + _TITLE_PX
        height = max(30.0, h - top - m - _X_AXIS_PX)
        if self.snapshot is not None:
            token_h = max(30.0, (h - top - m) * _TOKEN_SHARE - _TITLE_PX / 2 - _X_AXIS_PX)
            height = max(30.0, height - token_h - _TITLE_PX / 2 - _X_AXIS_PX)
            y = top + height + _X_AXIS_PX + _TITLE_PX / 2
            plot = self.tokens
            plot.view.rect = Rect(left, y, w - left - _RIGHT_PX, token_h)
            plot.layer_axis.rect = Rect(m, y, _AXIS_PX, token_h)
            plot.token_axis.rect = Rect(left, y + token_h, w - left - _RIGHT_PX, _X_AXIS_PX)
            plot.title.pos = (left + 2, y - _TITLE_PX / 4 - 2)
            strip_x = w - _RIGHT_PX - _STRIP_PX - 46
            plot.strip.transform.translate = (strip_x, y - _TITLE_PX / 2 + 1)
            plot.strip.transform.scale = (_STRIP_PX / 64, _TITLE_PX / 2 - 3)
            label_y = y - _TITLE_PX / 4 - 2
            plot.range_labels[0].pos = (strip_x - 3, label_y)
            plot.range_labels[1].pos = (strip_x + _STRIP_PX + 3, label_y)
            plot.layer_axis.sync()
            plot.token_axis.sync()
        for i, panel in enumerate((self.rms_panel, self.ratio_panel)):
            x = left + i * (width + _GAP)
            panel.view.rect = Rect(x, top, width, height)
            panel.x_axis.rect = Rect(x, top + height, width, _X_AXIS_PX)
        row1, row2 = m + _TITLE_PX / 4, m + 3 * _TITLE_PX / 4
        self.rms_panel.title.pos = (left + 2, row1)
        self.step_text.pos = (left + 2, row2)
        x = left + width + _GAP + 2
        self.ratio_panel.title.pos = (x, row1)
        self.legend[0].pos = (x, row2)
        self.legend[1].pos = (x + 40, row2)
        self.layer_axis.rect = Rect(m, top, _AXIS_PX, height)
        for axis in (self.layer_axis, self.rms_panel.x_axis, self.ratio_panel.x_axis):
            axis.sync()

    # -- model changes --------------------------------------------------------------------------

    def _on_data(self, *args: object) -> None:
        self._dirty = True

    def _on_tokens(self, *args: object) -> None:
        self._tokens_dirty = True

    def _on_view(self, name: str, value: object) -> None:
        if name != "theme":
            return
        theme = THEMES[str(value)]
        self.canvas.bgcolor = theme.background
        for panel in self.plots.values():
            panel.set_text_color(theme.text)
        self.tokens.set_text_color(theme.text)
        axis = self.layer_axis.axis
        axis.text_color = axis.axis_color = axis.tick_color = theme.text
        self.step_text.color = theme.text
        self.unity.set_data(color=(*theme.text[:3], 0.35))
        self._on_selected(self.session.selection.selected)

    def _on_selected(self, index: int) -> None:
        sites = self.session.topology.sites
        layer = sites[index].layer if 0 <= index < len(sites) else -1
        self.selected_layer = layer if self.profile.row_of(layer) >= 0 else -1
        color = THEMES[self.session.view.values.theme].selected
        for panel in self.plots.values():
            panel.mark(self.selected_layer, color)
        snapshot = self.snapshot
        self.tokens.mark(
            layer if snapshot is not None and snapshot.row_of(layer) >= 0 else -1, color
        )
        self.canvas.update()

    # -- pushing --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute and push the profile if statistics or topology changed since the last call,
        and the per-token plot if the residual frame did."""
        if self._tokens_dirty:
            self._tokens_dirty = False
            self._push_tokens()
        if not self._dirty:
            return
        self._dirty = False
        profile = depth_profile(self.session.topology, self.session.stats)
        self.profile = profile
        layers = profile.layers.astype(np.float64)
        if len(layers):
            for panel in self.plots.values():
                panel.set_rows(float(layers.min()) - 0.5, float(layers.max()) + 0.5)
        self._push_bars(layers, profile.residual_rms)
        self._push_ratios(layers, profile)
        newest = int(profile.steps.max()) if len(profile) else -1
        self.step_text.text = f"step {newest}" if newest >= 0 else "no statistics yet"
        self._on_selected(self.session.selection.selected)

    def _push_tokens(self) -> None:
        """Show the residual frame of the chosen rank (the plot appears with the first one)."""
        model = self.session.residual_tokens
        snapshot = model.shown(self.session.ranks.lens_choice)
        appeared = (snapshot is None) != (self.snapshot is None)
        self.snapshot = snapshot
        plot = self.tokens
        plot.set_visible(snapshot is not None)
        if appeared:
            self._layout()
        if snapshot is None:
            self.token_norms = np.zeros((0, 0), np.float32)
            self.token_labels = ()
            self._on_selected(self.session.selection.selected)
            return
        layers = snapshot.layers
        n_rows = int(layers.max()) + 1 if len(layers) else 1
        norms = np.full((n_rows, snapshot.n_tokens), np.nan, np.float32)
        norms[layers] = snapshot.norms
        self.token_norms = norms
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(np.where(norms > 0, norms, np.nan))
        finite = logs[np.isfinite(logs)]
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        if hi - lo < 1e-6:
            lo, hi = lo - 0.5, hi + 0.5
        self.token_range = (lo, hi)
        cmap = self.session.view.values.colormap
        normalized = ((logs - lo) / (hi - lo)).astype(np.float32)
        rgba = map_values(cmap, normalized.ravel(), (0.0, 0.0, 0.0, 0.0))
        plot.image.set_data(rgba.reshape(*norms.shape, 4))
        plot.strip.set_data(
            map_values(cmap, np.linspace(0, 1, 64, dtype=np.float32), (0, 0, 0, 0))[None]
        )
        first = int(layers.min()) if len(layers) else 0
        rect = Rect(-0.5, first - 0.5, max(snapshot.n_tokens, 1), n_rows - first)
        if plot.camera.rect != rect:
            plot.camera.rect = rect
        self.token_labels = model.labels(snapshot)
        set_labels(plot.token_axis, plot.token_ticks, [short_token(t) for t in self.token_labels])
        plot.title.text = f"per-token residual L2, step {snapshot.step}"  # colours: log scale
        plot.range_labels[0].text = f"{10**lo:.3g}"
        plot.range_labels[1].text = f"{10**hi:.3g}"
        plot.layer_axis.sync()
        plot.token_axis.sync()
        self._on_selected(self.session.selection.selected)

    def _push_bars(self, layers: npt.NDArray[np.float64], rms: npt.NDArray[np.float64]) -> None:
        self.bar_ends = _log(rms, RMS_RANGE)
        keep = np.isfinite(self.bar_ends)
        self.bars.visible = bool(keep.any())
        if not keep.any():
            return
        y, x1 = layers[keep], self.bar_ends[keep]
        x0 = np.full_like(x1, RMS_RANGE[0])
        vertices = np.zeros((4 * len(y), 3), np.float32)
        vertices[:, 0] = np.column_stack([x0, x1, x1, x0]).ravel()
        vertices[:, 1] = np.column_stack(
            [y - _BAR_HALF, y - _BAR_HALF, y + _BAR_HALF, y + _BAR_HALF]
        ).ravel()
        base = 4 * np.arange(len(y), dtype=np.uint32)[:, None]
        faces = (base + np.array([[0, 1, 2], [0, 2, 3]], np.uint32).reshape(1, 6)).reshape(-1, 3)
        self.bars.set_data(vertices=vertices, faces=faces, color=RESIDUAL_COLOR)

    def _push_ratios(self, layers: npt.NDArray[np.float64], profile: DepthProfile) -> None:
        dots, colors = [], []
        for line, ratio, color in (
            (self.attn_line, profile.attn_ratio, ATTN_COLOR),
            (self.mlp_line, profile.mlp_ratio, MLP_COLOR),
        ):
            x = _log(ratio, RATIO_RANGE)
            finite = np.isfinite(x)
            pairs = np.flatnonzero(finite[:-1] & finite[1:] & (np.diff(layers) == 1))
            line.visible = len(pairs) > 0
            if len(pairs):
                pos = np.column_stack([np.where(finite, x, 0.0), layers]).astype(np.float32)
                line.set_data(pos=pos, connect=np.column_stack([pairs, pairs + 1]))
            dots.append(np.column_stack([x[finite], layers[finite]]))
            colors.append(np.tile(color, (int(finite.sum()), 1)))
        points = np.vstack(dots).astype(np.float32)
        self.dots.visible = len(points) > 0
        if len(points):
            face = np.vstack(colors).astype(np.float32)
            self.dots.set_data(points, size=5, face_color=face, edge_width=0)

    # -- pointer --------------------------------------------------------------------------------

    def layer_at(self, pos: tuple[float, float]) -> int:
        """The layer under canvas pixel ``pos`` in any plot (-1: none)."""
        for name, panel in self.plots.items():
            x, y = self.scene_pos(name, pos)
            if panel.contains(x, y):
                layer = int(np.floor(y + 0.5))
                return layer if self.profile.row_of(layer) >= 0 else -1
        hit = self.token_at(pos)
        return hit[0] if hit is not None else -1

    def token_at(self, pos: tuple[float, float]) -> tuple[int, int] | None:
        """(layer, token) under canvas pixel ``pos`` in the per-token plot (None: off it)."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        x, y = self.canvas.scene.node_transform(self.tokens.view.scene).map(pos)[:2]
        if not self.tokens.contains(float(x), float(y)):
            return None
        layer, token = int(np.floor(y + 0.5)), int(np.floor(x + 0.5))
        if snapshot.row_of(layer) < 0 or not 0 <= token < snapshot.n_tokens:
            return None
        return layer, token

    def token_pixel(self, layer: int, token: int) -> tuple[float, float]:
        """Canvas pixel of the centre of the per-token plot's cell (layer, token)."""
        view = self.tokens.view
        px, py = view.scene.node_transform(self.canvas.scene).map((token, layer))[:2]
        return float(px), float(py)

    def site_of_layer(self, layer: int) -> int:
        """The residual site of ``layer`` (else its first site); -1 when it has none."""
        row = self.profile.row_of(layer)
        if row >= 0 and self.profile.residual_site[row] >= 0:
            return int(self.profile.residual_site[row])
        in_layer = [s.index for s in self.session.topology.sites if s.layer == layer]
        return in_layer[0] if in_layer else -1

    def click(self, pos: tuple[float, float]) -> None:
        """Select the residual site of the layer under canvas pixel ``pos``."""
        index = self.site_of_layer(self.layer_at(pos))
        if index >= 0:
            self.session.selection.select(index)

    def describe(self, layer: int) -> str:
        """The numbers of one layer, for the status bar."""
        row = self.profile.row_of(layer)
        if row < 0:
            return ""
        p = self.profile

        def fmt(value: float) -> str:
            return "-" if not np.isfinite(value) else f"{value:.3g}"

        text = f"layer {layer}: residual rms {fmt(p.residual_rms[row])}"
        if np.isfinite(p.stream_in[row]):
            text += (
                f"   attn/stream in {fmt(p.attn_ratio[row])}"
                f"   mlp/stream in {fmt(p.mlp_ratio[row])}"
                f"   (stream in: rms {fmt(p.stream_in[row])})"
            )
        else:
            text += "   (no stream entering this layer is measured)"
        return text

    def describe_token(self, layer: int, token: int) -> str:
        """One cell of the per-token plot, for the status bar."""
        value = float(self.token_norms[layer, token])
        label = self.token_labels[token] if token < len(self.token_labels) else str(token)
        shown = "-" if not np.isfinite(value) else f"{value:.4g}"
        return f"layer {layer}, token {token} {label!r}: residual L2 norm {shown}"

    def hover(self, pos: tuple[float, float] | None) -> None:
        cell = self.token_at(pos) if pos is not None else None
        layer = self.layer_at(pos) if pos is not None and cell is None else -1
        readout = (
            self.describe_token(*cell)
            if cell is not None
            else self.describe(layer)
            if layer >= 0
            else ""
        )
        if readout != self.readout:
            self.readout = readout
            self.hovered.emit(readout)

    def _on_mouse_move(self, event: Any) -> None:
        self.hover((float(event.pos[0]), float(event.pos[1])))

    def close(self) -> None:
        self.canvas.close()
