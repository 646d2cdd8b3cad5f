"""A heatmap's context menu: copy its numbers as CSV (one row per layer, one column per step
column, as shown; empty cells where nothing was measured)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QMenu, QWidget

from synapse_desktop.scene.steps import StepImage


def heatmap_csv(image: StepImage, row_names: Sequence[str], corner: str = "layer") -> str:
    """The columns of ``image`` that hold data, as CSV: a header of steps (a column of several
    steps is named by its first one), then one line per row."""
    values = image.values
    if image.empty or values.size == 0:
        return ""
    axis = image.axis
    ends = axis.columns(np.array([image.lo, image.hi], np.int64))
    first, last = max(0, int(ends[0])), min(axis.width - 1, int(ends[1]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([corner, *(axis.steps_of(c)[0] for c in range(first, last + 1))])
    for r in range(values.shape[0]):
        name = row_names[r] if r < len(row_names) else str(r)
        cells = values[r, first : last + 1].tolist()
        writer.writerow([name, *("" if math.isnan(v) else f"{v:.6g}" for v in cells)])
    return out.getvalue()


def install_overview_menu(panel: QWidget) -> QMenu:
    """Give the overview dock's plots a context menu that copies either heatmap as CSV."""
    view = panel.view  # type: ignore[attr-defined]
    native = view.native
    menu = QMenu(native)
    heatmaps = (
        ("layers x steps", view.activation, "layer"),
        ("block gradient norm", view.grads, "block"),
    )

    def show(pos: QPoint) -> None:
        menu.clear()
        for title, heatmap, corner in heatmaps:
            action = menu.addAction(f"Copy {title} as CSV")
            action.setEnabled(not heatmap.data.empty)
            action.triggered.connect(lambda _=False, h=heatmap, c=corner: copy(h, c))
        menu.popup(native.mapToGlobal(pos))

    def copy(heatmap, corner: str) -> None:  # type: ignore[no-untyped-def]
        rows = heatmap.data.values.shape[0]
        QApplication.clipboard().setText(
            heatmap_csv(heatmap.data, [str(r) for r in range(rows)], corner)
        )

    native.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    native.customContextMenuRequested.connect(show)
    return menu
