/* The 64-bin magnitude histogram as bit-sliced vertical counters (no scatter, no stores).
 *
 * A scalar histogram does one load-increment-store per element; on the CPUs we measured, repeated
 * increments of the same few counters cost about 2 cycles each, more than all the other
 * statistics together. Here every element becomes a one-hot 32-bit word (bit j set for its
 * magnitude bin j), in two streams: "all" and "negative" (x < 0; -0 is not, so it joins +0 in
 * bin 32). Words are summed per bit position with carry-save adders (Harley-Seal): each lane of
 * each stream keeps a binary counter per bit position, stored as bit planes, so SYN_LANES x 32
 * bins are counted by a handful of AND/XOR/OR per vector:
 *   level 1 (registers): planes of weight 1, 2, 4, 8; each block of 16 input vectors emits one
 *                        "sixteens" word;
 *   level 2 (memory):    16 sixteens words in, planes of weight 16 .. 128, emits a "256s" word;
 *   high planes:         weight 256 .. 32768, ripple-carried.
 * A lane can count 65535 before the planes must be read out (syn_hist_drain), which costs a few
 * thousand operations and happens every ~65k input vectors per thread.
 *
 * Non-finite values and NaN padding are counted in bin 31 and subtracted by the caller.
 */
#ifndef SYN_STATS_HIST_H
#define SYN_STATS_HIST_H

#include "stats_simd.h"

#define SYN_HIST_BLOCK     16    /* input vectors per level-1 block (per stream) */
#define SYN_HIST_HIGH      8     /* planes of weight 256 .. 32768 */
#define SYN_HIST_MAX_INPUT 65535 /* input vectors per stream between drains */

typedef struct {
    u32v l1[2][4];                   /* [stream][plane]: weights 1, 2, 4, 8 (between blocks) */
    u32v pending[SYN_HIST_BLOCK][2]; /* sixteens words waiting for level 2 */
    u32v l2[2][4];                   /* weights 16, 32, 64, 128 */
    u32v high[2][SYN_HIST_HIGH];     /* weights 256 .. 32768 */
    uint32_t n_pending;
    uint32_t inputs; /* input vectors per stream since the last drain */
} syn_hist;

/* Carry-save adder: a + b + c = 2 * high + low, per bit. */
#define SYN_CSA(h, l, a, b, c)                                                                     \
    do {                                                                                           \
        u32v u_ = (a) ^ (b);                                                                       \
        (h) = ((a) & (b)) | (u_ & (c));                                                            \
        (l) = u_ ^ (c);                                                                            \
    } while (0)

/* Both streams' words for one vector of fp32 bit patterns. Inf and NaN land in bin 31 (and -Inf
 * in the negative stream too): the caller knows how many there were and takes them out
 * afterwards, which is cheaper than masking every word.
 *
 * SYN_VSHIFT says whether the target shifts lanes by different amounts (AVX2, NEON). Without
 * that (x86-64 baseline, SSE2) the compiler would shift lane by lane, so 2^j is made as a float
 * and converted instead, in 3 more operations. */
SYN_ALWAYS_INLINE void syn_hist_words(const int32_t *p, u32v *all, u32v *neg) {
    const f32v lo = syn_splat_f(0x1p-16f);                       /* |x| below 2^-15 is bin 0 */
    const f32v hi = syn_splat_f(SYN_VSHIFT ? 0x1p15f : 0x1p14f); /* from 2^15 up is bin 31 */
    i32v b;
    memcpy(&b, p, sizeof b);
    f32v c = (f32v)(b & SYN_F32_ABS_MASK);
    for (int k = 0; k < SYN_LANES; k++) {   /* per lane, so that it becomes minps / maxps */
        c[k] = c[k] < hi[k] ? c[k] : hi[k]; /* NaN fails the test: NaN -> hi */
        c[k] = lo[k] < c[k] ? c[k] : lo[k];
    }
#if SYN_VSHIFT
    /* magnitude bin j = exponent - 111 of the clamped |x|, i.e. floor(log2|x|) + 16 */
    u32v word = syn_splat_u(1) << (((u32v)c >> 23) - 111);
#else
    /* 2^j as a float (exponent + 16), at most 2^30 here; bin 31 doubles 2^30 */
    f32v pow2 = (f32v)(((u32v)c & SYN_F32_INF_BITS) + (16u << 23));
    u32v word = (u32v) __builtin_convertvector(pow2, i32v);
    word += word & (u32v)((b & SYN_F32_ABS_MASK) >= (142 << 23));
#endif
    *all = word;
    *neg = word & (u32v)((f32v)b < syn_splat_f(0.0f)); /* -0 and NaN are not < 0 */
}

/* Adds the 16 pending sixteens words of each stream into level 2 and the high planes. */
SYN_ALWAYS_INLINE void syn_hist_level2(syn_hist *h) {
    for (int s = 0; s < 2; s++) {
        u32v o = h->l2[s][0], t = h->l2[s][1], f = h->l2[s][2], e = h->l2[s][3];
        u32v t0, t1, f0, f1, e0, e1, carry;
#define SYN_W(i) h->pending[i][s]
        SYN_CSA(t0, o, o, SYN_W(0), SYN_W(1));
        SYN_CSA(t1, o, o, SYN_W(2), SYN_W(3));
        SYN_CSA(f0, t, t, t0, t1);
        SYN_CSA(t0, o, o, SYN_W(4), SYN_W(5));
        SYN_CSA(t1, o, o, SYN_W(6), SYN_W(7));
        SYN_CSA(f1, t, t, t0, t1);
        SYN_CSA(e0, f, f, f0, f1);
        SYN_CSA(t0, o, o, SYN_W(8), SYN_W(9));
        SYN_CSA(t1, o, o, SYN_W(10), SYN_W(11));
        SYN_CSA(f0, t, t, t0, t1);
        SYN_CSA(t0, o, o, SYN_W(12), SYN_W(13));
        SYN_CSA(t1, o, o, SYN_W(14), SYN_W(15));
        SYN_CSA(f1, t, t, t0, t1);
        SYN_CSA(e1, f, f, f0, f1);
        SYN_CSA(carry, e, e, e0, e1);
#undef SYN_W
        h->l2[s][0] = o, h->l2[s][1] = t, h->l2[s][2] = f, h->l2[s][3] = e;
        for (int k = 0; k < SYN_HIST_HIGH; k++) { /* ripple the 256s into the high planes */
            u32v next = h->high[s][k] & carry;
            h->high[s][k] ^= carry;
            carry = next;
        }
    }
    h->n_pending = 0;
}

