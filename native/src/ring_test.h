/* Ring entry points that only the C tests use (the pumps and Python use those of ring.h).
 * Kept out of ring.h so that ffi.cdef, and so Python, never sees them. */
#ifndef SYN_RING_TEST_H
#define SYN_RING_TEST_H

#include "ring.h"

/* Consumer. Copies the oldest record out and returns its length (or SYN_EEMPTY or
 * SYN_ETOOSMALL). */
int64_t syn_ring_pop(syn_ring *ring, void *out, size_t cap);

/* Consumer, zero-copy. front fills spans[0..1] with the oldest record's bytes (spans[1] is empty
 * unless the record wraps) and returns its length or SYN_EEMPTY; the bytes stay valid until
 * discard, which consumes that record. */
int64_t syn_ring_front(syn_ring *ring, syn_span *spans);
int syn_ring_discard(syn_ring *ring);

#endif
