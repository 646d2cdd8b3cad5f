"""Shared pieces of the 2D plots: canvas pixels to a ViewBox's scene and back, small labels."""

from __future__ import annotations

from typing import Any

from vispy import scene
from vispy.visuals.text.text import FontManager


def to_scene(canvas: Any, view: Any, pos: tuple[float, float]) -> tuple[float, float]:
    """Canvas pixel ``pos`` in the scene coordinates of ``view``."""
    x, y = canvas.scene.node_transform(view.scene).map(pos)[:2]
    return float(x), float(y)


def to_canvas(canvas: Any, view: Any, x: float, y: float) -> tuple[float, float]:
    """Canvas pixel of scene point (x, y) of ``view``."""
    px, py = view.scene.node_transform(canvas.scene).map((x, y))[:2]
    return float(px), float(py)


def plot_text(
    parent: Any,
    color: tuple[float, ...],
    fonts: FontManager,
    *,
    text: str = "",
    size: float = 8,
    anchor_x: str = "left",
) -> scene.visuals.Text:
    """A small text visual, vertically centred on its position (titles, legends, ranges)."""
    return scene.visuals.Text(
        text,
        color=color,
        font_size=size,
        anchor_x=anchor_x,
        anchor_y="center",
        parent=parent,
        font_manager=fonts,
    )
