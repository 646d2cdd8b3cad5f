/* The desktop app's busy-tick kernels (see include/grid.h). */
#include "grid.h"

#include <float.h>
#include <string.h>

#include "errors.h"
#include "frame.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

_Static_assert(sizeof(syn_sparse_head) == 40, "numpy mirrors syn_sparse_head: 40 bytes");
_Static_assert(sizeof(syn_grid_site) == 32, "numpy mirrors syn_grid_site: 32 bytes");

#define SPARSE_AT (SYN_FRAME_HEADER_SIZE + SYN_SPARSE_FIXED_SIZE) /* the first index */

static uint32_t read_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t read_le16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t read_le64(const uint8_t *p) {
    return (uint64_t)read_le32(p) | (uint64_t)read_le32(p + 4) << 32;
}

static float read_lef32(const uint8_t *p) {
    uint32_t bits = read_le32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Whether frame (whole, length bytes) is a SPARSE_ACTIVATIONS frame the codec would accept. */
static int scan_one(const uint8_t *f, uint64_t length, uint32_t max_payload, syn_sparse_head *h) {
    if (length < SPARSE_AT || read_le32(f) != SYN_FRAME_MAGIC ||
        read_le16(f + 4) != SYN_PROTOCOL_VERSION ||
        read_le16(f + 6) != SYN_MSG_SPARSE_ACTIVATIONS) {
        return 0;
    }
    uint32_t payload = read_le32(f + SYN_FRAME_LENGTH_OFFSET);
    uint32_t n = read_le32(f + 40);
    uint32_t n_above = read_le32(f + 44);
    if (payload > max_payload || length != SYN_FRAME_HEADER_SIZE + (uint64_t)payload ||
        (uint64_t)payload != SYN_SPARSE_FIXED_SIZE + 8 * (uint64_t)n || n > n_above) {
        return 0;
    }
    const uint8_t *index = f + SPARSE_AT;
    uint32_t last = n ? read_le32(index) : 0;
    for (uint32_t i = 1; i < n; i++) {
        uint32_t next = read_le32(index + 4 * (size_t)i);
        if (next <= last) {
            return 0;
        }
        last = next;
    }
    h->seq = read_le32(f + 12);
    h->timestamp_ns = read_le64(f + 16);
    h->step = read_le32(f + 24);
    h->rank = read_le16(f + 28);
    h->site_id = read_le32(f + 32);
    h->threshold = read_lef32(f + 36);
    h->n = n;
    h->n_above = n_above;
    h->reserved = 0;
    return 1;
}

size_t syn_sparse_scan(const uint8_t *buf, size_t len, const uint64_t *lengths, size_t n_frames,
                       uint32_t max_payload, syn_sparse_head *heads) {
    size_t at = 0;
    for (size_t i = 0; i < n_frames; i++) {
        if (lengths[i] > len - at || !scan_one(buf + at, lengths[i], max_payload, &heads[i])) {
            return i;
        }
        at += lengths[i];
    }
    return n_frames;
}

/* Whether site k's points fit everything they are written to. */
static int site_fits(const syn_grid_site *site, int64_t count, int64_t held, int64_t s,
                     size_t capacity, size_t n_slots, size_t atlas_width, size_t atlas_size) {
    if (count < 0 || (uint64_t)count > capacity || held < 0 || (uint64_t)held > capacity ||
        (uint64_t)s + 1 > n_slots / (capacity ? capacity : 1) || capacity == 0) {
        return 0;
    }
    if (site->limit == 0) {
        return 1; /* no neuron is inside: nothing touches the atlas */
    }
    if (site->cols == 0 || site->cols > atlas_width) {
        return 0;
    }
    uint64_t last_row = (site->limit - 1) / site->cols; /* the block: rows up to it, all cols */
    return site->corner + last_row * atlas_width + site->cols - 1 < atlas_size;
}

/* log2 of a normal, finite, positive float, within a unit in the last place of log2f and
 * several times faster: x = m 2^e with m in [sqrt(1/2), sqrt(2)), and log2(m) = 2 atanh(s) /
 * ln 2 with s = (m - 1) / (m + 1), |s| < 0.172, summed to s^9 (the rest is below 1e-9). The
 * SSE2 version below makes the same float operations in the same order, so both agree to the
 * bit. */
#define SQRT_HALF_BITS 0x3f3504f3u
#define LOG2_C9        0.32059889797532520f
#define LOG2_C7        0.41219858311113240f
#define LOG2_C5        0.57707801635558535f
#define LOG2_C3        0.96179669392597560f
#define LOG2_C1        2.8853900817779268f
#define THIRD          ((float)(1.0 / 3.0))
#define DIMMEST        0.05f

static inline float fast_log2(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = (int32_t)(bits - SQRT_HALF_BITS) >> 23;
    uint32_t mantissa = bits - ((uint32_t)e << 23);
    float m;
    memcpy(&m, &mantissa, sizeof m);
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float p = LOG2_C9;
    p = p * s2 + LOG2_C7;
    p = p * s2 + LOG2_C5;
    p = p * s2 + LOG2_C3;
    p = p * s2 + LOG2_C1;
    return (float)e + s * p;
}

/* log2(ratio) / 3 clamped to 0.05..1; NaN (and a negative ratio) count as 1, as numpy's fmin /
 * fmax give in the reference (tests/desktop/test_grid.py). */
static inline float intensity(float ratio) {
    if (ratio >= 8.0f || !(ratio >= 0.0f)) {
        return 1.0f; /* three doublings or more, +inf; NaN, negative */
    }
    if (ratio < FLT_MIN) {
        return DIMMEST; /* 0 and subnormals, outside fast_log2's domain */
    }
    float i = fast_log2(ratio) * THIRD;
    return i > DIMMEST ? i : DIMMEST;
}

#if defined(__SSE2__)
/* Four intensities at once (see intensity). */
static inline __m128 intensity4(__m128 ratio) {
    const __m128 one = _mm_set1_ps(1.0f);
    __m128i bits = _mm_castps_si128(ratio);
    __m128i e = _mm_srai_epi32(_mm_sub_epi32(bits, _mm_set1_epi32((int)SQRT_HALF_BITS)), 23);
    __m128 m = _mm_castsi128_ps(_mm_sub_epi32(bits, _mm_slli_epi32(e, 23)));
    __m128 s = _mm_div_ps(_mm_sub_ps(m, one), _mm_add_ps(m, one));
    __m128 s2 = _mm_mul_ps(s, s);
    __m128 p = _mm_set1_ps(LOG2_C9);
    p = _mm_add_ps(_mm_mul_ps(p, s2), _mm_set1_ps(LOG2_C7));
    p = _mm_add_ps(_mm_mul_ps(p, s2), _mm_set1_ps(LOG2_C5));
    p = _mm_add_ps(_mm_mul_ps(p, s2), _mm_set1_ps(LOG2_C3));
    p = _mm_add_ps(_mm_mul_ps(p, s2), _mm_set1_ps(LOG2_C1));
    __m128 i = _mm_mul_ps(_mm_add_ps(_mm_cvtepi32_ps(e), _mm_mul_ps(s, p)), _mm_set1_ps(THIRD));
    __m128 dimmest = _mm_set1_ps(DIMMEST);
    i = _mm_max_ps(i, dimmest); /* i > 0.05 ? i : 0.05, and i is not NaN here */
    __m128 tiny = _mm_cmplt_ps(ratio, _mm_set1_ps(FLT_MIN)); /* false for NaN */
    i = _mm_or_ps(_mm_and_ps(tiny, dimmest), _mm_andnot_ps(tiny, i));
    __m128 full = _mm_or_ps(_mm_cmpge_ps(ratio, _mm_set1_ps(8.0f)),
                            _mm_cmpnge_ps(ratio, _mm_setzero_ps())); /* 8 and up; NaN, < 0 */
    return _mm_or_ps(_mm_and_ps(full, one), _mm_andnot_ps(full, i));
}
#endif

/* out[j] = intensity(values[j] / threshold) for n values. */
static void intensities(const float *values, float threshold, size_t n, float *out) {
    size_t j = 0;
#if defined(__SSE2__)
    const __m128 t = _mm_set1_ps(threshold);
    for (; j + 4 <= n; j += 4) {
        _mm_storeu_ps(out + j, intensity4(_mm_div_ps(_mm_loadu_ps(values + j), t)));
    }
#endif
    for (; j < n; j++) {
        out[j] = intensity(values[j] / threshold);
    }
}

#define CHUNK 256 /* points whose intensities are computed at a time */

/* Halves every byte of p[0..n) k times (k < 8): eight at a time, as a shift of a 64-bit word
 * with the bits that cross into the next byte masked off. */
static void halve_bytes(uint8_t *p, size_t n, unsigned k) {
    const uint64_t keep = UINT64_C(0x0101010101010101) * (0xffu >> k);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, p + i, sizeof word);
        word = (word >> k) & keep;
        memcpy(p + i, &word, sizeof word);
    }
    for (; i < n; i++) {
        p[i] = (uint8_t)(p[i] >> k);
    }
}