/* Adds weight * (bit p of each lane of plane) to counts[p]. */
static void syn_hist_add_plane(const u32v *plane, uint64_t weight, uint64_t *counts) {
    for (int l = 0; l < SYN_LANES; l++) {
        uint32_t w = (*plane)[l];
        while (w) {
            counts[__builtin_ctz(w)] += weight;
            w &= w - 1;
        }
    }
}

/* Adds every count held in h to mag_all / mag_neg (32 bins each) and clears h. Rare: every ~65k
 * input vectors and at the end of a share. */
static void syn_hist_drain(syn_hist *h, uint64_t *mag_all, uint64_t *mag_neg) {
    if (h->n_pending) { /* empty words for the rest of the batch count nothing */
        memset(h->pending[h->n_pending], 0, (SYN_HIST_BLOCK - h->n_pending) * sizeof h->pending[0]);
        syn_hist_level2(h);
    }
    for (int s = 0; s < 2; s++) {
        uint64_t *counts = s ? mag_neg : mag_all;
        for (int k = 0; k < 4; k++) {
            syn_hist_add_plane(&h->l1[s][k], 1ull << k, counts);
            syn_hist_add_plane(&h->l2[s][k], 16ull << k, counts);
        }
        for (int k = 0; k < SYN_HIST_HIGH; k++)
            syn_hist_add_plane(&h->high[s][k], 256ull << k, counts);
    }
    memset(h, 0, sizeof *h);
}

/* Counts nv vectors (a multiple of SYN_HIST_BLOCK) of fp32 bits. The caller drains first if
 * h->inputs + nv would exceed SYN_HIST_MAX_INPUT. */
SYN_ALWAYS_INLINE void syn_hist_count(syn_hist *h, const int32_t *bits, uint64_t nv) {
    u32v a1 = h->l1[0][0], a2 = h->l1[0][1], a4 = h->l1[0][2], a8 = h->l1[0][3];
    u32v n1 = h->l1[1][0], n2 = h->l1[1][1], n4 = h->l1[1][2], n8 = h->l1[1][3];
    for (uint64_t v = 0; v < nv; v += SYN_HIST_BLOCK) {
        const int32_t *p = bits + v * SYN_LANES;
        u32v a4x, a4y, a8x, a8y, a16, m4x, m4y, m8x, m8y, m16;
        u32v wa0, wn0, wa1, wn1, ca0, cn0, ca1, cn1;
        /* Adds the next two input vectors into the "ones" planes; the carries go to (ca, cn). */
#define SYN_PAIR(i, ca, cn)                                                                        \
    do {                                                                                           \
        syn_hist_words(p + (i) * SYN_LANES, &wa0, &wn0);                                           \
        syn_hist_words(p + ((i) + 1) * SYN_LANES, &wa1, &wn1);                                     \
        SYN_CSA(ca, a1, a1, wa0, wa1);                                                             \
        SYN_CSA(cn, n1, n1, wn0, wn1);                                                             \
    } while (0)
        SYN_PAIR(0, ca0, cn0);
        SYN_PAIR(2, ca1, cn1);
        SYN_CSA(a4x, a2, a2, ca0, ca1);
        SYN_CSA(m4x, n2, n2, cn0, cn1);
        SYN_PAIR(4, ca0, cn0);
        SYN_PAIR(6, ca1, cn1);
        SYN_CSA(a4y, a2, a2, ca0, ca1);
        SYN_CSA(m4y, n2, n2, cn0, cn1);
        SYN_CSA(a8x, a4, a4, a4x, a4y);
        SYN_CSA(m8x, n4, n4, m4x, m4y);
        SYN_PAIR(8, ca0, cn0);
        SYN_PAIR(10, ca1, cn1);
        SYN_CSA(a4x, a2, a2, ca0, ca1);
        SYN_CSA(m4x, n2, n2, cn0, cn1);
        SYN_PAIR(12, ca0, cn0);
        SYN_PAIR(14, ca1, cn1);
        SYN_CSA(a4y, a2, a2, ca0, ca1);
        SYN_CSA(m4y, n2, n2, cn0, cn1);
        SYN_CSA(a8y, a4, a4, a4x, a4y);
        SYN_CSA(m8y, n4, n4, m4x, m4y);
        SYN_CSA(a16, a8, a8, a8x, a8y);
        SYN_CSA(m16, n8, n8, m8x, m8y);
#undef SYN_PAIR
        h->pending[h->n_pending][0] = a16;
        h->pending[h->n_pending][1] = m16;
        if (++h->n_pending == SYN_HIST_BLOCK)
            syn_hist_level2(h);
    }
    h->l1[0][0] = a1, h->l1[0][1] = a2, h->l1[0][2] = a4, h->l1[0][3] = a8;
    h->l1[1][0] = n1, h->l1[1][1] = n2, h->l1[1][2] = n4, h->l1[1][3] = n8;
    h->inputs += (uint32_t)nv;
}

#endif
