/* Portable vectors of SYN_LANES 32-bit lanes (GCC / Clang vector extensions) and the input-format
 * loaders. The including file sets SYN_LANES to the target's native width: 8 for AVX2, 4 for
 * SSE2 and NEON (wider vectors than the hardware make GCC compare lane by lane).
 *
 * Every value is handled as its fp32 bit pattern: bf16 and fp16 are widened to fp32 bits exactly,
 * so classification and the histogram are integer operations on the same bits for all three
 * input types.
 */
#ifndef SYN_STATS_SIMD_H
#define SYN_STATS_SIMD_H

#include <stdint.h>
#include <string.h>

#include "stats_internal.h"

#if SYN_LANES != 4 && SYN_LANES != 8
#error "define SYN_LANES as 4 or 8 before including stats_simd.h"
#endif

/* Every function returning a vector is always inlined (and vectors are passed by pointer), so no
 * vector crosses a call boundary and GCC's note on the 32-byte vector ABI does not apply. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

typedef float f32v __attribute__((vector_size(4 * SYN_LANES)));
typedef int32_t i32v __attribute__((vector_size(4 * SYN_LANES)));
typedef uint32_t u32v __attribute__((vector_size(4 * SYN_LANES)));
typedef uint16_t u16v __attribute__((vector_size(2 * SYN_LANES)));

#define SYN_ALWAYS_INLINE static inline __attribute__((always_inline))

SYN_ALWAYS_INLINE i32v syn_splat_i(int32_t v) {
    i32v r;
    for (int k = 0; k < SYN_LANES; k++)
        r[k] = v;
    return r;
}

SYN_ALWAYS_INLINE u32v syn_splat_u(uint32_t v) {
    return (u32v)syn_splat_i((int32_t)v);
}

SYN_ALWAYS_INLINE f32v syn_splat_f(float v) {
    f32v r;
    for (int k = 0; k < SYN_LANES; k++)
        r[k] = v;
    return r;
}

/* 0, 1, 2, ... */
SYN_ALWAYS_INLINE i32v syn_iota(void) {
    i32v r;
    for (int k = 0; k < SYN_LANES; k++)
        r[k] = k;
    return r;
}

/* fp16 bits (in the low 16 bits of each lane) to fp32 bits, exact for every input, without
 * touching fp32 denormals (which would be flushed under DAZ and are slow on some CPUs):
 * normals rebias the exponent, Inf/NaN get the all-ones exponent, and subnormals are built as
 * 2^-14 * (1 + m/1024) and then have 2^-14 subtracted, which is exact and normal in fp32. */
SYN_ALWAYS_INLINE i32v syn_f16_bits_to_f32_bits(const i32v *hp) {
    u32v h = (u32v)*hp;
    const u32v shifted_exp = syn_splat_u(0x7c00u << 13);
    u32v o = (h & 0x7fff) << 13;
    u32v exp = o & shifted_exp;
    o += (127 - 15) << 23;
    o += (u32v)(exp == shifted_exp) & ((128 - 16) << 23);
    u32v is_sub = (u32v)(exp == 0);
    f32v sub = (f32v)(o + (1u << 23)) - syn_splat_f(0x1p-14f);
    o = (o & ~is_sub) | ((u32v)sub & is_sub);
    return (i32v)(o | ((h & 0x8000) << 16));
}

SYN_ALWAYS_INLINE i32v syn_widen(const u16v *h, uint32_t dtype) {
    i32v w = __builtin_convertvector(*h, i32v);
    return dtype == SYN_STATS_BF16 ? (i32v)((u32v)w << 16) : syn_f16_bits_to_f32_bits(&w);
}

/* Loads SYN_LANES elements from element i of a row and returns their fp32 bit patterns. */
SYN_ALWAYS_INLINE i32v syn_load(const void *row, uint64_t i, uint32_t dtype) {
    if (dtype == SYN_STATS_F32) {
        i32v v;
        memcpy(&v, (const float *)row + i, sizeof v);
        return v;
    }
    u16v h;
    memcpy(&h, (const uint16_t *)row + i, sizeof h);
    return syn_widen(&h, dtype);
}

/* The last n < SYN_LANES elements of a row; the missing lanes are a quiet NaN. */
SYN_ALWAYS_INLINE i32v syn_load_tail(const void *row, uint64_t i, uint64_t n, uint32_t dtype) {
    if (dtype == SYN_STATS_F32) {
        i32v v = syn_splat_i(SYN_F32_QNAN_BITS);
        memcpy(&v, (const float *)row + i, n * sizeof(float));
        return v;
    }
    u16v h;
    for (int k = 0; k < SYN_LANES; k++)
        h[k] = dtype == SYN_STATS_BF16 ? 0x7fc0 : 0x7e00; /* quiet NaN in each format */
    memcpy(&h, (const uint16_t *)row + i, n * sizeof(uint16_t));
    return syn_widen(&h, dtype);
}

#endif
