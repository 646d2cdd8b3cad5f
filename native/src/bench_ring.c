/* syn_bench_ring: ring throughput with no Python in the loop (see include/bench.h). */
#include "bench.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring_test.h"
#include "thread.h"

typedef struct {
    syn_ring *ring;
    uint32_t record_size;
    uint64_t records;
} producer_args;

static void *produce(void *arg) {
    producer_args *p = arg;
    uint8_t *record = calloc(1, p->record_size < 8 ? 8 : p->record_size);
    if (record == NULL) {
        return NULL;
    }
    for (uint64_t i = 0; i < p->records; i++) {
        memcpy(record, &i, p->record_size < 8 ? p->record_size : 8); /* a sequence number */
        while (syn_ring_push(p->ring, record, p->record_size) == SYN_EFULL) {
            sched_yield(); /* on a shared core, let the consumer run */
        }
    }
    free(record);
    return NULL;
}

static int64_t elapsed_ns(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - start->tv_sec) * 1000000000 + (now.tv_nsec - start->tv_nsec);
}

int64_t syn_bench_ring(uint64_t capacity, uint32_t record_size, uint64_t records) {
    syn_ring *ring;
    int rc = syn_ring_new(capacity, &ring);
    if (rc != SYN_OK) {
        return rc;
    }
    uint8_t *record = malloc(record_size < 8 ? 8 : record_size);
    if (record == NULL || record_size > syn_ring_max_record(ring)) {
        free(record);
        syn_ring_free(ring);
        return record == NULL ? SYN_ENOMEM : SYN_ETOOBIG;
    }
    producer_args args = {ring, record_size, records};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pthread_t producer;
    if (syn_start_thread(&producer, "syn-bench", produce, &args) != 0) {
        free(record);
        syn_ring_free(ring);
        return SYN_ESYS;
    }
    int damaged = 0;
    size_t seq_len = record_size < 8 ? record_size : 8;
    for (uint64_t i = 0; i < records;) {
        int64_t len = syn_ring_pop(ring, record, record_size);
        if (len == SYN_EEMPTY) {
            sched_yield();
            continue;
        }
        uint64_t seq = 0;
        memcpy(&seq, record, seq_len);
        uint64_t expected = seq_len == 8 ? i : i & ((UINT64_C(1) << (8 * seq_len)) - 1);
        damaged |= len != (int64_t)record_size || seq != expected;
        i++;
    }
    pthread_join(producer, NULL);
    int64_t ns = elapsed_ns(&start);
    free(record);
    syn_ring_free(ring);
    return damaged ? SYN_EINVAL : ns;
}
