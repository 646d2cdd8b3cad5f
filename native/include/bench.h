/* Pure-C measurements exported so that the Python benchmarks can run them in the same process.
 * Declaration-only (read into ffi.cdef). */
#ifndef SYN_BENCH_H
#define SYN_BENCH_H

#include <stdint.h>

/* A producer thread pushes `records` records of `record_size` bytes through a ring of `capacity`
 * bytes while the calling thread pops and checks them. Returns the elapsed nanoseconds, or a
 * negative SYN_E* code (SYN_EINVAL also when a record arrived damaged or out of order). */
int64_t syn_bench_ring(uint64_t capacity, uint32_t record_size, uint64_t records);

/* A producer thread broadcasts `frames` frames of `payload` bytes through a sender pump, over
 * loopback TCP, to a receiver pump that the calling thread drains; the producer keeps at most
 * 192 frames in flight so that no frame is dropped. Returns the elapsed nanoseconds, or a
 * negative SYN_E* code (SYN_EINVAL also when a frame went missing). */
int64_t syn_bench_pumps(uint32_t payload, uint64_t frames);

#endif
