/* The kernel for x86-64 CPUs with AVX2 and FMA: 8 lanes, one instruction per vector operation.
 * Only this file is compiled for that target; stats_dispatch.c calls it after checking the CPU,
 * so the extension still loads everywhere. */
#include "stats_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif

#define SYN_LANES       8
#define SYN_VSHIFT      1
#define SYN_KERNEL_NAME syn_kernel_avx2

#include "stats_kernel.h"

#if defined(__clang__)
#pragma clang attribute pop
#endif

#else

void syn_kernel_avx2(syn_share *share) { /* never called: syn_stats_impl reports no AVX2 here */
    syn_kernel_base(share);
}

#endif
