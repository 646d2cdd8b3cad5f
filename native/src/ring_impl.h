/* The record ring's layout, its memory-ordering contract, and the internal API the pumps use.
 *
 * Layout. `data` holds `capacity` bytes (a power of two). `tail` and `head` are free-running
 * 64-bit byte counters (they never wrap in practice); a counter's position in `data` is
 * `counter & mask`, and `tail - head` is the number of bytes in use. Each record is a u32 length
 * (native byte order) followed by its bytes, padded so the next record starts at a multiple of 8.
 * Records start 8-aligned and the capacity is a multiple of 8, so a length prefix never wraps;
 * a record's body may, and is then written and read as two copies (as Linux's kfifo does).
 *
 * Memory ordering. The producer owns `tail`, the consumer owns `head`; each reads its own counter
 * relaxed (nobody else writes it) and the other side's with acquire. The four edges:
 *   (P1) producer: load head, acquire  - pairs with C2, so the consumer has finished reading
 *        the bytes before the producer overwrites them.
 *   (P2) producer: store tail, release - publishes the record bytes written before it (one
 *        store per record, or one per batch in push_packed, which publishes a batch at once).
 *   (C1) consumer: load tail, acquire  - pairs with P2, so the record bytes are visible.
 *   (C2) consumer: store head, release - hands the bytes it has finished reading back to the
 *        producer (pairs with P1).
 * Each side caches the other's counter (`head_cache`, `tail_cache`) and reloads it only when the
 * cached value says "full" / "empty", so in steady state the two cache lines move between cores
 * only when one side runs out of room or records. The counters and their caches sit on separate
 * 64-byte lines so that producer and consumer never write to the same line.
 */
#ifndef SYN_RING_IMPL_H
#define SYN_RING_IMPL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ring_test.h" /* ring.h and the test-only entry points */

#define SYN_CACHE_LINE 64

struct syn_ring {
    /* Producer's line: written by the producer only. */
    alignas(SYN_CACHE_LINE) _Atomic uint64_t tail;
    uint64_t head_cache;
    uint64_t reserved; /* size of a record reserved but not yet committed (0 when none) */

    /* Consumer's line: written by the consumer only. */
    alignas(SYN_CACHE_LINE) _Atomic uint64_t head;
    uint64_t tail_cache;

    /* Read-only after syn_ring_new: shared freely. */
    alignas(SYN_CACHE_LINE) uint64_t capacity;
    uint64_t mask;
    uint8_t *data;
};

_Static_assert(offsetof(struct syn_ring, head) - offsetof(struct syn_ring, tail) >= SYN_CACHE_LINE,
               "producer and consumer counters must not share a cache line");
_Static_assert(offsetof(struct syn_ring, capacity) - offsetof(struct syn_ring, head) >=
                   SYN_CACHE_LINE,
               "the consumer's line must not share a cache line with the read-only fields");
_Static_assert(sizeof(struct syn_ring) % SYN_CACHE_LINE == 0, "the ring spans whole cache lines");

/* Bytes a record of `len` bytes occupies in the ring: prefix plus body, rounded up to 8. */
static inline uint64_t syn_ring_record_size(uint64_t len) {
    return (SYN_RING_LENGTH_PREFIX + len + SYN_RING_RECORD_ALIGN - 1) &
           ~(uint64_t)(SYN_RING_RECORD_ALIGN - 1);
}

/* Whether syn_ring_new accepts this capacity. */
int syn_is_valid_ring_capacity(uint64_t capacity);

/* Consumer-side iteration without consuming: a cursor walks the records from the consumer's
 * position on (reloading the producer's counter when it runs out), and
 * syn_ring_release_to(ring, cursor.pos) then consumes everything before that position. */
typedef struct {
    uint64_t pos;
    uint64_t end;
} syn_ring_cursor;

syn_ring_cursor syn_ring_read_begin(syn_ring *ring);
/* Fills spans with the record at the cursor and steps past it; returns its length or
 * SYN_EEMPTY. The cursor is a local copy, so stepping consumes nothing. */
int64_t syn_ring_read_next(syn_ring *ring, syn_ring_cursor *cursor, syn_span *spans);
void syn_ring_release_to(syn_ring *ring, uint64_t pos);

/* Producer-side zero-copy write: reserve room for a `len`-byte record and get its body as two
 * spans to fill (for instance with readv), then commit to publish it. Returns SYN_OK, SYN_EFULL
 * or SYN_ETOOBIG. Nothing else may be pushed between reserve and commit. */
typedef struct {
    void *base;
    size_t len;
} syn_mut_span;

int syn_ring_reserve(syn_ring *ring, size_t len, syn_mut_span *spans);
void syn_ring_commit(syn_ring *ring);

/* Producer, batched: as syn_ring_push_packed, with the `prefix_len` bytes at `prefix` written at
 * the start of every record (record i is prefix + lengths[i] bytes; the limit applies to that
 * sum). The pumps use it to stamp each frame with its target. */
int64_t syn_ring_push_packed_prefixed(syn_ring *ring, const void *prefix, size_t prefix_len,
                                      const void *data, size_t data_len, const uint32_t *lengths,
                                      size_t count);

/* Producer: whether a record of `len` bytes would fit now (refreshes the cached head). */
int syn_ring_has_room(syn_ring *ring, size_t len);

#endif
