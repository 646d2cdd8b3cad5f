"""The overview canvas: a training metric, a layer x step heatmap of one statistic and a block x
step heatmap of gradient norms, stacked on one step axis.

A one-way adapter: it reads the session and writes only ``session.selection`` (a click on a
heatmap cell selects that layer's site). The three plots pan and zoom together along the step
axis (x only; y is set from the data); double-click follows the newest steps again. Visuals are
made once; ``refresh`` (a few Hz) recomputes and pushes only what changed.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from vispy import scene
from vispy.color import Color
from vispy.geometry import Rect
from vispy.visuals.text.text import FontManager
from vispy.visuals.transforms import STTransform

from synapse_desktop.models.ranks import MERGED
from synapse_desktop.models.session import Session
from synapse_desktop.models.signal import Signal
from synapse_desktop.models.smoothing import ema
from synapse_desktop.scene.scales import SCALES, Scale
from synapse_desktop.scene.steps import KIND_CODES, StepImage, empty_image, grad_image, layer_image
from synapse_desktop.views.axes import make_axis, set_log
from synapse_desktop.views.clicks import ClickFilter
from synapse_desktop.views.colors import THEMES, map_values
from synapse_desktop.views.plot2d import (
    NamedPlots,
    in_rect,
    mark_row,
    plot_text,
    row_marks,
)

WIDTH = 1024  # heatmap columns (a column holds a power-of-two number of steps)
GRAD_SCALE = Scale("block grad norm", (-2.0, 1.0), log=True)
# What the lower heatmap shows per block: BLOCK_GRAD_NORMS, or a column of OPTIMIZER_STATS.
BLOCK_SIGNALS = {
    "grad_norm": ("block gradient norm", GRAD_SCALE),
    "update_ratio": ("update / parameter norm", Scale("update ratio", (-5.0, -1.0), log=True)),
    "v_below_g2": ("fraction with Adam's v < g^2", Scale("fraction v < g^2", (0.0, 1.0))),
}
_LINE_COLOR = "#7aa2f7"
_NONFINITE_COLOR = (1.0, 0.3, 0.35, 1.0)
_BORDER = (0.5, 0.5, 0.5, 0.4)
_TITLE_PX = 16
MIN_METRIC_PX = 120  # the training metric stays readable
MIN_HEATMAP_PX = 20
_AXIS_PX = 40
_STEP_AXIS_PX = 26
_MARGIN = 4


class StepCamera(scene.PanZoomCamera):  # type: ignore[misc]
    """Pans and zooms along x (steps) only; ``user_moved`` fires when the mouse moved it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.user_moved = Signal()

    def zoom(self, factor: Any, center: Any = None) -> None:
        fx = factor if np.isscalar(factor) else factor[0]
        super().zoom((fx, 1.0), center)

    def pan(self, *pan: Any) -> None:
        delta = pan[0] if len(pan) == 1 else pan
        super().pan((delta[0], 0.0))

    def viewbox_mouse_event(self, event: Any) -> None:
        super().viewbox_mouse_event(event)
        if event.handled and event.type in ("mouse_wheel", "mouse_move", "gesture_zoom"):
            self.user_moved.emit()


_LEVELS = 256


@lru_cache(maxsize=16)
def _colors(cmap: str) -> npt.NDArray[np.float32]:
    """The colour map at ``_LEVELS`` levels, then transparent (for NaN: nothing measured)."""
    levels = np.linspace(0.0, 1.0, _LEVELS, dtype=np.float32)
    return np.vstack([map_values(cmap, levels, (0.0, 0.0, 0.0, 0.0)), np.zeros((1, 4))]).astype(
        np.float32
    )


