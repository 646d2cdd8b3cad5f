/* syn_stats_compute: checks arguments, picks the pivot, cuts the rows into shares, runs the kernel
 * on them (on up to max_threads threads) and merges the shares into the raw sums.
 *
 * Threads claim shares as they come (stats_pool.c); a few shares per thread let the work of a
 * thread that starts late move to the others. Each share has its own sums and per-neuron arrays
 * and shares are merged in order, so the result does not depend on which thread ran which. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "stats_internal.h"

#define SYN_SHARES_PER_THREAD 4
/* Below this many elements per share, waking a worker costs more than it saves (bench). */
#define SYN_MIN_SHARE_ELEMS (1u << 16)
#define SYN_MAX_SHARES      (SYN_STATS_MAX_THREADS * SYN_SHARES_PER_THREAD)
/* The pivot sample: this many rows, this many neurons from each. */
#define SYN_PIVOT_ROWS 16
#define SYN_PIVOT_COLS 16
#define SYN_ALIGN      64

static uint64_t syn_round_up(uint64_t v, uint64_t m) {
    return (v + m - 1) / m * m;
}

/* One share's scratch: the share, then col_sum (doubles), then col_block (floats). */
static uint64_t syn_share_bytes(uint64_t cols) {
    return syn_round_up(sizeof(syn_share), SYN_ALIGN) + syn_round_up(cols * 8, SYN_ALIGN) +
           syn_round_up(syn_round_up(cols, SYN_MAX_LANES) * 4, SYN_ALIGN);
}

uint64_t syn_stats_scratch_bytes(uint64_t cols, uint32_t threads) {
    if (threads < 1)
        threads = 1;
    if (threads > SYN_STATS_MAX_THREADS)
        threads = SYN_STATS_MAX_THREADS;
    /* SYN_ALIGN: room to align the start */
    return SYN_ALIGN + (uint64_t)threads * SYN_SHARES_PER_THREAD * syn_share_bytes(cols);
}

/* The k-th smallest of v[0..n) (quickselect; reorders v). */
static float syn_select_kth(float *v, uint32_t n, uint32_t k) {
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float p = v[lo + (hi - lo) / 2];
        uint32_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < p)
                i++;
            while (v[j] > p)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i++] = v[j];
                v[j] = t;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

/* The pivot: the median of a small sample spread over rows and columns. Moments about it lose
 * little to cancellation as long as it is within a few std of the mean, which the median always
 * is (|mean - median| <= std); a mean of the first elements is not, when the first token carries
 * the huge activations transformers are known for. */
static float syn_pivot(const void *x, uint64_t rows, uint64_t cols, uint32_t dtype) {
    float sample[SYN_PIVOT_ROWS * SYN_PIVOT_COLS];
    uint32_t n = 0;
    uint64_t nr = rows < SYN_PIVOT_ROWS ? rows : SYN_PIVOT_ROWS;
    uint64_t nc = cols < SYN_PIVOT_COLS ? cols : SYN_PIVOT_COLS;
    size_t row_bytes = cols * (dtype == SYN_STATS_F32 ? 4 : 2);
    for (uint64_t k = 0; k < nr; k++) {
        const char *row = (const char *)x + k * rows / nr * row_bytes;
        uint64_t c0 = k * (cols - nc) / nr; /* a different group of neurons in each row */
        for (uint64_t c = c0; c < c0 + nc; c++) {
            float v = syn_load1(row, c, dtype);
            if (isfinite(v))
                sample[n++] = v;
        }
    }
    return n ? syn_select_kth(sample, n, n / 2) : 0.0f;
}

/* |x| > threshold as an integer compare of |x| bits (see syn_share.threshold_bits). */
static int32_t syn_threshold_bits(float threshold) {
    if (threshold < 0.0f)
        return -1; /* every finite |x| is above */
    if (!(threshold <= FLT_MAX))
        return 0x7f7fffff;      /* NaN or +Inf: no finite |x| is above */
    float t = fabsf(threshold); /* -0 -> +0 */
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    return bits;
}

static void syn_run_share(void *arg, uint32_t index) {
    syn_stats_kernel(((syn_share **)arg)[index]);
}

