"""The 64-bin activation histogram: bin edges, a numpy reference of the binning, percentiles.

Bins follow the magnitude of x in powers of two, mirrored by sign. The magnitude bin j of |x| is

- j = 0 for |x| < 2^-15,
- j = floor(log2 |x|) + 16 clamped to [1, 31] otherwise, so j in 1..30 covers [2^(j-16), 2^(j-15))
  and j = 31 covers [2^15, inf).

Bin 32 + j holds x >= 0 (+0 and -0 both in bin 32), bin 31 - j holds x < 0; non-finite values
are not binned. Bin order is value order: bin 0 holds the most negative values, bin 63 the most
positive. The C kernel (``synapse_native._stats``) computes the same bins from exponent bits; this
module is the independent reference the tests hold it to, and the reader the app uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

HIST_BINS = 64
MAG_BINS = 32
LOW_EXP = -15  # |x| below 2^LOW_EXP is magnitude bin 0
HIGH_EXP = 15  # |x| from 2^HIGH_EXP up is magnitude bin 31


def bin_edges() -> npt.NDArray[np.float64]:
    """The 65 value-space edges: bin b spans edges[b]..edges[b + 1] (see ``bin_index``)."""
    mags = np.ldexp(1.0, np.arange(LOW_EXP, HIGH_EXP + 1))  # 2^-15 .. 2^15: 31 edges
    return np.concatenate(([-np.inf], -mags[::-1], [0.0], mags, [np.inf]))


def bin_index(x: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The bin of each value (float32, float16 or float64 values), -1 for NaN and +-Inf.

    Edges belong to the bin of larger magnitude: 2^-15 is in bin 33, -2^-15 in bin 30.
    """
    with np.errstate(invalid="ignore"):  # NaN and Inf get -1 below
        v = np.asarray(x, dtype=np.float64)
        mag = np.abs(v)
        _, e = np.frexp(mag)  # mag = m * 2^e with 0.5 <= m < 1, so floor(log2 mag) = e - 1
    j = np.clip(e.astype(np.int64) + 15, 1, MAG_BINS - 1)
    j = np.where(mag < 2.0**LOW_EXP, 0, j)
    out = np.where(v < 0, 31 - j, 32 + j)  # -0 < 0 is False: it joins +0 in bin 32
    return np.where(np.isfinite(v), out, -1).astype(np.int64)


def histogram(x: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Counts per bin of the finite values of x."""
    idx = bin_index(x).ravel()
    return np.bincount(idx[idx >= 0], minlength=HIST_BINS).astype(np.int64)


def percentiles(
    hist: npt.ArrayLike,
    qs: Sequence[float] | npt.NDArray[np.float64],
    lo: float | None = None,
    hi: float | None = None,
) -> npt.NDArray[np.float64]:
    """Values at quantiles ``qs`` (fractions in [0, 1]) of a distribution known by its histogram.

    ``hist`` holds 64 non-negative weights (counts or fractions). Within the bin a quantile falls
    in, the value is interpolated log-linearly in magnitude (bins are octaves, and activation
    magnitudes are closer to log-uniform than uniform within one), and linearly in the two bins
    that touch 0. The open outer bins are taken to span one octave. ``lo`` and ``hi`` (the
    summary's min and max) narrow the first and last non-empty bins and clip the result, which
    sharpens tails and distributions that fill few bins. All NaN when the histogram is empty.
    """
    w = np.asarray(hist, dtype=np.float64).ravel()
    if w.shape != (HIST_BINS,) or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("hist must be 64 finite non-negative weights")
    q = np.asarray(qs, dtype=np.float64).ravel()
    if np.any(~((q >= 0) & (q <= 1))):
        raise ValueError("quantiles must lie in [0, 1]")
    nonempty = np.flatnonzero(w)
    if nonempty.size == 0:
        return np.full(q.shape, np.nan)
    cum = np.cumsum(w[nonempty])
    k = np.minimum(np.searchsorted(cum, q * cum[-1], side="left"), nonempty.size - 1)
    b = nonempty[k]
    t = np.clip((q * cum[-1] - (cum[k] - w[b])) / w[b], 0.0, 1.0)
    left, right = _bin_span(b, lo, hi)
    out = _interpolate(left, right, t)
    if lo is not None or hi is not None:
        out = np.clip(out, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    return out


def _bin_span(
    b: npt.NDArray[np.int64], lo: float | None, hi: float | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Finite interpolation ends of bins b, narrowed to [lo, hi] where those fall inside."""
    edges = bin_edges()
    edges[0], edges[-1] = -(2.0 ** (HIGH_EXP + 1)), 2.0 ** (HIGH_EXP + 1)  # one more octave
    left, right = edges[b], edges[b + 1]
    if lo is not None:
        left = np.where((left < lo) & (lo < right), lo, left)
    if hi is not None:
        right = np.where((left < hi) & (hi < right), hi, right)
    return left, right


def _interpolate(
    left: npt.NDArray[np.float64], right: npt.NDArray[np.float64], t: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Log-linear between same-signed non-zero ends, linear when an end is 0."""
    linear = left + t * (right - left)
    same_sign = (left * right) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_l, log_r = np.log(np.abs(left)), np.log(np.abs(right))
        geometric = np.sign(left) * np.exp(log_l + t * (log_r - log_l))
    return np.where(same_sign, geometric, linear)
