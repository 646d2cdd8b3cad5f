/* Which kernel build runs (AVX2 when the CPU has it, else the baseline one), and the per-share
 * set-up common to both. */
#include <math.h>

#include "stats_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SYN_HAVE_AVX2 1
static int syn_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
#define SYN_HAVE_AVX2 0
#endif

static _Atomic int32_t syn_active_impl = -1; /* -1: not chosen yet */

int32_t syn_stats_impl(int32_t request) {
    if (request == SYN_STATS_IMPL_QUERY) {
        int32_t cur = syn_active_impl;
        if (cur >= 0)
            return cur;
        request = SYN_STATS_IMPL_AVX2;
    }
    int32_t impl = SYN_STATS_IMPL_GENERIC;
#if SYN_HAVE_AVX2
    if (request == SYN_STATS_IMPL_AVX2 && syn_cpu_has_avx2())
        impl = SYN_STATS_IMPL_AVX2;
#endif
    syn_active_impl = impl;
    return impl;
}

void syn_stats_kernel(syn_share *sh) {
    uint64_t cols_pad = (sh->cols + SYN_MAX_LANES - 1) / SYN_MAX_LANES * SYN_MAX_LANES;
    sh->nan_count = sh->pos_inf_count = sh->neg_inf_count = sh->pad_count = 0;
    sh->zero_count = sh->gt_count = 0;
    memset(sh->mag_all, 0, sizeof sh->mag_all);
    memset(sh->mag_neg, 0, sizeof sh->mag_neg);
    for (int m = 0; m < 4; m++)
        sh->sum_d[m] = 0.0;
    sh->min = INFINITY;
    sh->max = -INFINITY;
    memset(sh->col_sum, 0, sh->cols * sizeof(double));
    memset(sh->col_block, 0, cols_pad * sizeof(float));
    if (syn_stats_impl(SYN_STATS_IMPL_QUERY) == SYN_STATS_IMPL_AVX2) {
        syn_kernel_avx2(sh);
    } else {
        syn_kernel_base(sh);
    }
}