static void syn_merge(syn_share *const *shares, uint32_t n_shares, float *neuron_abs,
                      float neuron_scale, syn_stats_raw *out) {
    uint64_t gt = 0, finite = 0;
    for (uint32_t t = 0; t < n_shares; t++) {
        const syn_share *sh = shares[t];
        gt += sh->gt_count;
        out->nan_count += sh->nan_count;
        out->inf_count += sh->pos_inf_count + sh->neg_inf_count;
        out->zero_count += sh->zero_count;
        syn_fold_hist(sh, out->hist);
        out->sum_d1 += sh->sum_d[0];
        out->sum_d2 += sh->sum_d[1];
        out->sum_d3 += sh->sum_d[2];
        out->sum_d4 += sh->sum_d[3];
        if (sh->min < out->min)
            out->min = sh->min;
        if (sh->max > out->max)
            out->max = sh->max;
    }
    for (int b = 0; b < SYN_STATS_HIST_BINS; b++)
        finite += out->hist[b];
    out->finite_count = finite;
    out->above_count = gt - out->nan_count - out->inf_count; /* NaN / Inf always count in gt */
    uint64_t cols = shares[0]->cols;
    for (uint64_t c = 0; c < cols; c++) {
        double s = 0.0;
        for (uint32_t t = 0; t < n_shares; t++)
            s += shares[t]->col_sum[c];
        out->sum_abs += s;
        if (neuron_abs)
            neuron_abs[c] = (float)(s * neuron_scale);
    }
}

static void syn_raw_init(syn_stats_raw *out, uint64_t n, float threshold) {
    memset(out, 0, sizeof *out);
    out->count = n;
    out->threshold = threshold;
    out->min = INFINITY;
    out->max = -INFINITY;
    out->threads_used = 1;
}

int syn_stats_compute(const void *x, uint64_t rows, uint64_t cols, uint32_t dtype, float threshold,
                      float *neuron_abs, float neuron_scale, void *scratch, uint64_t scratch_bytes,
                      uint32_t max_threads, syn_stats_raw *out) {
    if (!out || dtype > SYN_STATS_F16)
        return SYN_STATS_EINVAL;
    if (cols && rows > UINT64_MAX / 8 / cols)
        return SYN_STATS_EINVAL;
    uint64_t n = rows * cols;
    if (n && !x)
        return SYN_STATS_EINVAL;
    syn_raw_init(out, n, threshold);
    if (n == 0) {
        if (neuron_abs && cols)
            memset(neuron_abs, 0, cols * sizeof(float));
        return SYN_STATS_OK;
    }
    uint64_t per = syn_share_bytes(cols);
    uint64_t fit = scratch && scratch_bytes > SYN_ALIGN ? (scratch_bytes - SYN_ALIGN) / per : 0;
    if (fit == 0)
        return SYN_STATS_ETOOSMALL;
    uint64_t threads = max_threads < 1 ? 1 : max_threads;
    if (threads > SYN_STATS_MAX_THREADS)
        threads = SYN_STATS_MAX_THREADS;
    uint64_t n_shares = threads == 1 ? 1 : threads * SYN_SHARES_PER_THREAD;
    if (n_shares > n / SYN_MIN_SHARE_ELEMS)
        n_shares = n / SYN_MIN_SHARE_ELEMS;
    if (n_shares > rows)
        n_shares = rows;
    if (n_shares > fit)
        n_shares = fit;
    if (n_shares < 1)
        n_shares = 1;

    char *base = (char *)syn_round_up((uint64_t)(uintptr_t)scratch, SYN_ALIGN);
    syn_share *shares[SYN_MAX_SHARES];
    float pivot = syn_pivot(x, rows, cols, dtype);
    for (uint64_t t = 0; t < n_shares; t++) {
        char *p = base + t * per;
        syn_share *sh = (syn_share *)p;
        p += syn_round_up(sizeof(syn_share), SYN_ALIGN);
        sh->x = x;
        sh->cols = cols;
        sh->dtype = dtype;
        sh->threshold_bits = syn_threshold_bits(threshold);
        sh->pivot = pivot;
        sh->row_begin = rows * t / n_shares;
        sh->row_end = rows * (t + 1) / n_shares;
        sh->col_sum = (double *)p;
        sh->col_block = (float *)(p + syn_round_up(cols * 8, SYN_ALIGN));
        shares[t] = sh;
    }
    out->pivot = pivot;
    out->threads_used = syn_pool_run(syn_run_share, shares, (uint32_t)n_shares, (uint32_t)threads);
    syn_merge(shares, (uint32_t)n_shares, neuron_abs, neuron_scale, out);
    return SYN_STATS_OK;
}
