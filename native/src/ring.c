/* The record ring (see ring_impl.h for the layout and the memory-ordering contract). */
#include <stdlib.h>
#include <string.h>

#include "ring_impl.h"

int syn_is_valid_ring_capacity(uint64_t capacity) {
    int power_of_two = capacity != 0 && (capacity & (capacity - 1)) == 0;
    return power_of_two && capacity >= SYN_RING_MIN_CAPACITY && capacity <= SYN_RING_MAX_CAPACITY;
}

int syn_ring_new(uint64_t capacity, syn_ring **out) {
    if (out == NULL || !syn_is_valid_ring_capacity(capacity)) {
        return SYN_EINVAL;
    }
    syn_ring *ring = aligned_alloc(SYN_CACHE_LINE, sizeof *ring);
    if (ring == NULL) {
        return SYN_ENOMEM;
    }
    memset(ring, 0, sizeof *ring);
    ring->data = aligned_alloc(SYN_CACHE_LINE, capacity);
    if (ring->data == NULL) {
        free(ring);
        return SYN_ENOMEM;
    }
    atomic_init(&ring->tail, 0);
    atomic_init(&ring->head, 0);
    ring->capacity = capacity;
    ring->mask = capacity - 1;
    *out = ring;
    return SYN_OK;
}

void syn_ring_free(syn_ring *ring) {
    if (ring != NULL) {
        free(ring->data);
        free(ring);
    }
}

uint64_t syn_ring_capacity(const syn_ring *ring) {
    return ring->capacity;
}

uint64_t syn_ring_max_record(const syn_ring *ring) {
    return ring->capacity - SYN_RING_RECORD_ALIGN;
}

uint64_t syn_ring_used_bytes(const syn_ring *ring) {
    /* Head first: tail only grows, so a tail read afterwards is never behind this head. */
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    return tail - head;
}

/* ---- producer ---------------------------------------------------------------------------- */

/* Copies n bytes to ring position pos, in two pieces when they cross the end of `data`. */
static void copy_in(syn_ring *ring, uint64_t pos, const void *src, size_t n) {
    if (n == 0) {
        return;
    }
    uint64_t offset = pos & ring->mask;
    size_t first = ring->capacity - offset < n ? (size_t)(ring->capacity - offset) : n;
    memcpy(ring->data + offset, src, first);
    memcpy(ring->data, (const uint8_t *)src + first, n - first);
}

/* Free bytes as the producer sees them; reloads head (P1) only when the cache says "no room". */
static int producer_has_room(syn_ring *ring, uint64_t tail, uint64_t need) {
    if (ring->capacity - (tail - ring->head_cache) >= need) {
        return 1;
    }
    ring->head_cache = atomic_load_explicit(&ring->head, memory_order_acquire); /* P1 */
    return ring->capacity - (tail - ring->head_cache) >= need;
}

int syn_ring_has_room(syn_ring *ring, size_t len) {
    if (len > syn_ring_max_record(ring)) {
        return 0;
    }
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    return producer_has_room(ring, tail, syn_ring_record_size(len));
}

/* Writes the length prefix and returns the record's start position, or an error code. */
static int begin_record(syn_ring *ring, size_t len, uint64_t *start) {
    if (len > syn_ring_max_record(ring)) {
        return SYN_ETOOBIG;
    }
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    if (!producer_has_room(ring, tail, syn_ring_record_size(len))) {
        return SYN_EFULL;
    }
    uint32_t prefix = (uint32_t)len;
    memcpy(ring->data + (tail & ring->mask), &prefix, sizeof prefix); /* never wraps */
    *start = tail;
    return SYN_OK;
}

static void publish(syn_ring *ring, uint64_t start, size_t len) {
    atomic_store_explicit(&ring->tail, start + syn_ring_record_size(len),
                          memory_order_release); /* P2 */
}

int syn_ring_push2(syn_ring *ring, const void *a, size_t alen, const void *b, size_t blen) {
    if (alen > SIZE_MAX - blen) {
        return SYN_ETOOBIG;
    }
    uint64_t start;
    int rc = begin_record(ring, alen + blen, &start);
    if (rc != SYN_OK) {
        return rc;
    }
    copy_in(ring, start + SYN_RING_LENGTH_PREFIX, a, alen);
    copy_in(ring, start + SYN_RING_LENGTH_PREFIX + alen, b, blen);
    publish(ring, start, alen + blen);
    return SYN_OK;
}