/* Brings site's block of the atlas up to date: halved `owed` times (dark from 8 on). */
static void fade_block(const syn_grid_site *site, uint8_t *atlas, size_t atlas_width,
                       int64_t owed) {
    if (owed <= 0 || site->limit == 0) {
        return;
    }
    const size_t rows = (site->limit - 1) / site->cols + 1;
    uint8_t *row = atlas + site->corner;
    for (size_t r = 0; r < rows; r++, row += atlas_width) {
        if (owed >= 8) {
            memset(row, 0, site->cols);
        } else {
            halve_bytes(row, site->cols, (unsigned)owed);
        }
    }
}

int64_t syn_grid_place(const syn_grid_site *table, size_t n_table, const int64_t *sites,
                       const int64_t *counts, const float *thresholds, size_t n,
                       const uint32_t *indices, const float *values, size_t n_points, float *rows,
                       size_t capacity, size_t n_slots, int64_t *held, uint8_t *atlas,
                       size_t atlas_width, size_t atlas_size, int64_t *faded, int64_t fades) {
    uint64_t total = 0;
    for (size_t k = 0; k < n; k++) {
        int64_t s = sites[k];
        if (s < 0 || (uint64_t)s >= n_table ||
            !site_fits(&table[s], counts[k], held[s], s, capacity, n_slots, atlas_width,
                       atlas_size)) {
            return SYN_EINVAL;
        }
        total += (uint64_t)counts[k];
    }
    if (total != n_points) {
        return SYN_EINVAL;
    }
    int64_t placed = 0;
    size_t at = 0;
    float level[CHUNK];
    for (size_t k = 0; k < n; k++) {
        const syn_grid_site *site = &table[sites[k]];
        const uint32_t cols = site->cols, limit = site->limit;
        const uint64_t corner = site->corner;
        /* floor(i / cols) as (i * magic) >> 40, exact for i < 2^24 and cols < 2^16 (i * cols <
         * 2^40: the rounding up of magic adds less than 1 / cols); otherwise a division. */
        const int exact = limit <= (1u << 24) && cols < (1u << 16);
        const uint64_t magic = exact ? (UINT64_C(1) << 40) / cols + 1 : 0;
        float *out = rows + 2 * (size_t)sites[k] * capacity;
        fade_block(site, atlas, atlas_width, fades - faded[sites[k]]);
        faded[sites[k]] = fades;
        int64_t m = 0;
        for (size_t chunk = at, end = at + (size_t)counts[k]; chunk < end; chunk += CHUNK) {
            size_t stop = end - chunk < CHUNK ? end : chunk + CHUNK;
            intensities(values + chunk, thresholds[k], stop - chunk, level);
            for (size_t j = chunk; j < stop; j++) {
                uint32_t index = indices[j];
                if (index >= limit) {
                    continue;
                }
                uint32_t row = exact ? (uint32_t)(((uint64_t)index * magic) >> 40) : index / cols;
                uint32_t col = index - row * cols;
                float i = level[j - chunk];
                out[2 * m] = (float)index; /* the shader places it from its site's row */
                out[2 * m + 1] = i;
                atlas[corner + (size_t)row * atlas_width + col] = (uint8_t)(i * 255.0f);
                m++;
            }
        }
        for (int64_t j = m; j < held[sites[k]]; j++) {
            out[2 * j + 1] = -1.0f;
        }
        held[sites[k]] = m;
        placed += m;
        at += (size_t)counts[k];
    }
    return placed;
}
