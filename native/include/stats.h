/* The fused single-pass statistics kernel for CPU tensors: public declarations.
 *
 * Declaration-only: native/_cffi_stats_build.py reads this file into ffi.cdef (it keeps the
 * `#define NAME <integer>` lines and drops the other preprocessor lines), so it holds nothing but
 * plain fixed-width structs, prototypes and integer constants.
 *
 * Input: x is a C-contiguous [rows, cols] matrix (rows = batch * tokens, cols = neurons) of fp32,
 * bf16 or fp16 values. One call reads it once and produces the raw sums of a summary (struct
 * below), the 64-bin magnitude histogram and the per-neuron sum of |x|; syn_stats_finish turns
 * the raw sums into the 336-byte summary record of the wire format.
 */
#ifndef SYN_STATS_H
#define SYN_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Return codes (the values match the shared SYN_E* codes of errors.h). */
#define SYN_STATS_OK        0
#define SYN_STATS_ETOOSMALL -4 /* the scratch buffer cannot hold even one share of the rows */
#define SYN_STATS_EINVAL    -5 /* bad dtype, NULL pointer with data, or rows * cols overflows */

/* Input element types. */
#define SYN_STATS_F32  0
#define SYN_STATS_BF16 1
#define SYN_STATS_F16  2

/* Kernel implementations (syn_stats_impl). */
#define SYN_STATS_IMPL_QUERY   -1 /* change nothing, report the active one */
#define SYN_STATS_IMPL_GENERIC 0  /* portable vector code at the compiler's baseline ISA */
#define SYN_STATS_IMPL_AVX2    1  /* x86-64 AVX2 + FMA build, the default where the CPU has it */

#define SYN_STATS_HIST_BINS    64
#define SYN_STATS_MAX_THREADS  8
#define SYN_STATS_RECORD_BYTES 336

/* Raw sums of one call. Moments are taken about `pivot` (the median of a small sample spread over
 * the tensor, so within about one std of the mean): mean >> std then loses little to cancellation.
 */
typedef struct {
    uint64_t count;        /* rows * cols */
    uint64_t finite_count; /* elements that are neither NaN nor +-Inf */
    uint64_t nan_count;
    uint64_t inf_count;
    uint64_t zero_count;  /* +0 and -0 */
    uint64_t above_count; /* finite elements with |x| > threshold */
    uint64_t hist[SYN_STATS_HIST_BINS];
    double pivot;
    double sum_d1; /* sums over finite x of d = x - pivot, d^2, d^3, d^4 */
    double sum_d2;
    double sum_d3;
    double sum_d4;
    double sum_abs; /* sum over finite x of |x| */
    float min;      /* over finite x; +Inf / -Inf when there is none */
    float max;
    float threshold;
    uint32_t threads_used; /* threads that ran part of the call */
} syn_stats_raw;

/* Bytes of scratch memory that syn_stats_compute needs for `cols` neurons and `threads` threads.
 * Callers allocate it once per site and reuse it. */
uint64_t syn_stats_scratch_bytes(uint64_t cols, uint32_t threads);

/* One pass over x. neuron_abs (cols floats, may be NULL) receives neuron_scale * sum over rows of
 * |x| (finite x only): neuron_scale = 1 gives sums, 1 / rows gives means. Up to max_threads
 * threads share the rows (fewer for small inputs, or when the scratch is too small for more, or
 * when another call is using the pool). threshold: a NaN or +Inf one counts nothing above it, a
 * negative one counts every finite element. Returns SYN_STATS_OK or a negative code. */
int syn_stats_compute(const void *x, uint64_t rows, uint64_t cols, uint32_t dtype, float threshold,
                      float *neuron_abs, float neuron_scale, void *scratch, uint64_t scratch_bytes,
                      uint32_t max_threads, syn_stats_raw *out);

/* Writes the summary record (SYN_STATS_RECORD_BYTES bytes, little-endian, any alignment) from the
 * raw sums. Float fields are NaN when no element is finite (the histogram is then all zeros). */
void syn_stats_finish(const syn_stats_raw *raw, uint32_t site_id, uint32_t flags, void *record);

/* Neuron selection: the entries of values[0..n) that are > threshold (NaN never is), capped to the
 * k largest (ties at the cap go to the lower indices), written in ascending index order to
 * out_idx / out_val (room for k each). *n_written gets how many; returns how many were above. */
uint64_t syn_stats_select(const float *values, uint64_t n, float threshold, uint32_t k,
                          uint32_t *out_idx, float *out_val, uint32_t *n_written);

/* Chooses the kernel implementation (SYN_STATS_IMPL_*) for later calls; a request the CPU cannot
 * run falls back to GENERIC. Returns the active one. Meant for tests and benchmarks. */
int32_t syn_stats_impl(int32_t request);

#endif
