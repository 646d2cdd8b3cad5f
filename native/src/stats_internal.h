/* Private interfaces between the statistics kernel's translation units (no vector types here:
 * the kernel is compiled once per vector width, everything else once). */
#ifndef SYN_STATS_INTERNAL_H
#define SYN_STATS_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "../include/stats.h"

#define SYN_F32_ABS_MASK  0x7fffffff
#define SYN_F32_INF_BITS  0x7f800000
#define SYN_F32_QNAN_BITS 0x7fc00000

/* Per-neuron block arrays are padded to a multiple of the widest vector. */
#define SYN_MAX_LANES 8

/* The kernel counts magnitude bins j (0..31) of all values and of the negative ones;
 * syn_fold_hist turns them into the 64 signed bins. */
#define SYN_MAG_BINS 32

/* One share of a call: rows [row_begin, row_end) of x, run by one thread. */
typedef struct {
    /* in */
    const void *x;
    uint64_t cols;
    uint32_t dtype;
    int32_t threshold_bits; /* |x| bits > this <=> |x| > threshold (see syn_stats_compute) */
    float pivot;
    uint64_t row_begin;
    uint64_t row_end;
    float *col_block; /* cols padded to SYN_MAX_LANES: per-neuron |x| of the current row block */
    double *col_sum;  /* cols doubles: per-neuron sum of |x| over this share */
    /* out */
    uint64_t nan_count;
    uint64_t pos_inf_count;
    uint64_t neg_inf_count;
    uint64_t zero_count;
    uint64_t gt_count;  /* elements with |x| bits > threshold_bits, NaN and Inf included */
    uint64_t pad_count; /* NaN padding lanes that the histogram counted */
    /* Magnitude bin j counts, of all elements and of those with x < 0. NaN, Inf and padding are
     * counted in bin 31 here (-Inf in both); syn_fold_hist takes them out. */
    uint64_t mag_all[SYN_MAG_BINS];
    uint64_t mag_neg[SYN_MAG_BINS];
    double sum_d[4];
    float min;
    float max;
} syn_share;

/* A segment's vector accumulators summed over lanes. */
typedef struct {
    double sum_d[4]; /* sums of d, d^2, d^3, d^4 with d = x - pivot; not finite after a NaN,
                        an Inf or a float overflow */
    float min;       /* NaN never wins a comparison, so these skip NaN (not Inf) */
    float max;
    uint64_t zero_count;
    uint64_t gt_count;
} syn_seg_sums;

/* One element as fp32 (scalar paths). */
static inline float syn_load1(const void *row, uint64_t i, uint32_t dtype) {
    uint32_t bits;
    if (dtype == SYN_STATS_F32) {
        memcpy(&bits, (const float *)row + i, sizeof bits);
    } else if (dtype == SYN_STATS_BF16) {
        bits = (uint32_t)((const uint16_t *)row)[i] << 16;
    } else {
        uint32_t h = ((const uint16_t *)row)[i], e = (h >> 10) & 31, m = h & 1023;
        if (e == 31) {
            bits = SYN_F32_INF_BITS | m << 13;
        } else if (e) {
            bits = (e + 127 - 15) << 23 | m << 13;
        } else { /* zero or subnormal: m * 2^-24 is exact in fp32 */
            float f = (float)m * 0x1p-24f;
            memcpy(&bits, &f, sizeof bits);
        }
        bits |= (h & 0x8000) << 16;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Folds a segment (rows row0 and, if nrows == 2, the next one; columns [c0, c1)) into the
 * share, redoing it in double if its sums are not finite (stats_fold.c). */
void syn_fold_segment(syn_share *share, const syn_seg_sums *sums, const char *row0, int nrows,
                      uint64_t c0, uint64_t c1);

/* Adds the per-neuron block of rows [r0, r1) into col_sum and clears it (stats_fold.c). */
void syn_fold_col_block(syn_share *share, uint64_t r0, uint64_t r1);

/* Adds a share's magnitude counts, without NaN, Inf and padding, into the 64-bin histogram
 * (stats_fold.c). */
void syn_fold_hist(const syn_share *share, uint64_t *hist);

/* The kernel on one share, built for the baseline ISA (stats_kernel_base.c) and for AVX2 + FMA
 * (stats_kernel_avx2.c; x86-64 only). Each fills every "out" field and col_sum. */
void syn_kernel_base(syn_share *share);
void syn_kernel_avx2(syn_share *share);

/* Runs the kernel on one share with the implementation syn_stats_impl chose (stats_dispatch.c). */
void syn_stats_kernel(syn_share *share);

/* Runs task(arg, i) for every i in [0, n_tasks) on the calling thread and up to threads - 1
 * pool threads, which claim tasks as they come (stats_pool.c). Returns how many threads ran
 * tasks: 1 when the pool is busy with another call or cannot start threads. */
typedef void (*syn_task)(void *arg, uint32_t index);
uint32_t syn_pool_run(syn_task task, void *arg, uint32_t n_tasks, uint32_t threads);

#endif
