/* The hot loop: one read of a share of rows from memory, everything accumulated on the way.
 *
 * A template: the including file defines SYN_LANES (vector width), SYN_VSHIFT (see
 * syn_hist_words) and SYN_KERNEL_NAME (the entry point to define) and compiles it for its
 * target (stats_kernel_base.c, stats_kernel_avx2.c).
 *
 * Rows go in pairs (one load/store of the per-neuron block per pair), each pair in segments of
 * SYN_SEG columns. A segment is handled in two loops, so that each has all vector registers:
 *   pass A reads the input, accumulates moments, min/max, zero and threshold counts and the
 *           per-neuron |x|, and leaves the fp32 bits of the segment in an L1-resident stage;
 *   pass B counts the stage into the histogram (stats_hist.h).
 * Only pass A touches memory beyond L1, so the tensor is still read once.
 *
 * Precision: per segment the float vector accumulators are folded into double (no float sum
 * runs over more than 2 * SYN_SEG / SYN_LANES <= 512 terms per lane), and per block of
 * SYN_ROW_BLOCK rows the float per-neuron block is folded into double sums (at most 64 float
 * additions of pairs). That keeps the float error around 1e-6 relative while the inner loop stays
 * in float vectors.
 *
 * Non-finite values cost nothing in the common case: nothing is masked. A NaN or Inf makes the
 * segment's float sum of d^4 non-finite, and so does a float overflow (|d| beyond ~1e9); the fold
 * notices and redoes that segment with a scalar loop in double that also counts the NaNs and
 * Infs and takes min/max without them (min/max use "x < acc ? x : acc", which NaN never wins).
 * Likewise a non-finite per-neuron block entry is recomputed from the rows in double, and the
 * histogram's bin 31, where non-finite values and padding were counted, is corrected at the end.
 */
#ifndef SYN_STATS_KERNEL_H
#define SYN_STATS_KERNEL_H

#include <math.h>

#include "stats_hist.h"
#include "stats_internal.h"
#include "stats_simd.h"

#define SYN_SEG       1024 /* columns per segment (a multiple of SYN_LANES) */
#define SYN_ROW_BLOCK 128  /* rows per fold of the float per-neuron block (even) */
#define SYN_STAGE_PAD (SYN_HIST_BLOCK * SYN_LANES)
#define SYN_STAGE     (2 * SYN_SEG + SYN_STAGE_PAD)

/* Vector accumulators of one segment (both rows of a pair share them). */
typedef struct {
    f32v s1, s2, s3, s4; /* sums of d, d^2, d^3, d^4 with d = x - pivot */
    f32v vmin, vmax;
    i32v n_zero, n_gt; /* minus the sum of the -1 / 0 compare masks */
} syn_acc;

/* Per-thread working memory of the kernel (on its stack). */
typedef struct {
    syn_hist hist;
    int32_t stage[SYN_STAGE]; /* fp32 bits of the current segment, for pass B */
} syn_work;

/* ---- pass A: one vector of fp32 bits ---- */

/* Accumulates one vector into a and returns its |x|. valid (NULL: all lanes) masks the padding
 * lanes of a row's last vector, which hold NaN. */
SYN_ALWAYS_INLINE f32v syn_step(syn_acc *a, const i32v *tb, const f32v *piv, const i32v *bp,
                                const i32v *valid) {
    i32v b = *bp;
    i32v ab = b & SYN_F32_ABS_MASK;
    f32v x = (f32v)b;
    f32v d = x - *piv;
    i32v gt = ab > *tb;
    a->n_zero -= ab == 0; /* the NaN padding is not 0 */
    if (valid) {
        d = (f32v)((i32v)d & *valid);
        ab &= *valid;
        gt &= *valid;
    }
    a->n_gt -= gt;
    f32v d2 = d * d;
    a->s1 += d;
    a->s2 += d2;
    a->s3 += d2 * d;
    a->s4 += d2 * d2;
    /* Written per lane so that the compiler emits one minps / maxps each. */
    for (int k = 0; k < SYN_LANES; k++) {
        a->vmin[k] = x[k] < a->vmin[k] ? x[k] : a->vmin[k];
        a->vmax[k] = x[k] > a->vmax[k] ? x[k] : a->vmax[k];
    }
    return (f32v)ab;
}

/* Pass A on the vectors v0 (and v1, when nrows == 2) at column offset i of the segment. */
SYN_ALWAYS_INLINE void syn_pass_a(syn_acc *a, const i32v *tb, const f32v *piv, float *blk,
                                  int32_t *stage0, int32_t *stage1, uint64_t i, const i32v *v0,
                                  const i32v *v1, int nrows, const i32v *valid) {
    f32v af, cb;
    memcpy(stage0 + i, v0, sizeof *v0);
    af = syn_step(a, tb, piv, v0, valid);
    if (nrows == 2) {
        memcpy(stage1 + i, v1, sizeof *v1);
        af += syn_step(a, tb, piv, v1, valid);
    }
    memcpy(&cb, blk + i, sizeof cb);
    cb += af;
    memcpy(blk + i, &cb, sizeof cb);
}

/* Pass A over one segment [c0, c1) of one or two rows (nrows is a constant after inlining),
 * then pass B over its stage. c1 - c0 <= SYN_SEG; a partial last vector only where c1 == cols. */
