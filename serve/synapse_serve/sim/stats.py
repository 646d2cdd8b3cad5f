"""Summary records of synthetic samples, for many sites at once (numpy only).

Fields follow docs/PROTOCOL.md: moments over the finite values (population std, excess
kurtosis), fractions of the finite values, and the 64-bin symmetric-log2 histogram as fractions:
``|x| = m * 2**e`` (1 <= m < 2) falls in magnitude bin ``j = clamp(e + 16, 0, 31)``, stored in
bin ``32 + j`` for ``x >= 0`` and ``31 - j`` for ``x < 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from synapse_native.protocol import HIST_BINS, SparseActivations, summary_records

_EXPONENT_OFFSET = 127 - 16  # float32 exponent field minus this is e + 16
_HALF = HIST_BINS // 2


def histogram_bins(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]:
    """The bin (0..63) of each finite float32 value (a new int32 array of ``x``'s shape)."""
    bins = x.view(np.int32) >> 23
    bins &= 0xFF  # the exponent field: e + 127
    bins -= _EXPONENT_OFFSET
    np.minimum(np.maximum(bins, 0, out=bins), _HALF - 1, out=bins)  # the magnitude bin j
    np.subtract(-1, bins, out=bins, where=x < 0)  # -0 counts as non-negative
    bins += _HALF
    return bins


def summarize(
    samples: npt.NDArray[np.float32],
    site_ids: npt.NDArray[np.integer],
    threshold: float,
    counts: npt.NDArray[np.integer] | None = None,
) -> npt.NDArray[np.void]:
    """One SUMMARY_DTYPE record per row of ``samples`` (finite float32 values, one site a row).

    ``counts`` overrides the element count reported per site (the size of the tensor the sample
    stands for); the statistics themselves come from the sample.
    """
    x = np.ascontiguousarray(samples, dtype=np.float32)
    n_sites, size = x.shape
    records: npt.NDArray[np.void] = summary_records(n_sites)
    records["site_id"] = site_ids
    records["count"] = size if counts is None else counts
    records["threshold"] = threshold
    wide = x.astype(np.float64)
    mean = wide.mean(axis=1)
    deviation = wide - mean[:, None]
    squared = deviation * deviation
    m2 = squared.mean(axis=1)
    m3 = (squared * deviation).mean(axis=1)
    m4 = (squared * squared).mean(axis=1)
    std = np.sqrt(m2)
    flat = np.where(m2 > 0, m2, 1.0)
    records["mean"] = mean
    records["std"] = std
    records["rms"] = np.hypot(mean, std)
    records["min"] = x.min(axis=1)
    records["max"] = x.max(axis=1)
    magnitude = np.abs(x)
    records["mean_abs"] = magnitude.mean(axis=1, dtype=np.float64)
    records["skewness"] = np.where(m2 > 0, m3 / (flat * np.sqrt(flat)), 0.0)
    records["kurtosis"] = np.where(m2 > 0, m4 / (flat * flat) - 3.0, 0.0)
    records["frac_zero"] = np.count_nonzero(x == 0, axis=1) / size
    records["frac_above"] = np.count_nonzero(magnitude > threshold, axis=1) / size
    bins = histogram_bins(x)
    bins += (np.arange(n_sites, dtype=np.int32) * HIST_BINS)[:, None]
    counts_per_bin = np.bincount(bins.ravel(), minlength=n_sites * HIST_BINS)
    records["hist"] = counts_per_bin.reshape(n_sites, HIST_BINS) / size
    return records


def cover_sparse(records: npt.NDArray[np.void], sparse: Sequence[SparseActivations]) -> None:
    """Make a step's summaries (``records``, one row per frame of ``sparse``, in order) obey the
    invariants a real probe's do: a neuron whose mean |x| is ``v`` has an element of |x| >= v, so
    the site's largest |x| is at least every sparse value; and a neuron above the threshold has
    an element above it, so ``frac_above >= n_above / count`` (never 0 when ``n_above > 0``).

    The sample behind the summary is too small to see every neuron; these floors repair that.
    Only sparse frames measured at the summary's threshold raise ``frac_above``.
    """
    for row, frame in zip(records, sparse, strict=True):
        if len(frame.values):
            peak = float(frame.values.max())
            if peak > max(abs(float(row["min"])), float(row["max"])):
                row["max"] = peak
        same = np.float32(frame.threshold) == row["threshold"]
        if frame.n_above and same and row["count"]:
            row["frac_above"] = max(float(row["frac_above"]), frame.n_above / int(row["count"]))
