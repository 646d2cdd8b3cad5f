/* Small helpers for records seen as two spans (a record that wraps the ring is split in two). */
#ifndef SYN_SPANS_H
#define SYN_SPANS_H

#include <stdint.h>
#include <string.h>

#include "ring.h"

/* The part of a two-span record that starts `offset` bytes in. */
static inline void syn_spans_skip(const syn_span *in, size_t offset, syn_span *out) {
    if (offset < in[0].len) {
        out[0].base = (const uint8_t *)in[0].base + offset;
        out[0].len = in[0].len - offset;
        out[1] = in[1];
    } else {
        out[0].base = (const uint8_t *)in[1].base + (offset - in[0].len);
        out[0].len = in[1].len - (offset - in[0].len);
        out[1].base = in[1].base;
        out[1].len = 0;
    }
}

/* Copies n bytes starting `offset` bytes into a two-span record; the caller checks the bounds. */
static inline void syn_spans_copy(const syn_span *in, size_t offset, void *dst, size_t n) {
    syn_span part[2];
    syn_spans_skip(in, offset, part);
    size_t first = part[0].len < n ? part[0].len : n;
    if (first != 0) {
        memcpy(dst, part[0].base, first);
    }
    if (n > first) {
        memcpy((uint8_t *)dst + first, part[1].base, n - first);
    }
}

#endif
