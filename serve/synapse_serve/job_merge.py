"""A job's statistics merged over its ranks, and the rank skew of every site (numpy only).

Each rank turns its summary records into fixed-size rows of sums (``pack``); the sums of every
rank's rows (one reduction) are enough to rebuild the job's records exactly as if one rank had
seen every element (``merged_records``): counts, histograms and the raw moments add up, the
extremes take a max. The same module serves the probe (rows reduced by torch.distributed,
``job.py``) and ``synapse sim --ranks`` (rows summed in one process, ``merge_local``).

**Skew.** For three per-rank statistics (rms, max |x|, share of NaN/inf), a rank ``r`` is
judged against the *other* ranks: ``z = (v_r - mean of the others) / spread of the others``,
the spread being their standard deviation, or 1 % of their mean's magnitude (at least 1e-6)
when that is larger, so that identical ranks do not turn noise into sigmas. Every rank computes
its own ``z`` from the reduced sums of ``v`` and ``v^2`` and its own ``v``; the rank and
statistic of the largest ``|z|`` of a site are found with one max-reduction of packed keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from synapse_native.protocol import (
    HIST_BINS,
    NO_RANK,
    SUMMARY_DTYPE,
    SkewStatistic,
    SummaryFlag,
    skew_records,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# Columns of a row of sums.
RANKS, COUNT, NAN, INF, N, S1, S2, S3, S4, SABS, ZEROS, ABOVE, HIST = range(13)
SUM_COLS = HIST + HIST_BINS
SKEW_STATS = (SkewStatistic.RMS, SkewStatistic.MAX_ABS, SkewStatistic.NONFINITE)
K = len(SKEW_STATS)
SKEW_COLS = 3 * K  # per statistic: ranks with a value, sum of values, sum of squares
RELATIVE_FLOOR = 0.01  # the spread of the others is at least 1 % of their mean's magnitude
ABSOLUTE_FLOOR = 1e-6
_Z_SCALE = 1024.0  # |z| is packed in steps of 1/1024
_Z_MAX = (1 << 43) - 1


class Rows:
    """Where a site's record goes: row ``site_id`` for activations, ``capacity + site_id``
    for gradients (when the job measures them). Every rank must use the same ``Rows``."""

    def __init__(self, capacity: int, grads: bool) -> None:
        self.capacity = capacity
        self.grads = grads
        self.count = capacity * (2 if grads else 1)

    def of(self, records: npt.NDArray[np.void]) -> tuple[I64, npt.NDArray[np.bool_]]:
        """The rows of ``records`` and which records have one (a site beyond the capacity, or
        a gradient when the job measures none, has none)."""
        site = records["site_id"].astype(np.int64)
        gradient = (records["flags"] & int(SummaryFlag.GRADIENT)) != 0
        row = site + np.where(gradient, self.capacity, 0)
        fits = (site < self.capacity) & (~gradient | self.grads)
        return row, fits

    def site(self, rows: I64) -> tuple[I64, npt.NDArray[np.bool_]]:
        """Site ids and gradient flags of ``rows``."""
        gradient = rows >= self.capacity
        return rows - np.where(gradient, self.capacity, 0), gradient


def pack(records: npt.NDArray[np.void], rows: Rows) -> tuple[F64, F64, F64]:
    """One rank's (sums, extremes, skew values) rows: ``sums`` (rows, SUM_COLS), ``extremes``
    (rows, 2) holding max and -min (-inf where absent), ``values`` (rows, K) NaN where absent."""
    sums = np.zeros((rows.count, SUM_COLS))
    extremes = np.full((rows.count, 2), -np.inf)
    values = np.full((rows.count, K), np.nan)
    index, fits = rows.of(records)
    r, index = records[fits], index[fits]
    if not len(r):
        return sums, extremes, values
    count = r["count"].astype(np.float64)
    nan, inf = r["nan_count"].astype(np.float64), r["inf_count"].astype(np.float64)
    n = count - nan - inf
    has = n > 0
    with np.errstate(invalid="ignore", over="ignore"):
        mu = np.where(has, r["mean"], 0.0).astype(np.float64)
        sd = np.where(has, r["std"], 0.0).astype(np.float64)
        skew = np.where(has & (sd > 0), r["skewness"], 0.0).astype(np.float64)
        kurt = np.where(has & (sd > 0), r["kurtosis"], 0.0).astype(np.float64)
        var = sd * sd
        m3c, m4c = skew * var * sd, (kurt + 3.0) * var * var
        e2 = var + mu * mu
        e3 = m3c + 3.0 * mu * var + mu**3
        e4 = m4c + 4.0 * mu * m3c + 6.0 * mu * mu * var + mu**4
        block = np.zeros((len(r), SUM_COLS))
        block[:, RANKS] = 1.0
        block[:, COUNT], block[:, NAN], block[:, INF], block[:, N] = count, nan, inf, n
        block[:, S1], block[:, S2], block[:, S3], block[:, S4] = n * mu, n * e2, n * e3, n * e4
        for col, name in ((SABS, "mean_abs"), (ZEROS, "frac_zero"), (ABOVE, "frac_above")):
            block[:, col] = np.where(has, n * r[name].astype(np.float64), 0.0)
        hist = np.nan_to_num(r["hist"].astype(np.float64))
        block[:, HIST:] = np.where(has[:, None], hist * n[:, None], 0.0)
        sums[index] = block
        extremes[index, 0] = np.where(has, r["max"], -np.inf)
        extremes[index, 1] = np.where(has, -r["min"].astype(np.float64), -np.inf)
        values[index, 0] = np.where(has, r["rms"], np.nan)
        values[index, 1] = np.where(has, np.maximum(np.abs(r["min"]), np.abs(r["max"])), np.nan)
        values[index, 2] = np.where(count > 0, (nan + inf) / np.maximum(count, 1.0), np.nan)
    return sums, extremes, values


def skew_sums(values: F64) -> F64:
    """(rows, SKEW_COLS): per statistic, 1 where this rank has a value, the value, its square."""
    has = np.isfinite(values)
    v = np.where(has, values, 0.0)
    return np.concatenate([has.astype(np.float64), v, v * v], axis=1)


def local_z(values: F64, totals: F64) -> F64:
    """This rank's z for each row and statistic against the other ranks (NaN: undefined)."""
    has = np.isfinite(values)
    v = np.where(has, values, 0.0)
    count, s1, s2 = totals[:, :K], totals[:, K : 2 * K], totals[:, 2 * K :]
    others = count - has
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (s1 - v) / others
        spread = np.sqrt(np.maximum((s2 - v * v) / others - mean * mean, 0.0))
        spread = np.maximum(spread, np.maximum(RELATIVE_FLOOR * np.abs(mean), ABSOLUTE_FLOOR))
        z = (v - mean) / spread
    return np.where(has & (others >= 1), z, np.nan)