SYN_ALWAYS_INLINE void syn_segment(syn_share *sh, syn_work *w, const char *row0, const char *row1,
                                   uint64_t c0, uint64_t c1, int nrows, uint32_t dtype) {
    const f32v zero = syn_splat_f(0.0f);
    const i32v tb = syn_splat_i(sh->threshold_bits);
    const f32v piv = syn_splat_f(sh->pivot);
    syn_acc a = {.s1 = zero, .s2 = zero, .s3 = zero, .s4 = zero};
    a.vmin = syn_splat_f(INFINITY);
    a.vmax = syn_splat_f(-INFINITY);
    a.n_zero = a.n_gt = syn_splat_i(0);
    const uint64_t len_pad = (c1 - c0 + SYN_LANES - 1) / SYN_LANES * SYN_LANES;
    int32_t *stage0 = w->stage;
    int32_t *stage1 = w->stage + len_pad;
    float *blk = sh->col_block + c0;
    /* Pass B does not touch memory; prefetching the next segment keeps memory busy meanwhile.
     * The next segment is further along these rows, or the start of the next row pair. */
    const size_t elem = dtype == SYN_STATS_F32 ? 4 : 2;
    const uint64_t cols = sh->cols;
    /* (addresses as integers: they may lie past the end of x, where prefetching is harmless) */
    const uintptr_t next = (uintptr_t)row0 + (c1 < cols ? c1 : 2 * cols) * elem;
    const uintptr_t next_gap = cols * elem; /* from the next segment's row 0 to its row 1 */
    uint64_t c = c0;
    i32v v0, v1 = syn_splat_i(0);
    for (; c + SYN_LANES <= c1; c += SYN_LANES) {
        const uintptr_t pf = next + (c - c0) * elem;
        __builtin_prefetch((const void *)pf);
        __builtin_prefetch((const void *)(pf + next_gap));
        v0 = syn_load(row0, c, dtype);
        if (nrows == 2)
            v1 = syn_load(row1, c, dtype);
        syn_pass_a(&a, &tb, &piv, blk, stage0, stage1, c - c0, &v0, &v1, nrows, NULL);
    }
    if (c < c1) { /* the end of a row; col_block is padded to SYN_MAX_LANES */
        const i32v valid = syn_iota() < syn_splat_i((int32_t)(c1 - c));
        v0 = syn_load_tail(row0, c, c1 - c, dtype);
        if (nrows == 2)
            v1 = syn_load_tail(row1, c, c1 - c, dtype);
        syn_pass_a(&a, &tb, &piv, blk, stage0, stage1, c - c0, &v0, &v1, nrows, &valid);
    }
    syn_seg_sums sums = {{0, 0, 0, 0}, a.vmin[0], a.vmax[0], 0, 0};
    for (int k = 0; k < SYN_LANES; k++) {
        sums.sum_d[0] += a.s1[k];
        sums.sum_d[1] += a.s2[k];
        sums.sum_d[2] += a.s3[k];
        sums.sum_d[3] += a.s4[k];
        sums.min = a.vmin[k] < sums.min ? a.vmin[k] : sums.min;
        sums.max = a.vmax[k] > sums.max ? a.vmax[k] : sums.max;
        sums.zero_count += (uint64_t)a.n_zero[k];
        sums.gt_count += (uint64_t)a.n_gt[k];
    }
    syn_fold_segment(sh, &sums, row0, nrows, c0, c1);

    /* pass B, on whole histogram blocks: the NaN padding lands in bin 31 and is taken out later */
    uint64_t staged = (uint64_t)nrows * len_pad;
    uint64_t padded = (staged + SYN_STAGE_PAD - 1) / SYN_STAGE_PAD * SYN_STAGE_PAD;
    for (uint64_t i = staged; i < padded; i++)
        w->stage[i] = SYN_F32_QNAN_BITS;
    sh->pad_count += padded - (uint64_t)nrows * (c1 - c0);
    if (w->hist.inputs + padded / SYN_LANES > SYN_HIST_MAX_INPUT) {
        syn_hist_drain(&w->hist, sh->mag_all, sh->mag_neg);
    }
    syn_hist_count(&w->hist, w->stage, padded / SYN_LANES);
}

SYN_ALWAYS_INLINE void syn_rows(syn_share *sh, syn_work *w, uint32_t dtype) {
    const size_t elem = dtype == SYN_STATS_F32 ? 4 : 2;
    const uint64_t cols = sh->cols;
    for (uint64_t rb = sh->row_begin; rb < sh->row_end; rb += SYN_ROW_BLOCK) {
        uint64_t re = rb + SYN_ROW_BLOCK < sh->row_end ? rb + SYN_ROW_BLOCK : sh->row_end;
        for (uint64_t r = rb; r < re; r += 2) {
            const char *row0 = (const char *)sh->x + r * cols * elem;
            for (uint64_t c0 = 0; c0 < cols; c0 += SYN_SEG) {
                uint64_t c1 = c0 + SYN_SEG < cols ? c0 + SYN_SEG : cols;
                if (r + 1 < re) {
                    syn_segment(sh, w, row0, row0 + cols * elem, c0, c1, 2, dtype);
                } else {
                    syn_segment(sh, w, row0, NULL, c0, c1, 1, dtype);
                }
            }
        }
        syn_fold_col_block(sh, rb, re);
    }
    syn_hist_drain(&w->hist, sh->mag_all, sh->mag_neg);
}

/* The kernel entry point of this vector width. */
void SYN_KERNEL_NAME(syn_share *sh) {
    syn_work w __attribute__((aligned(64)));
    memset(&w.hist, 0, sizeof w.hist);
    switch (sh->dtype) {
    case SYN_STATS_F32:
        syn_rows(sh, &w, SYN_STATS_F32);
        break;
    case SYN_STATS_BF16:
        syn_rows(sh, &w, SYN_STATS_BF16);
        break;
    default:
        syn_rows(sh, &w, SYN_STATS_F16);
        break;
    }
}

#endif
