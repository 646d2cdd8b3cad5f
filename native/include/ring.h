/* The lock-free single-producer/single-consumer record ring: public declarations.
 *
 * Declaration-only: native/_cffi_build.py reads this file into ffi.cdef, so it holds nothing but
 * opaque typedefs, plain structs, prototypes and `#define NAME <integer>` constants. The struct
 * and the memory-ordering story live in src/ring_impl.h.
 *
 * A record is a byte string of 0..syn_ring_max_record() bytes. One thread may push, one other
 * thread may pop; every function below states which side it belongs to. Entry points that only
 * the C tests use are declared in src/ring_test.h.
 */
#ifndef SYN_RING_H
#define SYN_RING_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* Capacity bounds (bytes, powers of two). Each record costs 4 bytes of length prefix plus
 * padding to a multiple of 8, so the longest record is capacity - 8 bytes. */
#define SYN_RING_MIN_CAPACITY  64
#define SYN_RING_MAX_CAPACITY  1073741824
#define SYN_RING_RECORD_ALIGN  8
#define SYN_RING_LENGTH_PREFIX 4

typedef struct syn_ring syn_ring;

/* A read-only view of part of a record; a record that wraps past the end is two spans. */
typedef struct {
    const void *base;
    size_t len;
} syn_span;

/* Lifecycle (neither side may be using the ring during free). */
int syn_ring_new(uint64_t capacity, syn_ring **out);
void syn_ring_free(syn_ring *ring);

/* Either side, any time. used_bytes counts prefixes and padding too. */
uint64_t syn_ring_capacity(const syn_ring *ring);
uint64_t syn_ring_max_record(const syn_ring *ring);
uint64_t syn_ring_used_bytes(const syn_ring *ring);

/* Producer. Return SYN_OK, SYN_EFULL or SYN_ETOOBIG. push2 writes one record made of two parts. */
int syn_ring_push(syn_ring *ring, const void *data, size_t len);
int syn_ring_push2(syn_ring *ring, const void *a, size_t alen, const void *b, size_t blen);

/* Producer, batched. Pushes `count` records laid end to end in `data` (record i is lengths[i]
 * bytes and starts where record i-1 ends; data_len must equal the sum of the lengths) and
 * publishes them with one release store, so the consumer sees none of them or all that went in.
 * All or prefix: it stops at the first record that does not fit now and returns how many it
 * pushed (0..count; the records after that are left to the caller). Before pushing anything it
 * returns SYN_ETOOBIG if any record is longer than syn_ring_max_record, or SYN_EINVAL if the
 * lengths do not add up to data_len. */
int64_t syn_ring_push_packed(syn_ring *ring, const void *data, size_t data_len,
                             const uint32_t *lengths, size_t count);

/* Consumer. peek_len returns the length of the oldest record without consuming it (or
 * SYN_EEMPTY). */
int64_t syn_ring_peek_len(syn_ring *ring);

/* Consumer. Copies up to max_records whole records into out as [u32 little-endian length][bytes]
 * back to back (no padding) and returns how many it copied; *out_used gets the bytes written.
 * Returns 0 when the ring is empty and SYN_ETOOSMALL when not even the oldest record fits. */
int64_t syn_ring_pop_batch(syn_ring *ring, void *out, size_t cap, size_t max_records,
                           size_t *out_used);

/* Consumer, zero-copy batch. Describes up to max_records of the oldest records without consuming
 * them: out[2i] is the offset of record i's first byte in the ring's storage (see
 * syn_ring_storage; the record wraps to offset 0 when offset + length > capacity) and out[2i+1]
 * its length. Returns how many it described. The bytes stay valid until syn_ring_consume(ring, n)
 * releases the first n of them. */
int64_t syn_ring_peek_batch(syn_ring *ring, uint64_t *out, size_t max_records);
int syn_ring_consume(syn_ring *ring, size_t count);
/* The ring's storage (capacity bytes), for reading records that peek_batch described. */
const void *syn_ring_storage(const syn_ring *ring);

#endif