def others_of(value: F64, totals: F64, stat: I64) -> tuple[F64, F64]:
    """Mean and spread (as ``local_z`` uses it) of the other ranks, given the outlier's value."""
    pick = np.arange(len(stat))
    count = totals[pick, stat] - 1.0
    s1, s2 = totals[pick, K + stat] - value, totals[pick, 2 * K + stat] - value * value
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / count
        spread = np.sqrt(np.maximum(s2 / count - mean * mean, 0.0))
    spread = np.maximum(spread, np.maximum(RELATIVE_FLOOR * np.abs(mean), ABSOLUTE_FLOOR))
    return mean, spread


def skew_keys(z: F64, rank: int) -> I64:
    """Per row, a key whose max over the ranks names the largest |z|: |z| in 1/1024 steps,
    then the statistic, the sign and the rank (-1: this rank has no z for the row)."""
    size = np.where(np.isnan(z), -1.0, np.abs(z))
    stat = np.argmax(size, axis=1)
    best = z[np.arange(len(z)), stat]
    q = np.minimum(np.round(np.abs(np.nan_to_num(best)) * _Z_SCALE), _Z_MAX).astype(np.int64)
    key = (q << 19) | (stat.astype(np.int64) << 17) | ((best < 0).astype(np.int64) << 16) | rank
    return np.where(np.isnan(best), -1, key)


def decode_keys(keys: I64) -> tuple[I64, I64, F64]:
    """(rank, statistic index, signed z) of reduced keys (rank NO_RANK where none)."""
    valid = keys >= 0
    k = np.where(valid, keys, 0)
    rank = np.where(valid, k & 0xFFFF, NO_RANK)
    sign = np.where((k >> 16) & 1, -1.0, 1.0)
    stat = (k >> 17) & 3
    z = np.where(valid, sign * (k >> 19) / _Z_SCALE, np.nan)
    return rank, stat, z


def merged_records(sums: F64, extremes: F64, rows: Rows, threshold: float) -> npt.NDArray[np.void]:
    """The job's records of the rows some rank reported, from the summed rows."""
    present = np.flatnonzero(sums[:, RANKS] > 0)
    s, ext = sums[present], extremes[present]
    out = np.zeros(len(present), SUMMARY_DTYPE)
    site, gradient = rows.site(present)
    out["site_id"] = site
    out["flags"] = np.where(gradient, int(SummaryFlag.GRADIENT), 0)
    out["count"], out["nan_count"], out["inf_count"] = s[:, COUNT], s[:, NAN], s[:, INF]
    n = s[:, N]
    with np.errstate(divide="ignore", invalid="ignore"):
        some = np.where(n > 0, n, np.nan)
        mean = s[:, S1] / some
        e2, e3, e4 = s[:, S2] / some, s[:, S3] / some, s[:, S4] / some
        var = np.maximum(e2 - mean * mean, 0.0)
        std = np.sqrt(var)
        m3c = e3 - 3.0 * mean * e2 + 2.0 * mean**3
        m4c = e4 - 4.0 * mean * e3 + 6.0 * mean * mean * e2 - 3.0 * mean**4
        flat = var > 0
        out["mean"], out["std"], out["rms"] = mean, std, np.sqrt(e2)
        out["skewness"] = np.where(flat, m3c / (var * std), np.where(n > 0, 0.0, np.nan))
        out["kurtosis"] = np.where(flat, m4c / (var * var) - 3.0, np.where(n > 0, 0.0, np.nan))
        out["max"] = np.where(n > 0, ext[:, 0], np.nan)
        out["min"] = np.where(n > 0, -ext[:, 1], np.nan)
        out["mean_abs"] = s[:, SABS] / some
        out["frac_zero"] = s[:, ZEROS] / some
        out["frac_above"] = s[:, ABOVE] / some
        out["hist"] = s[:, HIST:] / np.maximum(n, 1.0)[:, None]
    out["threshold"] = threshold
    return out


