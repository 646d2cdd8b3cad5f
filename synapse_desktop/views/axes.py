"""Axis widgets shared by the 2D plot canvases (overview, depth profile)."""

from __future__ import annotations

from typing import Any

import numpy as np
from vispy import scene
from vispy.visuals.axis import Ticker


class Axis(scene.AxisWidget):  # type: ignore[misc]
    """An axis widget that can catch up with layout moves (it follows camera changes only)."""

    def sync(self) -> None:
        """Recompute the domain from where the axis and its view are now."""
        self._view_changed()


class IntegerTicker(Ticker):  # type: ignore[misc]
    """Ticks at whole numbers (layers, blocks, steps), as many as fit about 22 px apart."""

    def _get_tick_frac_labels(self) -> tuple[Any, Any, list[str]]:
        d0, d1 = (float(v) for v in self.axis.domain)
        lo, hi = min(d0, d1), max(d0, d1)
        length = float(np.hypot(*np.subtract(self.axis.pos[1], self.axis.pos[0])))
        if hi - lo <= 0 or length <= 0:
            return np.zeros(0), np.zeros(0), []
        step = next(
            m * 10**e for e in range(15) for m in (1, 2, 5) if length * m * 10**e >= 22 * (hi - lo)
        )
        values = np.arange(np.ceil(lo / step) * step, hi + 1e-9, step)
        return (values - d0) / (d1 - d0), np.zeros(0), [str(round(v)) for v in values]


def make_axis(orientation: str, text: tuple[float, ...], integer: bool) -> Axis:
    """A small axis in the theme's text colour; ``integer``: ticks at whole numbers only."""
    widget = Axis(
        orientation=orientation,
        text_color=text,
        axis_color=text,
        tick_color=text,
        font_size=7,
        tick_label_margin=4 if orientation == "left" else 8,
        axis_width=1,
    )
    if integer:
        widget.axis.ticker = IntegerTicker(widget.axis, anchors=widget.axis.ticker._anchors)
    return widget


class LogTicker(Ticker):  # type: ignore[misc]
    """Ticks of an axis whose domain is log10 of the values, labelled with the values: at
    powers of ten, or at 1-2-5 steps within a decade when the range spans less than two."""

    def _get_tick_frac_labels(self) -> tuple[Any, Any, list[str]]:
        d0, d1 = (float(v) for v in self.axis.domain)
        lo, hi = min(d0, d1), max(d0, d1)
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo <= 0:
            return np.zeros(0), np.zeros(0), []
        if hi - lo >= 2:
            values = np.arange(np.ceil(lo), np.floor(hi) + 1)
        else:
            decades = np.arange(np.floor(lo), np.ceil(hi) + 1)
            candidates = np.log10(np.outer(10.0**decades, (1, 2, 5)).ravel())
            values = candidates[(candidates >= lo) & (candidates <= hi)]
        return (values - d0) / (d1 - d0), np.zeros(0), [f"{10**v:.3g}" for v in values]


def set_log(widget: Axis, log: bool) -> None:
    """Switch an axis between linear ticks and ``LogTicker`` (its domain then is log10)."""
    axis = widget.axis
    if isinstance(axis.ticker, LogTicker) != log:
        anchors = axis.ticker._anchors
        axis.ticker = LogTicker(axis, anchors=anchors) if log else Ticker(axis, anchors=anchors)
        widget.sync()
