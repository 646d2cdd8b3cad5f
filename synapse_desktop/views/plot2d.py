"""Shared pieces of the 2D plots: pixels to scene and back, row outlines, small labels."""

from __future__ import annotations

from collections.abc import Mapping
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


def in_rect(rect: Any, x: float, y: float) -> bool:
    """Whether scene point (x, y) lies in a camera's ``rect``."""
    return bool(rect.left <= x <= rect.right and rect.bottom <= y <= rect.top)


def row_marks(parent: Any, order: int = 2) -> list[scene.visuals.InfiniteLine]:
    """The two hidden horizontal lines that outline a row of a rows-down plot."""
    marks = [scene.visuals.InfiniteLine(0.0, vertical=False, parent=parent) for _ in range(2)]
    for mark in marks:
        mark.order = order
        mark.visible = False
    return marks


def mark_row(marks: list[scene.visuals.InfiniteLine], row: int, color: tuple[float, ...]) -> None:
    """Outline row ``row`` (centred on y = row) with ``marks``; a negative row hides them."""
    for mark, y in zip(marks, (row - 0.5, row + 0.5), strict=True):
        mark.visible = row >= 0
        if row >= 0:
            mark.set_data(pos=float(y), color=color)


class NamedPlots:
    """Pointer geometry of a view made of named plots on one canvas.

    The view sets ``canvas`` and ``plots`` (name -> a plot with a ``view`` ViewBox and a
    ``contains(x, y)`` in its scene coordinates).
    """

    canvas: Any
    plots: Mapping[str, Any]

    def scene_pos(self, plot: str, pos: tuple[float, float]) -> tuple[float, float]:
        """Canvas pixel ``pos`` in the scene coordinates of ``plot``."""
        return to_scene(self.canvas, self.plots[plot].view, pos)

    def project(self, plot: str, x: float, y: float) -> tuple[float, float]:
        """Canvas pixel of scene point (x, y) of ``plot``."""
        return to_canvas(self.canvas, self.plots[plot].view, x, y)

    def plot_at(self, pos: tuple[float, float]) -> tuple[str, float, float] | None:
        """(plot, scene x, scene y) of the plot under canvas pixel ``pos``; None off every plot."""
        for name, plot in self.plots.items():
            x, y = self.scene_pos(name, pos)
            if plot.contains(x, y):
                return name, x, y
        return None