def _levels(normalized: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
    """Values in 0..1 to colour levels; NaN to the transparent one."""
    index = np.rint(np.nan_to_num(normalized, nan=0.0) * (_LEVELS - 1)).astype(np.intp)
    index[np.isnan(normalized)] = _LEVELS
    return index


class _TitleBar(scene.Widget):  # type: ignore[misc]
    """A one-line strip: a title at the left, an optional readout at the right."""

    def __init__(self, text: tuple[float, ...], fonts: FontManager) -> None:
        super().__init__()
        self.unfreeze()
        self.left, self.right = (
            plot_text(self, text, fonts, anchor_x=anchor) for anchor in ("left", "right")
        )
        self.freeze()
        self.events.resize.connect(self._place)
        self._place()

    def _place(self, event: Any = None) -> None:
        del event
        y = self.size[1] / 2
        self.left.pos = (48, y)
        self.right.pos = (self.size[0] - 6, y)


class _Panel:
    """A title strip over a framed view box on the step axis, with a y axis at its left and a
    vertical step cursor."""

    def __init__(self, root: Any, text: tuple[float, ...], fonts: FontManager, flip: bool) -> None:
        self.title_bar = _TitleBar(text, fonts)
        self.title_bar.parent = root
        self.label = self.title_bar.left
        self.view = scene.ViewBox(border_color=_BORDER, parent=root)
        self.camera = StepCamera(aspect=None)
        if flip:
            self.camera.flip = (False, True, False)
        self.view.camera = self.camera
        self.camera.rect = Rect(0.0, 0.0, 1.0, 1.0)
        self.axis = make_axis("left", text, integer=flip)
        self.axis.parent = root
        self.axis.link_view(self.view)
        self.cursor = scene.visuals.InfiniteLine(
            0.0, color=(*text[:3], 0.6), vertical=True, parent=self.view.scene
        )
        self.cursor.order = 1
        self.cursor.visible = False

    def contains(self, x: float, y: float) -> bool:
        return in_rect(self.camera.rect, x, y)

    def set_y(self, lo: float, hi: float) -> None:
        rect = self.camera.rect
        if (rect.bottom, rect.top) != (lo, hi):
            self.camera.rect = Rect(rect.left, lo, rect.width, hi - lo)

    def set_text_color(self, color: tuple[float, ...]) -> None:
        self.title_bar.left.color = self.title_bar.right.color = color
        self.cursor.set_data(color=(*color[:3], 0.6))
        axis = self.axis.axis
        axis.text_color = color
        axis.axis_color = color
        axis.tick_color = color


class _ColourBar:
    """A heatmap's colour scale, drawn at the right of its title strip: the low end, the colours
    from low to high, the high end (in the scale's units, log10 for a log scale)."""

    WIDTH = 96
    HEIGHT = 8
    END_PX = 34  # room for each end's number

    def __init__(self, bar: _TitleBar, text: tuple[float, ...], fonts: FontManager) -> None:
        self.bar = bar
        self.image = scene.visuals.Image(
            np.zeros((1, _LEVELS, 4), np.float32), interpolation="nearest", parent=bar
        )
        self.image.transform = STTransform(scale=(self.WIDTH / _LEVELS, self.HEIGHT))
        self.low = plot_text(bar, text, fonts, anchor_x="right")
        self.high = plot_text(bar, text, fonts, anchor_x="left")
        self.visuals = (self.image, self.low, self.high)
        self.colours = np.zeros((_LEVELS, 4), np.float32)
        bar.events.resize.connect(self.place)
        self.place()

    @property
    def left(self) -> float:
        return float(self.bar.size[0] - 6 - self.END_PX - self.WIDTH)

    def place(self, event: Any = None) -> None:
        del event
        x, y = self.left, self.bar.size[1] / 2
        self.image.transform.translate = (x, y - self.HEIGHT / 2)
        self.low.pos = (x - 4, y)
        self.high.pos = (x + self.WIDTH + 4, y)

    def show(self, scale: Scale, cmap: str, shown: bool) -> None:
        self.colours = _colors(cmap)[:_LEVELS]  # drawn low to high (RGBA rows)
        self.image.set_data(self.colours[None])
        self.low.text, self.high.text = (f"{end:g}" for end in scale.clim)
        for visual in self.visuals:
            visual.visible = shown

    def contains(self, x: float, y: float) -> bool:
        """Whether title-strip pixel (x, y) is on the bar or its numbers."""
        left = self.left - self.END_PX
        return left <= x <= left + self.WIDTH + 2 * self.END_PX and 0 <= y <= self.bar.size[1]


class _Heatmap(_Panel):
    """A row x step image through the colour map (empty cells transparent), its colour bar, and
    the rows of the selected layer marked."""

    def __init__(self, root: Any, text: tuple[float, ...], fonts: FontManager, title: str) -> None:
        super().__init__(root, text, fonts, flip=True)
        self.title = title
        self.note = ""  # the colour scale in words
        self.colour_bar = _ColourBar(self.title_bar, text, fonts)
        self.group = 1  # layers an image row holds
        self.data = empty_image(WIDTH)
        self.image = scene.visuals.Image(
            np.zeros((1, WIDTH, 4), np.float32),
            clim=(0.0, 1.0),
            interpolation="nearest",
            parent=self.view.scene,
        )
        self.image.transform = STTransform()
        self.marks = row_marks(self.view.scene, order=1)

    def set_text_color(self, color: tuple[float, ...]) -> None:
        super().set_text_color(color)
        self.colour_bar.low.color = self.colour_bar.high.color = color

    @property
    def values(self) -> npt.NDArray[np.float32]:
        """The (rows, WIDTH) values shown (NaN: nothing measured)."""
        return self.data.values

    def show(self, data: StepImage, scale: Scale, cmap: str, note: str) -> None:
        self.data, self.note = data, note
        rows = data.values.shape[0]
        height = self.view.rect.height  # 1 while the panel is collapsed: merge nothing then
        group = self.group = rows_per_pixel(rows, height) if height > 1 else 1
        shown = group_rows(data.values, group)
        normalized = scale.normalize(shown).ravel()
        rgba = _colors(cmap)[_levels(normalized)].reshape(len(shown), WIDTH, 4)
        self.image.set_data(rgba if rows else np.zeros((1, WIDTH, 4), np.float32))
        self.colour_bar.show(scale, cmap, shown=not data.empty)
        self.image.transform.scale = (data.axis.stride, float(group))
        self.image.transform.translate = (data.axis.x0, -0.5)  # row r centred on y = r
        self.set_y(-0.5, max(rows, 1) - 0.5)
        stride = f", {data.axis.stride} steps a column" if data.axis.stride > 1 else ""
        merged = f", max of {group} layers a row" if group > 1 else ""
        self.label.text = f"{self.title}  ({note}{stride}{merged})"

    def cell(self, x: float, y: float) -> tuple[int, int]:
        """(row, column) under scene (x, y); off the image: -1 in either."""
        rows, width = self.data.values.shape
        row, column = int(np.floor(y + 0.5)), self.data.axis.column_at(x)
        return (row if 0 <= row < rows else -1), (column if 0 <= column < width else -1)

    def mark(self, row: int, color: tuple[float, ...]) -> None:
        mark_row(self.marks, row, color)


def rows_per_pixel(rows: int, pixels: float) -> int:
    """How many rows one image row holds so that every image row gets at least a pixel."""
    return max(1, int(np.ceil(rows / max(pixels, 1.0))))


def group_rows(values: npt.NDArray[np.float32], group: int) -> npt.NDArray[np.float32]:
    """The largest value of each ``group`` consecutive rows (NaN where all are NaN): with more
    layers than pixels a spike still shows, instead of aliasing into stripes."""
    if group <= 1:
        return values
    rows, width = values.shape
    padded = np.full((-(-rows // group) * group, width), np.nan, np.float32)
    padded[:rows] = values
    grouped: npt.NDArray[np.float32] = np.fmax.reduce(padded.reshape(-1, group, width), axis=1)
    return grouped


class _MetricPlot(_Panel):
    """One training metric: the raw values as a faint line, their EMA (TensorBoard's smoothing)
    as a bold one, both broken at non-finite values, and a marker at the top of the plot for
    every non-finite value. In log scale the scene y is log10 of the values."""

    def __init__(self, root: Any, text: tuple[float, ...], fonts: FontManager) -> None:
        super().__init__(root, text, fonts, flip=False)
        self.name = ""
        self.steps = np.zeros(0, np.int64)
        self.values = np.zeros(0, np.float64)  # as received
        self.shown = np.zeros(0, np.float64)  # the bold line's scene y (NaN: a break)
        self.smoothing = 0.0
        self.log = False
        self.raw_line = self._line(0.35)
        self.line = self._line(1.0)
        self.markers = scene.visuals.Markers(parent=self.view.scene)
        self.markers.order = 1
        self.markers.visible = False
        self.nonfinite = np.zeros(0, np.int64)  # steps whose value is NaN or infinite
        self._fitted: tuple[float, float] | None = None

    def _line(self, alpha: float) -> Any:
        color = (*Color(_LINE_COLOR).rgb, alpha)
        return scene.visuals.Line(
            pos=np.zeros((2, 2), np.float32),
            color=color,
            width=1.5 if alpha == 1.0 else 1.0,
            method="gl",
            parent=self.view.scene,
        )

    def show(
        self,
        name: str,
        steps: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        smoothing: float = 0.0,
        log: bool = False,
    ) -> None:
        self.name, self.steps, self.values = name, steps, values
        self.smoothing, self.log = smoothing, log
        self.nonfinite = steps[~np.isfinite(values)]
        raw = self._scene_y(values)
        self.shown = self._scene_y(ema(values, smoothing)) if smoothing > 0 else raw
        _set_broken_line(self.line, steps, self.shown)
        self.raw_line.visible = smoothing > 0 and _set_broken_line(self.raw_line, steps, raw)
        set_log(self.axis, log)
        self._fitted = None
        if not len(steps):
            self.label.text = f"{name}: no data yet (the trainer's log_metrics)"
            return
        kept = values[np.isfinite(values)]
        text = f"{name}" + (" (log)" if log else "")
        if len(kept):
            text += f"  latest {kept[-1]:.4g}  range {kept.min():.4g} .. {kept.max():.4g}"
        if smoothing > 0:
            text += f"  smoothing {smoothing:.2f}"
        if len(self.nonfinite):
            text += f"  {len(self.nonfinite)} non-finite (x), last at step {self.nonfinite[-1]}"
        self.label.text = text

    def _scene_y(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if not self.log:
            return values
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log10(values), np.nan)

    def fit_y(self) -> None:
        """Fit y to the finite values within the visible steps (once per x range)."""
        rect = self.camera.rect
        if self._fitted == (rect.left, rect.right):
            return
        self._fitted = (rect.left, rect.right)
        inside = (self.steps >= rect.left) & (self.steps <= rect.right)
        raw = self._scene_y(self.values)
        kept = np.concatenate([raw[inside], self.shown[inside]])
        kept = kept[np.isfinite(kept)]
        lo, hi = (float(kept.min()), float(kept.max())) if len(kept) else (0.0, 1.0)
        pad = (hi - lo) * 0.08 if hi > lo else abs(lo) * 0.1 + 1e-6
        self.set_y(lo - pad, hi + 2 * pad)  # room at the top for the non-finite markers
        bad = self.nonfinite[(self.nonfinite >= rect.left) & (self.nonfinite <= rect.right)]
        self.markers.visible = len(bad) > 0
        if len(bad):
            top = hi + pad
            pos = np.column_stack([bad, np.full(len(bad), top)]).astype(np.float32)
            self.markers.set_data(
                pos, symbol="x", size=9, face_color=_NONFINITE_COLOR, edge_color=_NONFINITE_COLOR
            )

    def value_at(self, step: int) -> float | None:
        at = np.flatnonzero(self.steps == step)
        return float(self.values[at[-1]]) if len(at) else None

    def describe_axis(self) -> str:
        """What the y axis shows, and its visible range."""
        rect = self.camera.rect
        lo, hi = (10**rect.bottom, 10**rect.top) if self.log else (rect.bottom, rect.top)
        scale = "log scale" if self.log else "linear scale"
        smooth = f", EMA smoothing {self.smoothing:.2f}" if self.smoothing > 0 else ""
        return f"y axis: training metric {self.name} ({scale}{smooth}), {lo:.4g} .. {hi:.4g}"


def _set_broken_line(line: Any, steps: npt.NDArray[np.int64], y: npt.NDArray[np.float64]) -> bool:
    """Draw (steps, y) joining neighbours that are both finite; False when nothing is drawn."""
    finite = np.isfinite(y)
    pairs = np.flatnonzero(finite[:-1] & finite[1:])
    line.visible = len(pairs) > 0
    if len(pairs):
        pos = np.column_stack([steps, np.where(finite, y, 0.0)]).astype(np.float32)
        line.set_data(pos=pos, connect=np.column_stack([pairs, pairs + 1]))
    return bool(len(pairs))


def plot_heights(plots: float, grads: bool) -> tuple[float, float, float]:
    """Pixel heights of the metric plot and the two heatmaps sharing ``plots`` pixels: the
    metric 2/7 but at least ``MIN_METRIC_PX`` (while the heatmaps keep ``MIN_HEATMAP_PX``
    each), the heatmaps the rest, 3 : 2 (all to the first when ``grads`` is False)."""
    heatmaps = 2 if grads else 1
    metric = max(plots * 2 / 7, min(MIN_METRIC_PX, plots - heatmaps * MIN_HEATMAP_PX))
    rest = plots - metric
    if not grads:
        return metric, rest, 0.0
    below = max(MIN_HEATMAP_PX, rest * 2 / 5)
    return metric, rest - below, below


class OverviewView(NamedPlots):
    """Reads the session's history, grad norms and metrics; call ``refresh`` at a few Hz."""

    def __init__(self, session: Session, size: tuple[int, int] = (900, 420)) -> None:
        self.session = session
        theme = THEMES[session.view.values.theme]
        self.canvas = scene.SceneCanvas(keys=None, size=size, show=False, bgcolor=theme.background)
        self.canvas.unfreeze()
        root = self.canvas.scene
        fonts = FontManager()
        self.metric = _MetricPlot(root, theme.text, fonts)
        self.activation = _Heatmap(root, theme.text, fonts, "layers x steps")
        self.grads = _Heatmap(root, theme.text, fonts, "block gradient norm")
        self.step_axis = make_axis("bottom", theme.text, integer=True)
        self.step_axis.parent = root
        self.step_axis.link_view(self.grads.view)
        self.readout_text = self.metric.title_bar.right
        self._grads_shown = False
        self._dirty = {"activation", "grads", "metric"}
        self.plots: dict[str, _Panel] = {
            "metric": self.metric,
            "activation": self.activation,
            "grads": self.grads,
        }
        self._layout()
        self.canvas.events.resize.connect(self._layout)
        for heatmap in (self.activation, self.grads):
            self.metric.camera.link(heatmap.camera, axis="x")
        for panel in self.plots.values():
            panel.camera.user_moved.connect(self._on_user_moved)
        self.hovered = Signal()  # (text): what the pointer is over ("" when nothing)
        self.readout = ""
        self.cursor_step = -1
        self.follow = True  # the x range follows the data until the user pans or zooms
        session.history.changed.connect(self._on_history)
        session.grad_norms.changed.connect(self._on_grads)
        session.optimizer.changed.connect(self._on_grads)
        self.block_signal = "grad_norm"  # a key of BLOCK_SIGNALS
        session.topology.changed.connect(self._on_history)
        session.view.changed.connect(self._on_view)
        session.selection.selected_changed.connect(self._on_selected)
        session.metrics.changed.connect(self._on_metrics)
        session.ranks.changed.connect(self._on_metrics)
        events = self.canvas.events
        events.mouse_move.connect(self._on_mouse_move)
        self.clicks = ClickFilter(self.canvas, self.click)
        events.mouse_double_click.connect(self._on_double_click)
        self.refresh()

    @property
    def native(self) -> Any:
        return self.canvas.native

    def _layout(self, event: Any = None) -> None:
        """Stack title strip + plot three times over the step axis: the metric at least
        ``MIN_METRIC_PX`` high, the heatmaps sharing the rest 3 : 2 (the gradient heatmap only
        its title strip while it has no data)."""
        del event
        w, h = self.canvas.size
        m = _MARGIN
        left, right = m + _AXIS_PX, w - m
        plots = max(30.0, h - 2 * m - 3 * _TITLE_PX - _STEP_AXIS_PX)
        heights = plot_heights(plots, grads=not self.grads.data.empty)
        self._grads_shown = not self.grads.data.empty
        y = float(m)
        for panel, height in zip((self.metric, self.activation, self.grads), heights, strict=True):
            panel.title_bar.rect = Rect(m, y, w - 2 * m, _TITLE_PX)
            y += _TITLE_PX
            panel.view.visible = panel.axis.visible = height > 0
            panel.view.rect = Rect(left, y, right - left, max(height, 1.0))
            panel.axis.rect = Rect(m, y, _AXIS_PX, max(height, 1.0))
            y += height
        self.step_axis.rect = Rect(left, y, right - left, _STEP_AXIS_PX)
        for axis in (*(p.axis for p in self.plots.values()), self.step_axis):
            axis.sync()
        for name in ("activation", "grads"):  # a new height may merge rows differently
            heat = self.activation if name == "activation" else self.grads
            if rows_per_pixel(heat.values.shape[0], heat.view.rect.height) != heat.group:
                self._dirty.add(name)

    # -- model changes --------------------------------------------------------------------------

    def _on_history(self, *args: object) -> None:
        self._dirty.add("activation")

    def _on_grads(self) -> None:
        self._dirty.add("grads")

    def show_block_signal(self, name: str) -> None:
        """Show ``name`` (a key of ``BLOCK_SIGNALS``) in the per-block heatmap."""
        if name not in BLOCK_SIGNALS:
            raise ValueError(f"unknown block signal {name!r}")
        self.block_signal = name
        self._dirty.add("grads")

    def _on_metrics(self, *args: object) -> None:
        self._dirty.add("metric")

    def _on_view(self, name: str, value: object) -> None:
        if name in ("heatmap_statistic", "heatmap_kind"):
            self._dirty.add("activation")
        elif name == "colormap":
            self._dirty.update(("activation", "grads"))
        elif name in ("overview_metric", "metric_smoothing", "metric_log"):
            self._dirty.add("metric")
        elif name == "theme":
            theme = THEMES[str(value)]
            self.canvas.bgcolor = theme.background
            for panel in self.plots.values():
                panel.set_text_color(theme.text)
            axis = self.step_axis.axis
            axis.text_color = axis.axis_color = axis.tick_color = theme.text
            self.readout_text.color = theme.text
            self._on_selected(self.session.selection.selected)
            self.canvas.update()

    def _on_selected(self, index: int) -> None:
        sites = self.session.topology.sites
        row = sites[index].layer if 0 <= index < len(sites) else -1
        color = THEMES[self.session.view.values.theme].selected
        self.activation.mark(row, color)
        self.grads.mark(row if row < self.grads.values.shape[0] else -1, color)
        self.canvas.update()

    def _on_user_moved(self) -> None:
        self.follow = False

    # -- pushing --------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute and push what changed since the last call (nothing when nothing did)."""
        dirty, self._dirty = self._dirty, set()
        view = self.session.view.values
        if "activation" in dirty:
            field, kind = view.heatmap_statistic, view.heatmap_kind
            data = layer_image(self.session.history, self.session.topology, field, kind, WIDTH)
            kind_text = "mean of attn, mlp, residual" if kind == "mean" else kind
            self.activation.title = f"layers x steps: {kind_text} {SCALES[field].label}"
            self.activation.show(data, SCALES[field], view.colormap, SCALES[field].describe())
            if data.empty:
                self.activation.label.text = (
                    "layers x steps: nothing measured yet (File > Connect to a trainer, "
                    "or run `synapse sim`); one row per layer, one column per step"
                )
        if "grads" in dirty:
            title, scale = BLOCK_SIGNALS[self.block_signal]
            optimizer = self.session.optimizer
            ring = (
                getattr(optimizer, self.block_signal) if self.block_signal != "grad_norm" else None
            )
            data = grad_image(ring or self.session.grad_norms, WIDTH)
            self.grads.title = title
            self.grads.show(data, scale, view.colormap, scale.describe())
            if data.empty:
                self.grads.label.text = (
                    f"{title}: none yet (the probe's optimizer=)"
                    if ring is not None
                    else "block gradient norms: none yet (the probe's grads=True)"
                )
        if "metric" in dirty:
            name, metrics = view.overview_metric, self.session.metrics
            choice = self.session.ranks.choice
            steps, values = metrics.series(name, None if choice == MERGED else choice)
            if not len(steps) and choice != MERGED:  # that rank does not log it: all ranks'
                steps, values = metrics.series(name)
            self.metric.show(name, steps, values, view.metric_smoothing, view.metric_log)
        if self._grads_shown == self.grads.data.empty:  # the gradient heatmap came or went
            self._layout()
        if dirty:
            if self.follow:
                self._follow()
            self._on_selected(self.session.selection.selected)
        self.metric.fit_y()
        if dirty:
            self.canvas.update()

    def _follow(self) -> None:
        """Frame the steps the heatmaps hold (the metric's, before they hold any): the metric
        history is far longer than theirs."""
        spans = [(p.data.lo, p.data.hi) for p in (self.activation, self.grads) if not p.data.empty]
        if not spans and len(self.metric.steps):
            spans.append((int(self.metric.steps[0]), int(self.metric.steps[-1])))
        if not spans:
            return
        lo = min(s[0] for s in spans) - 0.5
        hi = max(s[1] for s in spans) + 0.5
        rect = self.metric.camera.rect
        if (rect.left, rect.right) != (lo, hi):
            self.metric.camera.rect = Rect(lo, rect.bottom, hi - lo, rect.height)

    def show_steps(self, lo: float, hi: float) -> None:
        """Show steps ``lo`` .. ``hi`` in all three plots (stops following)."""
        self.follow = False
        rect = self.metric.camera.rect
        self.metric.camera.rect = Rect(lo - 0.5, rect.bottom, hi - lo + 1.0, rect.height)

    # -- pointer --------------------------------------------------------------------------------

    def hover(self, pos: tuple[float, float] | None) -> None:
        """Move the step cursor and the readout to canvas pixel ``pos`` (None: off the canvas)."""
        hit = self.plot_at(pos) if pos is not None else None
        step = int(np.floor(hit[1] + 0.5)) if hit is not None else -1
        for panel in self.plots.values():
            panel.cursor.visible = hit is not None
            if hit is not None:
                panel.cursor.set_data(pos=float(step))
        self.cursor_step = step
        self.readout = self._describe(*hit) if hit is not None else ""
        axis = self.axis_at(pos) if pos is not None and hit is None else None
        if axis is None and pos is not None and hit is None:
            axis = self.colour_bar_at(pos)
        if axis is not None:
            self.readout = self.describe_axis(axis)
        self.readout_text.text = self.readout
        self.hovered.emit(self.readout)
        self.canvas.update()

    def axis_at(self, pos: tuple[float, float]) -> str | None:
        """The panel whose y axis is under canvas pixel ``pos``, if any."""
        for name, panel in self.plots.items():
            if panel.axis.visible and panel.axis.rect.contains(*pos):
                return name
        return None

    def colour_bar_at(self, pos: tuple[float, float]) -> str | None:
        """The heatmap whose colour bar is under canvas pixel ``pos``, if any."""
        for name, heat in (("activation", self.activation), ("grads", self.grads)):
            x, y = heat.title_bar.pos
            bar = heat.colour_bar
            if bar.image.visible and bar.contains(pos[0] - x, pos[1] - y):
                return name
        return None

    def describe_axis(self, panel: str) -> str:
        """What a panel's y axis and colours show, and their ranges."""
        if panel == "metric":
            return self.metric.describe_axis()
        heat = self.activation if panel == "activation" else self.grads
        rows = heat.values.shape[0]
        what = "layer" if panel == "activation" else "block"
        return f"y axis: {what} 0 .. {max(rows - 1, 0)}; colour: {heat.title} ({heat.note})"

    def _describe(self, panel: str, x: float, y: float) -> str:
        step = int(np.floor(x + 0.5))
        parts = [f"step {step}"]
        value = self.metric.value_at(step)
        if value is not None:
            parts.append(f"{self.metric.name} {value:.4g}")
        if panel in ("activation", "grads"):
            heat = self.activation if panel == "activation" else self.grads
            row, column = heat.cell(x, y)
            if row >= 0 and column >= 0:
                first, last = heat.data.axis.steps_of(column)
                span = f" (steps {first}..{last})" if last > first else ""
                cell = heat.values[row, column]
                what = (
                    f"layer {row} {self.session.view.values.heatmap_kind} "
                    f"{self.session.view.values.heatmap_statistic}"
                    if panel == "activation"
                    else f"block {row} grad norm"
                )
                shown = "not measured" if np.isnan(cell) else f"{cell:.4g}"
                parts.append(f"{what} {shown}{span}")
        return "   ".join(parts)

    def site_of_layer(self, layer: int) -> int:
        """The site the overview stands for in ``layer``: the chosen kind's, or for "mean" the
        residual (else the layer's first) site; -1 when none."""
        kind = self.session.view.values.heatmap_kind
        wanted = KIND_CODES["residual" if kind == "mean" else kind][0]
        in_layer = [s for s in self.session.topology.sites if s.layer == layer]
        for site in in_layer:
            if site.kind == wanted:
                return site.index
        return in_layer[0].index if in_layer and kind == "mean" else -1

    def click(self, pos: tuple[float, float]) -> None:
        """Select the site of the heatmap row under canvas pixel ``pos``."""
        hit = self.plot_at(pos)
        if hit is None or hit[0] == "metric":
            return
        heat = self.activation if hit[0] == "activation" else self.grads
        row, _ = heat.cell(hit[1], hit[2])
        if row >= 0:
            index = self.site_of_layer(row)
            if index >= 0:
                self.session.selection.select(index)

    def _on_mouse_move(self, event: Any) -> None:
        if event.is_dragging:
            return
        self.hover((float(event.pos[0]), float(event.pos[1])))

    def _on_double_click(self, event: Any) -> None:
        del event
        self.follow_newest()

    def follow_newest(self) -> None:
        """Frame every step held again, and keep following new ones."""
        self.follow = True
        self._follow()
        self.metric.fit_y()
        self.canvas.update()

    def close(self) -> None:
        self.canvas.close()
