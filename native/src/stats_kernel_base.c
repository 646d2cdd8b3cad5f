/* The kernel at the compiler's baseline ISA, with the target's native vector width: 4 lanes
 * (SSE2 on x86-64, NEON on aarch64). */
#define SYN_LANES       4
#define SYN_KERNEL_NAME syn_kernel_base
/* x86 has no per-lane variable shift before AVX2 (see syn_hist_words). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX2__)
#define SYN_VSHIFT 0
#else
#define SYN_VSHIFT 1
#endif

#include "stats_kernel.h"