int syn_ring_push(syn_ring *ring, const void *data, size_t len) {
    return syn_ring_push2(ring, data, len, NULL, 0);
}

int64_t syn_ring_push_packed_prefixed(syn_ring *ring, const void *prefix, size_t prefix_len,
                                      const void *data, size_t data_len, const uint32_t *lengths,
                                      size_t count) {
    if (count != 0 && lengths == NULL) {
        return SYN_EINVAL;
    }
    /* Check the whole batch before writing anything. */
    uint64_t max = syn_ring_max_record(ring);
    if (prefix_len > max) {
        return SYN_ETOOBIG;
    }
    uint64_t max_body = max - prefix_len;
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (lengths[i] > max_body) {
            return SYN_ETOOBIG;
        }
        total += lengths[i];
    }
    if (total != data_len) {
        return SYN_EINVAL;
    }
    uint64_t start = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    uint64_t tail = start;
    size_t at = 0; /* offset of the next record's bytes in data */
    size_t pushed = 0;
    for (; pushed < count; pushed++) {
        size_t len = lengths[pushed];
        uint64_t size = syn_ring_record_size(prefix_len + len);
        if (!producer_has_room(ring, tail, size)) {
            break;
        }
        uint32_t length_prefix = (uint32_t)(prefix_len + len);
        memcpy(ring->data + (tail & ring->mask), &length_prefix, sizeof length_prefix);
        copy_in(ring, tail + SYN_RING_LENGTH_PREFIX, prefix, prefix_len);
        if (len != 0) { /* data may be NULL when every length is 0 */
            copy_in(ring, tail + SYN_RING_LENGTH_PREFIX + prefix_len, (const uint8_t *)data + at,
                    len);
            at += len;
        }
        tail += size;
    }
    if (tail != start) {
        atomic_store_explicit(&ring->tail, tail, memory_order_release); /* P2, once per batch */
    }
    return (int64_t)pushed;
}

int64_t syn_ring_push_packed(syn_ring *ring, const void *data, size_t data_len,
                             const uint32_t *lengths, size_t count) {
    return syn_ring_push_packed_prefixed(ring, NULL, 0, data, data_len, lengths, count);
}

/* Splits the n bytes at ring position pos into at most two (base, len) pieces. */
static void locate(const syn_ring *ring, uint64_t pos, size_t n, uint8_t **first, size_t *first_len,
                   size_t *second_len) {
    uint64_t offset = pos & ring->mask;
    *first = ring->data + offset;
    *first_len = ring->capacity - offset < n ? (size_t)(ring->capacity - offset) : n;
    *second_len = n - *first_len;
}

int syn_ring_reserve(syn_ring *ring, size_t len, syn_mut_span *spans) {
    uint64_t start;
    int rc = begin_record(ring, len, &start);
    if (rc != SYN_OK) {
        return rc;
    }
    uint8_t *first;
    locate(ring, start + SYN_RING_LENGTH_PREFIX, len, &first, &spans[0].len, &spans[1].len);
    spans[0].base = first;
    spans[1].base = ring->data;
    ring->reserved = len;
    return SYN_OK;
}

void syn_ring_commit(syn_ring *ring) {
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    publish(ring, tail, ring->reserved);
    ring->reserved = 0;
}

/* ---- consumer ---------------------------------------------------------------------------- */

syn_ring_cursor syn_ring_read_begin(syn_ring *ring) {
    /* The cached tail may be stale; syn_ring_read_next reloads it when it runs out. */
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    return (syn_ring_cursor){.pos = head, .end = ring->tail_cache};
}

int64_t syn_ring_read_next(syn_ring *ring, syn_ring_cursor *cursor, syn_span *spans) {
    if (cursor->pos == cursor->end) {
        /* Looks empty: the producer may have published more since the cursor was made. */
        ring->tail_cache = atomic_load_explicit(&ring->tail, memory_order_acquire); /* C1 */
        cursor->end = ring->tail_cache;
        if (cursor->pos == cursor->end) {
            return SYN_EEMPTY;
        }
    }
    uint32_t len;
    memcpy(&len, ring->data + (cursor->pos & ring->mask), sizeof len);
    uint8_t *first;
    locate(ring, cursor->pos + SYN_RING_LENGTH_PREFIX, len, &first, &spans[0].len, &spans[1].len);
    spans[0].base = first;
    spans[1].base = ring->data;
    cursor->pos += syn_ring_record_size(len);
    return len;
}

