"""Colours of the scene: colour maps through VisPy, and the two themes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from vispy.color import Colormap, get_colormap


@dataclass(frozen=True, slots=True)
class Theme:
    background: str
    text: tuple[float, float, float, float]
    empty: tuple[float, float, float, float]  # a plane with no statistic yet
    points: tuple[float, float, float]
    additive: bool
    hover: tuple[float, float, float, float]
    selected: tuple[float, float, float, float]


THEMES = {
    "dark": Theme(
        "#0e1116",
        (0.85, 0.88, 0.92, 1.0),
        (0.22, 0.24, 0.28, 1.0),
        (0.35, 0.9, 1.0),
        True,
        (0.9, 0.9, 0.9, 1.0),
        (0.2, 1.0, 0.6, 1.0),
    ),
    "light": Theme(
        "#f3f2ee",
        (0.12, 0.13, 0.16, 1.0),
        (0.78, 0.78, 0.8, 1.0),
        (0.0, 0.35, 0.75),
        False,
        (0.15, 0.15, 0.15, 1.0),
        (0.0, 0.6, 0.3, 1.0),
    ),
}


# Perceptual maps VisPy lacks, as control points (the dark end lifted off the background).
_ANCHORS = {
    "inferno": (
        "#1b0c41",
        "#4a0c6b",
        "#781c6d",
        "#a52c60",
        "#cf4446",
        "#ed6925",
        "#fb9b06",
        "#f7d13d",
        "#fcffa4",
    ),
    "plasma": (
        "#0d0887",
        "#41049d",
        "#6a00a8",
        "#8f0da4",
        "#b12a90",
        "#cc4778",
        "#e16462",
        "#f2844b",
        "#fca636",
        "#f0f921",
    ),
}


@lru_cache(maxsize=16)
def colormap(name: str) -> Colormap:
    if name in _ANCHORS:
        return Colormap(list(_ANCHORS[name]))
    return get_colormap(name)


@lru_cache(maxsize=16)
def _linear(name: str) -> tuple[npt.NDArray[np.float32], ...] | None:
    """Control points, bin widths and colours of a plain linear ``Colormap``, else None."""
    cmap = colormap(name)
    if (
        type(cmap) is not Colormap
        or cmap.interpolation != "linear"
        or cmap.high_color is not None
        or cmap.low_color is not None
    ):
        return None
    controls = cmap._controls
    widths = np.diff(controls).astype(np.float32)
    widths[widths == 0.0] = 1.0
    return controls, widths, cmap.colors.rgba


def map_values(
    name: str, normalized: npt.NDArray[np.float32], empty: tuple[float, float, float, float]
) -> npt.NDArray[np.float32]:
    """RGBA (n, 4) for values in 0..1; NaN gets ``empty``."""
    out = np.empty((len(normalized), 4), np.float32)
    known = ~np.isnan(normalized)
    if known.any():
        x = normalized[known]
        linear = _linear(name)
        if linear is None:  # vispy's maps take an (n, 1) column (fire fails on a flat array)
            out[known] = colormap(name).map(x[:, None]).astype(np.float32)
        else:
            # What ``Colormap.map`` computes for a linear map (vispy.color.colormap.mix), in
            # the same steps and types, without its per-call overhead (it runs once a step).
            controls, widths, rgba = linear
            step = np.clip(np.searchsorted(controls, x) - 1, 0, len(rgba) - 2).astype(np.int32)
            rel = x - controls[step]
            rel /= widths[step]
            t = np.clip(np.clip(rel, 0.0, 1.0)[:, None], 0.0, 1.0)
            out[known] = (1.0 - t) * rgba[step] + t * rgba[step + 1]
    out[~known] = empty
    return out


_TABLE_SIZE = 1024


@lru_cache(maxsize=16)
def _table(name: str) -> npt.NDArray[np.float32]:
    """The map at ``_TABLE_SIZE`` evenly spaced values from 0 to 1."""
    return map_values(name, np.linspace(0.0, 1.0, _TABLE_SIZE, dtype=np.float32), (0, 0, 0, 0))


def tint(
    name: str, normalized: npt.NDArray[np.float32], empty: tuple[float, float, float, float]
) -> npt.NDArray[np.float32]:
    """``map_values`` read from a table of 1024 colours (the nearest entry: within 1/2046 of
    the value, well under a byte of colour), in four numpy calls: the planes are recoloured at
    every step."""
    table = _table(name)
    known = normalized == normalized  # not NaN
    where = np.where(known, normalized, 0.0) * np.float32(_TABLE_SIZE - 1) + np.float32(0.5)
    out = table[where.astype(np.intp)]
    out[~known] = empty
    return out
