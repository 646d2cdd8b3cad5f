/* Folding a segment's vector accumulators and a row block's per-neuron sums into a share, and
 * the scalar double-precision paths that redo them when a NaN, an Inf or a float overflow made
 * them non-finite (see stats_kernel.h); and a share's magnitude counts into the histogram.
 * Everything here runs once per segment, row block or share. */
#include <float.h>
#include <math.h>

#include "stats_internal.h"

/* A segment whose float sums are not finite: NaN, Inf or overflow. Recount it in double. */
static void syn_redo_segment(syn_share *sh, const char *row, uint64_t c0, uint64_t c1) {
    double pivot = sh->pivot;
    for (uint64_t c = c0; c < c1; c++) {
        float v = syn_load1(row, c, sh->dtype);
        if (isnan(v)) {
            sh->nan_count++;
        } else if (isinf(v)) {
            *(v > 0 ? &sh->pos_inf_count : &sh->neg_inf_count) += 1;
        } else {
            double d = (double)v - pivot;
            double d2 = d * d;
            sh->sum_d[0] += d;
            sh->sum_d[1] += d2;
            sh->sum_d[2] += d2 * d;
            sh->sum_d[3] += d2 * d2;
            if (v < sh->min)
                sh->min = v;
            if (v > sh->max)
                sh->max = v;
        }
    }
}

static double syn_redo_column(const syn_share *sh, uint64_t col, uint64_t r0, uint64_t r1) {
    double s = 0.0;
    size_t row_bytes = sh->cols * (sh->dtype == SYN_STATS_F32 ? 4 : 2);
    for (uint64_t r = r0; r < r1; r++) {
        float v = syn_load1((const char *)sh->x + r * row_bytes, col, sh->dtype);
        if (isfinite(v))
            s += fabs((double)v);
    }
    return s;
}

void syn_fold_segment(syn_share *sh, const syn_seg_sums *sums, const char *row0, int nrows,
                      uint64_t c0, uint64_t c1) {
    sh->zero_count += sums->zero_count;
    sh->gt_count += sums->gt_count;
    /* sum of d^4 >= 0, and it overflows first: NaN or Inf means a NaN, an Inf or an overflow */
    if (!(sums->sum_d[3] <= DBL_MAX)) {
        size_t row_bytes = sh->cols * (sh->dtype == SYN_STATS_F32 ? 4 : 2);
        for (int r = 0; r < nrows; r++)
            syn_redo_segment(sh, row0 + (size_t)r * row_bytes, c0, c1);
        return;
    }
    for (int m = 0; m < 4; m++)
        sh->sum_d[m] += sums->sum_d[m];
    if (sums->min < sh->min)
        sh->min = sums->min;
    if (sums->max > sh->max)
        sh->max = sums->max;
}

void syn_fold_col_block(syn_share *sh, uint64_t r0, uint64_t r1) {
    for (uint64_t c = 0; c < sh->cols; c++) {
        float v = sh->col_block[c];
        sh->col_sum[c] += v <= FLT_MAX ? (double)v : syn_redo_column(sh, c, r0, r1);
        sh->col_block[c] = 0.0f;
    }
}

void syn_fold_hist(const syn_share *share, uint64_t *hist) {
    uint64_t neg31 = share->neg_inf_count;
    uint64_t all31 =
        share->nan_count + share->pos_inf_count + share->neg_inf_count + share->pad_count;
    for (int j = 0; j < SYN_MAG_BINS; j++) {
        uint64_t neg = share->mag_neg[j] - (j == 31 ? neg31 : 0);
        uint64_t all = share->mag_all[j] - (j == 31 ? all31 : 0);
        hist[31 - j] += neg;       /* x < 0 */
        hist[32 + j] += all - neg; /* x >= 0, -0 included */
    }
}