void syn_ring_release_to(syn_ring *ring, uint64_t pos) {
    atomic_store_explicit(&ring->head, pos, memory_order_release); /* C2 */
}

static void copy_spans(void *dst, const syn_span *spans) {
    if (spans[0].len != 0) {
        memcpy(dst, spans[0].base, spans[0].len);
    }
    if (spans[1].len != 0) {
        memcpy((uint8_t *)dst + spans[0].len, spans[1].base, spans[1].len);
    }
}

int64_t syn_ring_pop(syn_ring *ring, void *out, size_t cap) {
    syn_ring_cursor cursor = syn_ring_read_begin(ring);
    syn_span spans[2];
    int64_t len = syn_ring_read_next(ring, &cursor, spans);
    if (len < 0) {
        return len;
    }
    if ((uint64_t)len > cap) {
        return SYN_ETOOSMALL;
    }
    copy_spans(out, spans);
    syn_ring_release_to(ring, cursor.pos);
    return len;
}

int64_t syn_ring_peek_len(syn_ring *ring) {
    syn_ring_cursor cursor = syn_ring_read_begin(ring);
    syn_span spans[2];
    return syn_ring_read_next(ring, &cursor, spans);
}

int64_t syn_ring_pop_batch(syn_ring *ring, void *out, size_t cap, size_t max_records,
                           size_t *out_used) {
    syn_ring_cursor cursor = syn_ring_read_begin(ring);
    uint8_t *dst = out;
    size_t used = 0;
    int64_t count = 0;
    uint64_t consumed = cursor.pos;
    syn_span spans[2];
    while ((size_t)count < max_records) {
        int64_t len = syn_ring_read_next(ring, &cursor, spans);
        if (len < 0) {
            break;
        }
        if (cap - used < sizeof(uint32_t) || (uint64_t)len > cap - used - sizeof(uint32_t)) {
            if (count == 0) {
                return SYN_ETOOSMALL;
            }
            break;
        }
        uint32_t le = (uint32_t)len;
        uint8_t prefix[4] = {(uint8_t)le, (uint8_t)(le >> 8), (uint8_t)(le >> 16),
                             (uint8_t)(le >> 24)};
        memcpy(dst + used, prefix, sizeof prefix);
        copy_spans(dst + used + sizeof prefix, spans);
        used += sizeof prefix + (size_t)len;
        consumed = cursor.pos;
        count++;
    }
    if (count > 0) {
        syn_ring_release_to(ring, consumed);
    }
    if (out_used != NULL) {
        *out_used = used;
    }
    return count;
}

int64_t syn_ring_peek_batch(syn_ring *ring, uint64_t *out, size_t max_records) {
    syn_ring_cursor cursor = syn_ring_read_begin(ring);
    syn_span spans[2];
    size_t count = 0;
    while (count < max_records) {
        uint64_t start = (cursor.pos + SYN_RING_LENGTH_PREFIX) & ring->mask;
        int64_t len = syn_ring_read_next(ring, &cursor, spans);
        if (len < 0) {
            break;
        }
        out[2 * count] = start;
        out[2 * count + 1] = (uint64_t)len;
        count++;
    }
    return (int64_t)count;
}

int syn_ring_consume(syn_ring *ring, size_t count) {
    syn_ring_cursor cursor = syn_ring_read_begin(ring);
    syn_span spans[2];
    for (size_t i = 0; i < count; i++) {
        if (syn_ring_read_next(ring, &cursor, spans) < 0) {
            return SYN_EINVAL; /* fewer records than that: nothing consumed */
        }
    }
    syn_ring_release_to(ring, cursor.pos);
    return SYN_OK;
}

const void *syn_ring_storage(const syn_ring *ring) {
    return ring->data;
}

int64_t syn_ring_front(syn_ring *ring, syn_span *spans) {
    syn_ring_cursor cursor = syn_ring_read_begin(ring);
    return syn_ring_read_next(ring, &cursor, spans);
}

int syn_ring_discard(syn_ring *ring) {
    syn_ring_cursor cursor = syn_ring_read_begin(ring);
    syn_span spans[2];
    int64_t len = syn_ring_read_next(ring, &cursor, spans);
    if (len < 0) {
        return (int)len;
    }
    syn_ring_release_to(ring, cursor.pos);
    return SYN_OK;
}