def skew_message_records(
    keys: I64, winner_values: F64, totals: F64, rows: Rows, present: I64
) -> npt.NDArray[np.void]:
    """RANK_SKEW records of rows ``present``, from the reduced keys, the outliers' own values
    and the reduced skew sums."""
    rank, stat, z = decode_keys(keys[present])
    value = winner_values[present]
    mean, spread = others_of(value, totals[present], stat)
    out: npt.NDArray[np.void] = skew_records(len(present))
    site, gradient = rows.site(present)
    out["site_id"] = site
    out["flags"] = np.where(gradient, int(SummaryFlag.GRADIENT), 0)
    out["rank"] = rank
    out["statistic"] = np.asarray(SKEW_STATS, np.uint8)[stat]
    none = rank == NO_RANK
    out["z"] = np.where(none, np.nan, z)
    out["value"] = np.where(none, np.nan, value)
    out["others_mean"] = np.where(none, np.nan, mean)
    out["others_std"] = np.where(none, np.nan, spread)
    return out


def winner_value(keys: I64, values: F64, rank: int) -> F64:
    """This rank's value of the statistic it won a row with (0 where it did not win)."""
    won_rank, stat, _ = decode_keys(keys)
    mine = won_rank == rank
    picked = values[np.arange(len(keys)), stat]
    return np.where(mine & np.isfinite(picked), picked, 0.0)


def skew_of_ranks(values: F64, rows: Rows, present: I64) -> npt.NDArray[np.void]:
    """RANK_SKEW records of rows ``present`` from every rank's values at once (ranks, rows, K):
    the same outcome as the reductions, in one process (``synapse sim --ranks``)."""
    v = values[:, present]
    has = np.isfinite(v)
    x = np.where(has, v, 0.0)
    count, s1, s2 = has.sum(axis=0), x.sum(axis=0), (x * x).sum(axis=0)
    others = count - has
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (s1 - x) / others
        spread = np.sqrt(np.maximum((s2 - x * x) / others - mean * mean, 0.0))
        spread = np.maximum(spread, np.maximum(RELATIVE_FLOOR * np.abs(mean), ABSOLUTE_FLOOR))
        z = np.where(has & (others >= 1), (x - mean) / spread, np.nan)
    size = np.where(np.isnan(z), -1.0, np.abs(z)).transpose(1, 0, 2).reshape(len(present), -1)
    best = np.argmax(size, axis=1)
    rank, stat = np.divmod(best, K)
    pick = (rank, np.arange(len(present)), stat)
    out: npt.NDArray[np.void] = skew_records(len(present))
    site, gradient = rows.site(present)
    none = size[np.arange(len(present)), best] < 0
    out["site_id"] = site
    out["flags"] = np.where(gradient, int(SummaryFlag.GRADIENT), 0)
    out["rank"] = np.where(none, NO_RANK, rank)
    out["statistic"] = np.asarray(SKEW_STATS, np.uint8)[stat]
    out["z"], out["value"] = z[pick], np.where(none, np.nan, v[pick])
    out["others_mean"] = np.where(none, np.nan, mean[pick])
    out["others_std"] = np.where(none, np.nan, spread[pick])
    return out


def merge_local(
    per_rank: Sequence[npt.NDArray[np.void]], rows: Rows, threshold: float
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]:
    """The job's (merged records, RANK_SKEW records) from every rank's records in one process:
    the same arithmetic as the probe's reductions (``synapse sim --ranks``, tests)."""
    packed = [pack(records, rows) for records in per_rank]
    sums = np.sum([p[0] for p in packed], axis=0)
    extremes = np.max([p[1] for p in packed], axis=0)
    totals = np.sum([skew_sums(p[2]) for p in packed], axis=0)
    keys = np.max([skew_keys(local_z(p[2], totals), r) for r, p in enumerate(packed)], axis=0)
    won = np.sum([winner_value(keys, p[2], r) for r, p in enumerate(packed)], axis=0)
    merged = merged_records(sums, extremes, rows, threshold)
    present = np.flatnonzero(sums[:, RANKS] > 0)
    return merged, skew_message_records(keys, won, totals, rows, present)
