"""Turn slots copied off the device into wire records (numpy only; runs on the encoder thread)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from synapse_native.protocol import SUMMARY_DTYPE, SparseActivations, SummaryFlag
from synapse_serve.selection import relative

from .slots import (
    ABOVE,
    CUT,
    HIST,
    HIST_BINS,
    INF,
    M2,
    M3,
    M4,
    MAX,
    MIN,
    NAN,
    NEURONS_ABOVE,
    SUM,
    SUM_ABS,
    TOP,
    ZEROS,
)

Rows = npt.NDArray[np.float64]


def summary_records(
    rows: Rows,
    site_ids: Sequence[int],
    counts: Sequence[int],
    gradient: Sequence[bool],
    threshold: float,
    mode: int = 0,
    neurons: Sequence[int] = (),
) -> npt.NDArray[np.void]:
    """``SUMMARY_DTYPE`` records from slots (one row each; element counts known on the host).

    Every statistic, fractions included, is over the finite elements and NaN when there is none
    (as the native kernel's records); the histogram holds fractions of the finite elements. In a
    relative threshold ``mode``, ``frac_above`` is the fraction of the ``neurons`` selected.
    """
    n = len(site_ids)
    out = np.zeros(n, SUMMARY_DTYPE)
    out["site_id"] = site_ids
    out["flags"] = np.where(np.asarray(gradient, bool), int(SummaryFlag.GRADIENT), 0)
    nan = rows[:, NAN]
    inf = rows[:, INF]
    finite = np.asarray(counts, np.float64) - nan - inf
    out["count"] = counts
    out["nan_count"] = nan
    out["inf_count"] = inf
    with np.errstate(divide="ignore", invalid="ignore"):
        some = np.where(finite > 0, finite, np.nan)
        mean = rows[:, SUM] / some
        var = rows[:, M2] / some
        std = np.sqrt(var)
        flat = var > 0  # a constant tensor has no shape to speak of: skewness and kurtosis 0
        out["mean"] = mean
        out["std"] = std
        out["rms"] = np.hypot(mean, std)
        out["min"] = np.where(finite > 0, rows[:, MIN], np.nan)
        out["max"] = np.where(finite > 0, rows[:, MAX], np.nan)
        out["mean_abs"] = rows[:, SUM_ABS] / some
        out["skewness"] = np.where(flat, rows[:, M3] / some / (var * std), 0.0)
        out["kurtosis"] = np.where(flat, rows[:, M4] / some / (var * var) - 3.0, 0.0)
        out["skewness"][np.isnan(some)] = np.nan
        out["kurtosis"][np.isnan(some)] = np.nan
        out["frac_zero"] = rows[:, ZEROS] / some
        out["frac_above"] = rows[:, ABOVE] / some
        if relative(mode):
            selected = rows[:, NEURONS_ABOVE] / np.asarray(neurons, np.float64)
            out["frac_above"] = np.where(finite > 0, selected, np.nan)
        out["hist"] = rows[:, HIST : HIST + HIST_BINS] / np.maximum(finite, 1.0)[:, None]
    out["threshold"] = threshold
    return out


def sparse_message(
    row: Rows, site_id: int, k: int, threshold: float, mode: int = 0
) -> SparseActivations:
    """The neurons of a slot's top-k whose mean |x| is above the cut (``threshold``, or the
    slot's cut in a relative ``mode``), by ascending index."""
    cut = float(row[CUT]) if relative(mode) else threshold
    capacity = (row.shape[0] - TOP) // 2
    values = row[TOP : TOP + k]
    indices = row[TOP + capacity : TOP + capacity + k]
    keep = values > cut
    order = np.argsort(indices[keep], kind="stable")
    return SparseActivations(
        site_id=site_id,
        threshold=cut,
        n_above=int(row[NEURONS_ABOVE]),
        indices=indices[keep][order].astype(np.uint32),
        values=values[keep][order].astype(np.float32),
    )
