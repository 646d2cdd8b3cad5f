"""Triton kernels behind ``cuda_kernel``: per-tile statistics, then one merge per site.

Imported only where Triton is installed. Partials of a tile (float64, one column per entry,
so that the merge reads them coalesced): 0 finite count, 1 sum, 2..4 sums of
(x - tile mean)^2, ^3, ^4, 5 min, 6 max, 7 sum |x|, 8 zeros, 9 |x| > threshold, 10 NaN,
11 +-inf. Non-finite elements count as 0 in sums and means.
"""

import triton
import triton.language as tl

INF = tl.constexpr(float("inf"))


@triton.jit
def tile_stats(
    x_ptr, rows, cols, threshold, part_ptr, n_parts, hist_ptr, neuron_ptr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """One tile of ``x`` viewed as [rows, cols]: partials, histogram and neuron |x| sums."""
    pid_r = tl.program_id(0)
    pid_c = tl.program_id(1)
    r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    inside = (r[:, None] < rows) & (c[None, :] < cols)
    offsets = r[:, None].to(tl.int64) * cols + c[None, :]
    x = tl.load(x_ptr + offsets, mask=inside, other=0.0).to(tl.float32)

    is_nan = (x != x) & inside
    finite = (tl.abs(x) < INF) & inside
    n_inside = tl.sum(inside.to(tl.float32))
    n = tl.sum(finite.to(tl.float32))
    nans = tl.sum(is_nan.to(tl.float32))
    kept = tl.where(finite, x, 0.0)
    total = tl.sum(kept)
    mean = total / tl.maximum(n, 1.0)
    d = tl.where(finite, x - mean, 0.0)
    d2 = d * d
    magnitude = tl.abs(kept)

    column = part_ptr + pid_r * tl.num_programs(1) + pid_c
    tl.store(column + 0 * n_parts, n.to(tl.float64))
    tl.store(column + 1 * n_parts, total.to(tl.float64))
    tl.store(column + 2 * n_parts, tl.sum(d2).to(tl.float64))
    tl.store(column + 3 * n_parts, tl.sum(d2 * d).to(tl.float64))
    tl.store(column + 4 * n_parts, tl.sum(d2 * d2).to(tl.float64))
    tl.store(column + 5 * n_parts, tl.min(tl.where(finite, x, INF)).to(tl.float64))
    tl.store(column + 6 * n_parts, tl.max(tl.where(finite, x, -INF)).to(tl.float64))
    tl.store(column + 7 * n_parts, tl.sum(magnitude).to(tl.float64))
    tl.store(column + 8 * n_parts, tl.sum(((x == 0.0) & inside).to(tl.float32)).to(tl.float64))
    tl.store(column + 9 * n_parts, tl.sum((magnitude > threshold).to(tl.float32)).to(tl.float64))
    tl.store(column + 10 * n_parts, nans.to(tl.float64))
    tl.store(column + 11 * n_parts, (n_inside - n - nans).to(tl.float64))

    # Symmetric-log2 bins (docs/PROTOCOL.md): magnitude bin = clamp(exponent - 111, 0, 31).
    # Lanes that are not finite elements land in bin 32 and are taken out of it again below
    # (the merge writes the non-finite bin from the NaN and inf counts).
    exponent = (x.to(tl.int32, bitcast=True) >> 23) & 0xFF
    magnitude_bin = tl.minimum(tl.maximum(exponent - 111, 0), 31)
    bins = tl.where(x < 0.0, 31 - magnitude_bin, magnitude_bin + 32)
    bins = tl.where(finite, bins, 32)
    counts = tl.histogram(tl.reshape(bins, (BLOCK_R * BLOCK_C,)), 64)
    slots = tl.arange(0, 64)
    strays = BLOCK_R * BLOCK_C - n.to(tl.int32)
    tl.atomic_add(hist_ptr + slots, counts.to(tl.int32) - tl.where(slots == 32, strays, 0))

    tl.atomic_add(neuron_ptr + c, tl.sum(magnitude, axis=0), mask=c < cols)


@triton.jit
def merge(
    part_ptr, n_parts, hist_ptr, neuron_ptr, cols, rows, threshold, row_ptr,
    N_SCALARS: tl.constexpr, HIST: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Merge a site's tile partials into its float64 slot; neuron sums become means."""
    n = tl.zeros((BLOCK,), tl.float64)
    total = tl.zeros((BLOCK,), tl.float64)
    low = tl.full((BLOCK,), INF, tl.float64)
    high = tl.full((BLOCK,), -INF, tl.float64)
    sums = tl.zeros((BLOCK,), tl.float64)  # |x|
    zeros = tl.zeros((BLOCK,), tl.float64)
    above = tl.zeros((BLOCK,), tl.float64)
    nans = tl.zeros((BLOCK,), tl.float64)
    infs = tl.zeros((BLOCK,), tl.float64)
    for start in range(0, n_parts, BLOCK):
        i = start + tl.arange(0, BLOCK)
        live = i < n_parts
        p = part_ptr + i
        n += tl.load(p + 0 * n_parts, mask=live, other=0.0)
        total += tl.load(p + 1 * n_parts, mask=live, other=0.0)
        low = tl.minimum(low, tl.load(p + 5 * n_parts, mask=live, other=INF))
        high = tl.maximum(high, tl.load(p + 6 * n_parts, mask=live, other=-INF))
        sums += tl.load(p + 7 * n_parts, mask=live, other=0.0)
        zeros += tl.load(p + 8 * n_parts, mask=live, other=0.0)
        above += tl.load(p + 9 * n_parts, mask=live, other=0.0)
        nans += tl.load(p + 10 * n_parts, mask=live, other=0.0)
        infs += tl.load(p + 11 * n_parts, mask=live, other=0.0)
    n_all = tl.sum(n)
    total_all = tl.sum(total)
    mean = total_all / tl.maximum(n_all, 1.0)

    # Central moments about the site's mean from each tile's: with delta = tile mean - mean,
    # M2 += m2 + n d^2, M3 += m3 + 3 d m2 + n d^3, M4 += m4 + 4 d m3 + 6 d^2 m2 + n d^4.
    m2 = tl.zeros((BLOCK,), tl.float64)
    m3 = tl.zeros((BLOCK,), tl.float64)
    m4 = tl.zeros((BLOCK,), tl.float64)
    for start in range(0, n_parts, BLOCK):
        i = start + tl.arange(0, BLOCK)
        live = i < n_parts
        p = part_ptr + i
        tile_n = tl.load(p + 0 * n_parts, mask=live, other=0.0)
        tile_m2 = tl.load(p + 2 * n_parts, mask=live, other=0.0)
        tile_m3 = tl.load(p + 3 * n_parts, mask=live, other=0.0)
        tile_m4 = tl.load(p + 4 * n_parts, mask=live, other=0.0)
        tile_mean = tl.load(p + 1 * n_parts, mask=live, other=0.0) / tl.maximum(tile_n, 1.0)
        delta = tl.where(tile_n > 0, tile_mean - mean, 0.0)
        delta2 = delta * delta
        m2 += tile_m2 + tile_n * delta2
        m3 += tile_m3 + 3.0 * delta * tile_m2 + tile_n * delta2 * delta
        m4 += tile_m4 + 4.0 * delta * tile_m3 + 6.0 * delta2 * tile_m2 + tile_n * delta2 * delta2

    neurons_above = tl.zeros((BLOCK,), tl.float64)
    for start in range(0, cols, BLOCK):
        j = start + tl.arange(0, BLOCK)
        live = j < cols
        means = tl.load(neuron_ptr + j, mask=live, other=0.0) / rows
        tl.store(neuron_ptr + j, means, mask=live)
        neurons_above += tl.where(live & (means > threshold), 1.0, 0.0)

    tl.store(row_ptr + 0, tl.sum(nans))
    tl.store(row_ptr + 1, tl.sum(infs))
    tl.store(row_ptr + 2, total_all)
    tl.store(row_ptr + 3, tl.sum(m2))
    tl.store(row_ptr + 4, tl.sum(m3))
    tl.store(row_ptr + 5, tl.sum(m4))
    tl.store(row_ptr + 6, tl.min(low))
    tl.store(row_ptr + 7, tl.max(high))
    tl.store(row_ptr + 8, tl.sum(sums))
    tl.store(row_ptr + 9, tl.sum(zeros))
    tl.store(row_ptr + 10, tl.sum(above))
    tl.store(row_ptr + N_SCALARS - 1, tl.sum(neurons_above))
    slots = tl.arange(0, 64)
    tl.store(row_ptr + HIST + slots, tl.load(hist_ptr + slots).to(tl.float64))
    tl.store(row_ptr + HIST + 64, tl.sum(nans) + tl.sum(infs))
