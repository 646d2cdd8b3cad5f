"""Percentile bands of a site's distribution, read from the summary histograms, all sites at once.

The bins are the protocol's fixed symmetric-log bins (docs/PROTOCOL.md, synapse_native.histogram):
edges ``-inf, -2^15, ..., -2^-15, 0, 2^-15, ..., 2^15, +inf``. Reading follows
``synapse_native.histogram.percentiles`` (log-linear in magnitude inside an octave bin, linear
in the two bins touching 0, the open outer bins one octave wide), vectorised over the sites of
a batch because that reader takes one histogram per call. Weights that are negative or not
finite (a faulty trainer) count as 0 instead of raising on the GUI thread.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.history import QUANTILES

_POWERS = 2.0 ** np.arange(-15, 16)  # 2^-15 .. 2^15
EDGES = np.concatenate([[-(2.0**16)], -_POWERS[::-1], [0.0], _POWERS, [2.0**16]])


def bands(hists: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The ``QUANTILES`` of each histogram row, shape (n, len(QUANTILES)); NaN when empty."""
    w = np.nan_to_num(np.asarray(hists, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    w = np.maximum(w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    cum = np.cumsum(w, axis=1)
    q = np.asarray(QUANTILES)[None, :] * total  # (n, k) targets in weight units
    # The bin a quantile falls in: the first whose cumulative weight reaches it, among
    # non-empty bins (empty bins have zero width and never hold a quantile).
    reached = (cum[:, None, :] >= q[..., None]) & (w[:, None, :] > 0)
    b = np.argmax(reached, axis=2)  # (n, k)
    rows = np.arange(len(w))[:, None]
    width = w[rows, b]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip((q - (cum[rows, b] - width)) / width, 0.0, 1.0)
    left, right = EDGES[b], EDGES[b + 1]
    linear = left + t * (right - left)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_l, log_r = np.log(np.abs(left)), np.log(np.abs(right))
        geometric = np.sign(left) * np.exp(log_l + t * (log_r - log_l))
    out: npt.NDArray[np.float32] = np.where(left * right > 0, geometric, linear).astype(np.float32)
    out[~(total[:, 0] > 0)] = np.nan
    return out
