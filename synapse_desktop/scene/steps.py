"""Training steps as an image axis: per-step samples binned into fixed-width row x column images.

A column holds ``stride`` steps (a power of two, the finest that fits the window), its edges at
multiples of the stride so that they stay put while the window slides. Scene x is in steps: a
step ``s`` is centred on ``x = s`` when the stride is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.grad_norms import GradNorms
from synapse_desktop.models.history import FIELDS, History
from synapse_desktop.models.topology import Topology
from synapse_native.protocol import SiteKind

KIND_CODES = {
    "attn": (int(SiteKind.ATTN),),
    "mlp": (int(SiteKind.MLP),),
    "residual": (int(SiteKind.RESIDUAL),),
    "mean": (int(SiteKind.ATTN), int(SiteKind.MLP), int(SiteKind.RESIDUAL)),
}


@dataclass(frozen=True, slots=True)
class StepAxis:
    """Column ``c`` holds steps ``first + c * stride`` .. ``first + (c + 1) * stride - 1``."""

    first: int
    stride: int
    width: int

    @classmethod
    def spanning(cls, lo: int, hi: int, width: int, least: int = 1) -> StepAxis:
        """The finest axis of ``width`` columns that holds steps ``lo`` .. ``hi``, its stride at
        least ``least`` (rounded up to a power of two)."""
        stride = 1
        while stride < least:
            stride *= 2
        while hi // stride - lo // stride + 1 > width:
            stride *= 2
        return cls(lo // stride * stride, stride, width)

    @property
    def x0(self) -> float:
        """Scene x of column 0's left edge."""
        return self.first - 0.5

    def columns(self, steps: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The column of each step (outside ``0 .. width - 1`` when off the axis)."""
        return (np.asarray(steps, np.int64) - self.first) // self.stride

    def column_at(self, x: float) -> int:
        """The column under scene ``x`` (may be off the axis)."""
        return int(np.floor((x - self.x0) / self.stride))

    def steps_of(self, column: int) -> tuple[int, int]:
        """First and last step of ``column``."""
        start = self.first + column * self.stride
        return start, start + self.stride - 1


@dataclass(frozen=True, slots=True)
class StepImage:
    """``values[row, column]`` (NaN: nothing measured), its axis, and the steps it holds."""

    values: npt.NDArray[np.float32]
    axis: StepAxis
    lo: int = -1  # oldest step with data (-1: none)
    hi: int = -1  # newest

    @property
    def empty(self) -> bool:
        return self.lo < 0


def bin_max(
    rows: npt.NDArray[np.int64],
    steps: npt.NDArray[np.int64],
    values: npt.NDArray[np.floating],
    n_rows: int,
    axis: StepAxis,
) -> npt.NDArray[np.float32]:
    """An (n_rows, width) image of the samples (row, step, value): the largest value of each
    cell (so a spike survives a column of many steps), NaN where there is none."""
    out = np.full(n_rows * axis.width, np.nan, np.float32)
    columns = axis.columns(steps)
    keep = (columns >= 0) & (columns < axis.width) & ~np.isnan(values)
    cells = rows[keep] * axis.width + columns[keep]
    np.fmax.at(out, cells, np.asarray(values, np.float32)[keep])
    return out.reshape(n_rows, axis.width)


def sampling_gap(steps: npt.NDArray[np.int64]) -> int:
    """The usual distance between measured steps (the median gap; 1 when every step is). A
    column at least this wide holds a measurement, so sampled steps do not draw as stripes."""
    unique = np.unique(steps)
    if len(unique) < 2:
        return 1
    return max(1, int(np.median(np.diff(unique))))


def empty_image(width: int, n_rows: int = 0) -> StepImage:
    return StepImage(np.full((n_rows, width), np.nan, np.float32), StepAxis(0, 1, width))


def layer_image(
    history: History, topology: Topology, field: str, kind: str, width: int
) -> StepImage:
    """Row ``layer``: the statistic ``field`` of that layer's ``kind`` site over steps.

    ``kind`` "mean" averages the layer's attn, mlp and residual sites (each binned first).
    There is a row for every layer id up to the largest, whatever the kind.
    """
    n_rows = max((s.layer for s in topology.sites), default=-1) + 1
    kinds = KIND_CODES[kind]
    sites = sorted(
        (s for s in topology.sites if s.kind in kinds and s.index < len(history)),
        key=lambda s: s.layer,
    )
    if not sites:
        return empty_image(width, n_rows)
    index = np.array([s.index for s in sites], np.int64)
    layer = np.array([s.layer for s in sites], np.int64)
    steps = history.steps[index]
    values = history.values[index, :, FIELDS.index(field)]
    held = steps >= 0
    if not held.any():
        return empty_image(width, n_rows)
    lo, hi = int(steps[held].min()), int(steps[held].max())
    axis = StepAxis.spanning(lo, hi, width, least=sampling_gap(steps[held]))
    if kind != "mean":
        rows = np.broadcast_to(layer[:, None], steps.shape)[held]
        return StepImage(bin_max(rows, steps[held], values[held], n_rows, axis), axis, lo, hi)
    rows = np.broadcast_to(np.arange(len(sites))[:, None], steps.shape)[held]
    per_site = bin_max(rows, steps[held], values[held], len(sites), axis)
    known = ~np.isnan(per_site)
    starts = np.flatnonzero(np.r_[True, layer[1:] != layer[:-1]])  # sites come layer by layer
    sums = np.add.reduceat(np.where(known, per_site, 0.0), starts, axis=0)
    counts = np.add.reduceat(known.astype(np.float32), starts, axis=0)
    mean = np.full((n_rows, width), np.nan, np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean[layer[starts]] = sums / counts  # 0 / 0: NaN, nothing measured
    return StepImage(mean, axis, lo, hi)


def grad_image(grads: GradNorms, width: int) -> StepImage:
    """Row ``block``: that block's gradient norm over steps."""
    steps, norms = grads.window()
    n_rows = grads.n_blocks
    if len(steps) == 0:
        return empty_image(width, n_rows)
    lo, hi = int(steps[0]), int(steps[-1])
    axis = StepAxis.spanning(lo, hi, width)
    rows = np.broadcast_to(np.arange(n_rows)[None, :], norms.shape).ravel()
    cells = np.repeat(steps, n_rows)
    return StepImage(bin_max(rows, cells, norms.ravel(), n_rows, axis), axis, lo, hi)
