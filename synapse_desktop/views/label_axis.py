"""An axis whose ticks sit at whole positions 0 .. n-1 and carry given labels (MoE layer ids,
token strings), thinned to as many as fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from vispy.visuals.axis import Ticker

from synapse_desktop.views.axes import Axis, make_axis

_CHAR_PX = 5.5  # about one character of the 7 pt tick font


class LabelTicker(Ticker):  # type: ignore[misc]
    """Ticks at positions ``0 .. len(labels) - 1``, every 1, 2, 5, 10, ... so that labels on a
    horizontal axis do not overlap (on a vertical one, at least ``min_px`` apart)."""

    def __init__(self, axis: Any, anchors: Any = None, min_px: float = 14.0) -> None:
        super().__init__(axis, anchors=anchors)
        self.labels: tuple[str, ...] = ()
        self.min_px = min_px

    def _get_tick_frac_labels(self) -> tuple[Any, Any, list[str]]:
        d0, d1 = (float(v) for v in self.axis.domain)
        lo, hi = min(d0, d1), max(d0, d1)
        length = float(np.hypot(*np.subtract(self.axis.pos[1], self.axis.pos[0])))
        n = len(self.labels)
        if hi - lo <= 0 or length <= 0 or n == 0:
            return np.zeros(0), np.zeros(0), []
        (x0, y0), (x1, y1) = self.axis.pos[0][:2], self.axis.pos[1][:2]
        horizontal = abs(x1 - x0) > abs(y1 - y0)
        widest = max(len(label) for label in self.labels) if horizontal else 0
        room = max(self.min_px, widest * _CHAR_PX + 8)
        per_unit = length / (hi - lo)
        step = next(m * 10**e for e in range(8) for m in (1, 2, 5) if per_unit * m * 10**e >= room)
        first = max(0, int(np.ceil(lo / step)) * step)
        values = np.arange(first, min(n - 1, np.floor(hi)) + 1, step, dtype=np.int64)
        labels = [self.labels[v] for v in values]
        return (values - d0) / (d1 - d0), np.zeros(0), labels


def make_label_axis(orientation: str, text: tuple[float, ...]) -> tuple[Axis, LabelTicker]:
    """A small axis in the theme's text colour with a ``LabelTicker``."""
    widget = make_axis(orientation, text, integer=False)
    ticker = LabelTicker(widget.axis, anchors=widget.axis.ticker._anchors)
    widget.axis.ticker = ticker
    return widget, ticker


def set_labels(widget: Axis, ticker: LabelTicker, labels: Sequence[str]) -> None:
    """Show ``labels`` (redrawn at the next draw when they changed)."""
    labels = tuple(labels)
    if labels != ticker.labels:
        ticker.labels = labels
        widget.axis._need_update = True
        widget.axis.update()


def short_token(token: str, limit: int = 8) -> str:
    """A token string for a tick label: whitespace made visible, cut to ``limit`` characters."""
    shown = token.replace("\n", "\u21b5").replace("\t", "\u21e5").replace(" ", "\u00b7")
    shown = shown or "\u2205"
    return shown if len(shown) <= limit else shown[: limit - 1] + "\u2026"
