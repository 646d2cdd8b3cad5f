/* Two threads, millions of records of random sizes: every record arrives once, in order, with
 * its bytes intact. The producer rotates through push, push2 and push_packed batches; the consumer
 * rotates through pop, pop_batch, peek_batch/consume and front/discard, so every read and write
 * path crosses the ring's end many times. SYN_STRESS_RECORDS sets the count (the Makefile lowers it
 * under the sanitizers).
 */
#include <pthread.h>

#include "ring_impl.h"
#include "test_util.h"

#define MAX_RECORD 1500
#define MAX_BATCH  24

typedef struct {
    syn_ring *ring;
    uint64_t records;
} stress_args;

/* Record i: its length and its bytes both follow from i alone. */
static size_t record_len(uint64_t i) {
    uint64_t state = i * 0x9E3779B97F4A7C15ull + 1;
    uint64_t r = next_random(&state);
    return (r & 7) == 0 ? (size_t)(r >> 8) % MAX_RECORD : (size_t)(r >> 8) % 96;
}

static void fill_record(uint8_t *buf, uint64_t i, size_t len) {
    for (size_t k = 0; k < len; k++) {
        buf[k] = (uint8_t)(i * 31u + k * 7u);
    }
}

static int record_ok(const uint8_t *buf, size_t len, uint64_t i) {
    if (len != record_len(i)) {
        return 0;
    }
    for (size_t k = 0; k < len; k++) {
        if (buf[k] != (uint8_t)(i * 31u + k * 7u)) {
            return 0;
        }
    }
    return 1;
}

/* Pushes records first .. first + count - 1 as one push_packed batch after another until every
 * one is in (each call pushes the prefix that fits). */
static void push_batch(syn_ring *ring, uint64_t first, size_t count, uint8_t *data) {
    uint32_t lengths[MAX_BATCH];
    size_t total = 0;
    for (size_t k = 0; k < count; k++) {
        lengths[k] = (uint32_t)record_len(first + k);
        fill_record(data + total, first + k, lengths[k]);
        total += lengths[k];
    }
    size_t done = 0, at = 0;
    while (done < count) {
        int64_t pushed =
            syn_ring_push_packed(ring, data + at, total - at, lengths + done, count - done);
        CHECK(pushed >= 0);
        for (int64_t k = 0; k < pushed; k++) {
            at += lengths[done++];
        }
    }
}

/* Rotates through push, push2 and push_packed batches of 1 to MAX_BATCH records. */
static void *producer(void *arg) {
    stress_args *a = arg;
    static uint8_t buf[MAX_BATCH * MAX_RECORD];
    uint64_t random = 77;
    uint64_t round = 0;
    for (uint64_t i = 0; i < a->records; round++) {
        if (round % 3 == 2) {
            size_t count = 1 + (size_t)(next_random(&random) % MAX_BATCH);
            if (count > a->records - i) {
                count = (size_t)(a->records - i);
            }
            push_batch(a->ring, i, count, buf);
            i += count;
            continue;
        }
        size_t len = record_len(i);
        fill_record(buf, i, len);
        size_t split = len / 3;
        for (;;) {
            int rc = (round & 1) ? syn_ring_push2(a->ring, buf, split, buf + split, len - split)
                                 : syn_ring_push(a->ring, buf, len);
            if (rc == SYN_OK) {
                break;
            }
            CHECK_EQ(rc, SYN_EFULL);
        }
        i++;
    }
    return NULL;
}

static void consume(syn_ring *ring, uint64_t records) {
    static uint8_t batch[64 * 1024];
    uint8_t one[MAX_RECORD];
    uint64_t next = 0;
    while (next < records) {
        switch (next % 4) {
        case 0: {
            int64_t len = syn_ring_pop(ring, one, sizeof one);
            if (len != SYN_EEMPTY) {
                CHECK(len >= 0 && record_ok(one, (size_t)len, next));
                next++;
            }
            break;
        }
        case 1: {
            size_t used = 0;
            int64_t count = syn_ring_pop_batch(ring, batch, sizeof batch, 64, &used);
            CHECK(count >= 0);
            size_t at = 0;
            for (int64_t k = 0; k < count; k++) {
                size_t len = get_le32(batch + at);
                CHECK(record_ok(batch + at + 4, len, next));
                at += 4 + len;
                next++;
            }
            CHECK_EQ(at, used);
            break;
        }
        case 2: {
            uint64_t pairs[2 * 16];
            int64_t count = syn_ring_peek_batch(ring, pairs, 16);
            const uint8_t *storage = syn_ring_storage(ring);
            uint64_t capacity = syn_ring_capacity(ring);
            for (int64_t k = 0; k < count; k++) {
                uint64_t start = pairs[2 * k], len = pairs[2 * k + 1];
                uint64_t first = start + len <= capacity ? len : capacity - start;
                memcpy(one, storage + start, first);
                memcpy(one + first, storage, len - first);
                CHECK(record_ok(one, len, next + (uint64_t)k));
            }
            CHECK_EQ(syn_ring_consume(ring, (size_t)count), SYN_OK);
            next += (uint64_t)count;
            break;
        }
        default: {
            syn_span spans[2];
            int64_t len = syn_ring_front(ring, spans);
            if (len == SYN_EEMPTY) {
                break;
            }
            memcpy(one, spans[0].base, spans[0].len);
            memcpy(one + spans[0].len, spans[1].base, spans[1].len);
            CHECK(record_ok(one, (size_t)len, next));
            CHECK_EQ(syn_ring_discard(ring), SYN_OK);
            next++;
        }
        }
    }
    CHECK_EQ(syn_ring_pop(ring, one, sizeof one), SYN_EEMPTY);
}

static void run_stress(uint64_t capacity, uint64_t records) {
    syn_ring *ring = NULL;
    CHECK_EQ(syn_ring_new(capacity, &ring), SYN_OK);
    stress_args args = {ring, records};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, producer, &args) == 0);
    consume(ring, records);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_EQ(syn_ring_used_bytes(ring), 0);
    syn_ring_free(ring);
}

int main(void) {
    uint64_t records = env_u64("SYN_STRESS_RECORDS", 3000000);
    fprintf(stderr, "test_ring_stress (%llu records per ring size)\n", (unsigned long long)records);
    fprintf(stderr, "  4 KiB ring (often full)\n");
    run_stress(4096, records / 2);
    fprintf(stderr, "  256 KiB ring\n");
    run_stress(256 * 1024, records);
    return 0;
}
