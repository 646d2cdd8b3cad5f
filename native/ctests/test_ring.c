/* Single-threaded semantics of the record ring: limits, full/empty, wrap-around, batch pops,
 * zero-copy reads and writes, batched pushes. */
#include "ring_impl.h"
#include "test_util.h"

static syn_ring *make_ring(uint64_t capacity) {
    syn_ring *ring = NULL;
    CHECK_EQ(syn_ring_new(capacity, &ring), SYN_OK);
    return ring;
}

static void fill(uint8_t *buf, size_t len, unsigned seed) {
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seed * 7u + i * 13u);
    }
}

static void test_capacity_must_be_a_power_of_two_in_range(void) {
    syn_ring *ring = NULL;
    CHECK_EQ(syn_ring_new(100, &ring), SYN_EINVAL);
    CHECK_EQ(syn_ring_new(0, &ring), SYN_EINVAL);
    CHECK_EQ(syn_ring_new(32, &ring), SYN_EINVAL);
    CHECK_EQ(syn_ring_new((uint64_t)SYN_RING_MAX_CAPACITY * 2, &ring), SYN_EINVAL);
    CHECK(ring == NULL);
    ring = make_ring(64);
    CHECK_EQ(syn_ring_capacity(ring), 64);
    CHECK_EQ(syn_ring_max_record(ring), 56);
    syn_ring_free(ring);
}

static void test_push_pop_round_trip_and_empty(void) {
    syn_ring *ring = make_ring(256);
    uint8_t out[64];
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), SYN_EEMPTY);
    CHECK_EQ(syn_ring_peek_len(ring), SYN_EEMPTY);
    CHECK_EQ(syn_ring_push(ring, "hello", 5), SYN_OK);
    CHECK_EQ(syn_ring_used_bytes(ring), 16); /* 4 + 5, padded to 16 */
    CHECK_EQ(syn_ring_push(ring, "", 0), SYN_OK);
    CHECK_EQ(syn_ring_used_bytes(ring), 24); /* an empty record still has its prefix */
    CHECK_EQ(syn_ring_peek_len(ring), 5);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 5);
    CHECK(memcmp(out, "hello", 5) == 0);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 0);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), SYN_EEMPTY);
    CHECK_EQ(syn_ring_used_bytes(ring), 0);
    syn_ring_free(ring);
}

static void test_full_ring_refuses_without_writing(void) {
    syn_ring *ring = make_ring(64);
    uint8_t record[56], out[56];
    fill(record, sizeof record, 1);
    CHECK_EQ(syn_ring_push(ring, record, 56), SYN_OK); /* 4 + 56 = 60 -> 64: the whole ring */
    CHECK_EQ(syn_ring_push(ring, "", 0), SYN_EFULL);
    CHECK_EQ(syn_ring_used_bytes(ring), 64);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 56);
    CHECK(memcmp(out, record, 56) == 0);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), SYN_EEMPTY); /* the refused push left nothing */
    /* Room comes back once the consumer pops. */
    CHECK_EQ(syn_ring_push(ring, record, 20), SYN_OK);
    CHECK_EQ(syn_ring_push(ring, record, 20), SYN_OK);
    CHECK_EQ(syn_ring_push(ring, record, 20), SYN_EFULL); /* 2 x 24 used, 24 + 8 needed */
    syn_ring_free(ring);
}

static void test_oversize_records_are_refused(void) {
    syn_ring *ring = make_ring(64);
    uint8_t record[64] = {0};
    CHECK_EQ(syn_ring_push(ring, record, 57), SYN_ETOOBIG);
    CHECK_EQ(syn_ring_push2(ring, record, 30, record, 27), SYN_ETOOBIG);
    CHECK_EQ(syn_ring_push2(ring, record, SIZE_MAX, record, 2), SYN_ETOOBIG); /* no overflow */
    CHECK_EQ(syn_ring_used_bytes(ring), 0);
    syn_ring_free(ring);
}

static void test_small_buffer_leaves_the_record(void) {
    syn_ring *ring = make_ring(128);
    CHECK_EQ(syn_ring_push(ring, "0123456789", 10), SYN_OK);
    uint8_t out[16];
    CHECK_EQ(syn_ring_pop(ring, out, 9), SYN_ETOOSMALL);
    CHECK_EQ(syn_ring_peek_len(ring), 10);
    CHECK_EQ(syn_ring_pop(ring, out, 10), 10);
    CHECK(memcmp(out, "0123456789", 10) == 0);
    syn_ring_free(ring);
}

/* Every record length from 0 to 200 at every alignment of the 256-byte ring: the records that
 * straddle the end must come back intact. */
static void test_wrap_around_many_sizes(void) {
    syn_ring *ring = make_ring(256);
    uint8_t record[256], out[256];
    int wrapped = 0;
    unsigned seed = 0;
    for (size_t len = 0; len <= 200; len++) {
        for (int round = 0; round < 40; round++, seed++) {
            fill(record, len, seed);
            CHECK_EQ(syn_ring_push(ring, record, len), SYN_OK);
            syn_span spans[2];
            CHECK_EQ(syn_ring_front(ring, spans), len);
            CHECK_EQ(spans[0].len + spans[1].len, len);
            wrapped += spans[1].len != 0;
            CHECK_EQ(syn_ring_pop(ring, out, sizeof out), len);
            CHECK(memcmp(out, record, len) == 0);
        }
    }
    CHECK(wrapped > 1000);
    syn_ring_free(ring);
}

static void test_push2_joins_parts_across_the_end(void) {
    syn_ring *ring = make_ring(64);
    uint8_t out[64];
    CHECK_EQ(syn_ring_push(ring, "0123456789abcdefghij", 20), SYN_OK); /* 24 bytes */
    CHECK_EQ(syn_ring_push(ring, "0123456789abcdefghij", 20), SYN_OK); /* 48 */
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 20);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 20);
    /* Starts at offset 48; body 52..73 wraps at 64. */
    CHECK_EQ(syn_ring_push2(ring, "HEAD", 4, "body-of-the-record", 18), SYN_OK);
    syn_span spans[2];
    CHECK_EQ(syn_ring_front(ring, spans), 22);
    CHECK_EQ(spans[0].len, 12);
    CHECK_EQ(spans[1].len, 10);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 22);
    CHECK(memcmp(out, "HEADbody-of-the-record", 22) == 0);
    syn_ring_free(ring);
}

static void test_batch_pop_layout_and_limits(void) {
    syn_ring *ring = make_ring(1024);
    const char *words[] = {"a", "bb", "", "dddd", "eeeee"};
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(syn_ring_push(ring, words[i], strlen(words[i])), SYN_OK);
    }
    uint8_t out[64];
    size_t used = 99;
    /* max_records limits the batch. */
    CHECK_EQ(syn_ring_pop_batch(ring, out, sizeof out, 2, &used), 2);
    CHECK_EQ(used, 4 + 1 + 4 + 2);
    CHECK_EQ(get_le32(out), 1);
    CHECK(out[4] == 'a');
    CHECK_EQ(get_le32(out + 5), 2);
    CHECK(memcmp(out + 9, "bb", 2) == 0);
    /* The buffer limits the batch: room for "" (4) and "dddd" (8) but not "eeeee" (9). */
    CHECK_EQ(syn_ring_pop_batch(ring, out, 20, 100, &used), 2);
    CHECK_EQ(used, 12);
    CHECK_EQ(get_le32(out), 0);
    CHECK_EQ(get_le32(out + 4), 4);
    /* Not even the first record fits: nothing consumed. */
    CHECK_EQ(syn_ring_pop_batch(ring, out, 8, 100, &used), SYN_ETOOSMALL);
    CHECK_EQ(syn_ring_peek_len(ring), 5);
    CHECK_EQ(syn_ring_pop_batch(ring, out, sizeof out, 100, &used), 1);
    CHECK_EQ(used, 9);
    CHECK_EQ(syn_ring_pop_batch(ring, out, sizeof out, 100, &used), 0);
    CHECK_EQ(used, 0);
    syn_ring_free(ring);
}

static void test_peek_batch_describes_records_in_place(void) {
    syn_ring *ring = make_ring(64);
    uint64_t pairs[8];
    CHECK_EQ(syn_ring_peek_batch(ring, pairs, 4), 0);
    CHECK_EQ(syn_ring_push(ring, "0123456789abcdefghij0123456789abcdefghij", 40), SYN_OK);
    CHECK_EQ(syn_ring_consume(ring, 1), SYN_OK); /* the next record starts at offset 48 */
    CHECK_EQ(syn_ring_push(ring, "wrapping-record", 15), SYN_OK);
    CHECK_EQ(syn_ring_push(ring, "xy", 2), SYN_OK);
    CHECK_EQ(syn_ring_peek_batch(ring, pairs, 4), 2);
    const uint8_t *storage = syn_ring_storage(ring);
    CHECK_EQ(pairs[0], 52);
    CHECK_EQ(pairs[1], 15);
    CHECK(memcmp(storage + 52, "wrapping-rec", 12) == 0); /* 12 bytes to the end, then 0.. */
    CHECK(memcmp(storage, "ord", 3) == 0);
    CHECK_EQ(pairs[2], 12); /* the next record starts at 48 + 24 = 72, offset 8 */
    CHECK_EQ(pairs[3], 2);
    CHECK(memcmp(storage + 12, "xy", 2) == 0);
    CHECK_EQ(syn_ring_peek_batch(ring, pairs, 1), 1); /* max_records limits it */
    CHECK_EQ(syn_ring_consume(ring, 3), SYN_EINVAL);  /* more than there are: nothing consumed */
    CHECK_EQ(syn_ring_consume(ring, 1), SYN_OK);
    CHECK_EQ(syn_ring_peek_len(ring), 2);
    CHECK_EQ(syn_ring_consume(ring, 1), SYN_OK);
    CHECK_EQ(syn_ring_used_bytes(ring), 0);
    syn_ring_free(ring);
}

static void test_front_and_discard(void) {
    syn_ring *ring = make_ring(64);
    syn_span spans[2];
    CHECK_EQ(syn_ring_front(ring, spans), SYN_EEMPTY);
    CHECK_EQ(syn_ring_discard(ring), SYN_EEMPTY);
    CHECK_EQ(syn_ring_push(ring, "xyz", 3), SYN_OK);
    CHECK_EQ(syn_ring_front(ring, spans), 3);
    CHECK(memcmp(spans[0].base, "xyz", 3) == 0);
    CHECK_EQ(syn_ring_front(ring, spans), 3); /* front does not consume */
    CHECK_EQ(syn_ring_discard(ring), SYN_OK);
    CHECK_EQ(syn_ring_front(ring, spans), SYN_EEMPTY);
    syn_ring_free(ring);
}

static void test_reserve_and_commit(void) {
    syn_ring *ring = make_ring(64);
    uint8_t out[64];
    CHECK_EQ(syn_ring_push(ring, "0123456789abcdefghij0123456789abcdefghij", 40), SYN_OK);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 40);
    syn_mut_span spans[2];
    CHECK_EQ(syn_ring_reserve(ring, 30, spans), SYN_OK); /* starts at 48: wraps */
    CHECK_EQ(spans[0].len + spans[1].len, 30);
    CHECK(spans[1].len > 0);
    CHECK_EQ(syn_ring_peek_len(ring), SYN_EEMPTY); /* invisible until committed */
    memset(spans[0].base, 'r', spans[0].len);
    memset(spans[1].base, 's', spans[1].len);
    syn_ring_commit(ring);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 30);
    CHECK(out[0] == 'r' && out[29] == 's');
    CHECK_EQ(syn_ring_reserve(ring, 57, spans), SYN_ETOOBIG);
    syn_ring_free(ring);
}

/* ---- batched push ------------------------------------------------------------------------ */

static void test_push_packed_pushes_a_prefix_when_nearly_full(void) {
    syn_ring *ring = make_ring(64);
    uint8_t out[64];
    CHECK_EQ(syn_ring_push(ring, "0123456789abcdefghij", 20), SYN_OK); /* 24 used, 40 free */
    /* 10 -> 16, 12 -> 16 bytes fit; 20 -> 24 does not, and nothing after it is tried even
     * though the 1-byte record (8 bytes) would fit. */
    const char *data = "aaaaaaaaaa"
                       "bbbbbbbbbbbb"
                       "cccccccccccccccccccc"
                       "d";
    uint32_t lengths[] = {10, 12, 20, 1};
    CHECK_EQ(syn_ring_push_packed(ring, data, 43, lengths, 4), 2);
    CHECK_EQ(syn_ring_used_bytes(ring), 56);
    CHECK_EQ(syn_ring_push_packed(ring, data + 22, 21, lengths + 2, 2), 0); /* still no room */
    CHECK_EQ(syn_ring_used_bytes(ring), 56);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 20);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 10);
    CHECK(memcmp(out, "aaaaaaaaaa", 10) == 0);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 12);
    CHECK(memcmp(out, "bbbbbbbbbbbb", 12) == 0);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), SYN_EEMPTY);
    /* The caller pushes the rest later. */
    CHECK_EQ(syn_ring_push_packed(ring, data + 22, 21, lengths + 2, 2), 2);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 20);
    CHECK(memcmp(out, "cccccccccccccccccccc", 20) == 0);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 1);
    CHECK(out[0] == 'd');
    syn_ring_free(ring);
}

static void test_push_packed_wraps_inside_a_batch(void) {
    syn_ring *ring = make_ring(64);
    uint8_t out[64];
    CHECK_EQ(syn_ring_push(ring, "0123456789abcdefghij0123456789abcdefghij", 40), SYN_OK);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 40); /* the next record starts at offset 48 */
    /* "head" fills 48..55; the second record's prefix is at 56 and its body 60..74 wraps at 64;
     * "xy" lands at offset 16. */
    uint32_t lengths[] = {4, 15, 2};
    CHECK_EQ(syn_ring_push_packed(ring, "headwrapping-recordxy", 21, lengths, 3), 3);
    CHECK_EQ(syn_ring_used_bytes(ring), 8 + 24 + 8);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 4);
    CHECK(memcmp(out, "head", 4) == 0);
    syn_span spans[2];
    CHECK_EQ(syn_ring_front(ring, spans), 15);
    CHECK_EQ(spans[0].len, 4);
    CHECK_EQ(spans[1].len, 11);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 15);
    CHECK(memcmp(out, "wrapping-record", 15) == 0);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), 2);
    CHECK(memcmp(out, "xy", 2) == 0);
    CHECK_EQ(syn_ring_pop(ring, out, sizeof out), SYN_EEMPTY);
    syn_ring_free(ring);
}

/* Random batches against a byte-counting model on a 256-byte ring: each call pushes exactly the
 * prefix that fits, and every record comes back intact, many of them across the end. */
static void test_push_packed_matches_a_model(void) {
    enum { MAX_BATCH = 12 };
    syn_ring *ring = make_ring(256);
    uint8_t data[MAX_BATCH * 100], out[256];
    uint32_t lengths[MAX_BATCH];
    uint64_t random = 99;
    uint64_t model_used = 0;
    unsigned seed = 0, next_seed = 0; /* records carry seeds seed, seed + 1, ... in push order */
    int wrapped = 0;
    for (int round = 0; round < 20000; round++) {
        size_t count = next_random(&random) % (MAX_BATCH + 1);
        size_t total = 0;
        for (size_t i = 0; i < count; i++) {
            lengths[i] = (uint32_t)(next_random(&random) % 100);
            fill(data + total, lengths[i], seed + (unsigned)i);
            total += lengths[i];
        }
        size_t expected = 0;
        uint64_t used = model_used;
        while (expected < count && used + syn_ring_record_size(lengths[expected]) <= 256) {
            used += syn_ring_record_size(lengths[expected++]);
        }
        CHECK_EQ(syn_ring_push_packed(ring, data, total, lengths, count), expected);
        CHECK_EQ(syn_ring_used_bytes(ring), used);
        model_used = used;
        seed += (unsigned)expected;
        /* Pop a few records (sometimes all) and check them. */
        size_t pops = next_random(&random) % 6;
        for (size_t k = 0; k < pops; k++) {
            syn_span spans[2];
            int64_t len = syn_ring_front(ring, spans);
            if (len == SYN_EEMPTY) {
                break;
            }
            wrapped += spans[1].len != 0;
            CHECK_EQ(syn_ring_pop(ring, out, sizeof out), len);
            uint8_t want[100];
            fill(want, (size_t)len, next_seed++);
            CHECK(memcmp(out, want, (size_t)len) == 0);
            model_used -= syn_ring_record_size((uint64_t)len);
        }
    }
    CHECK(wrapped > 100);
    syn_ring_free(ring);
}

static void test_push_packed_checks_the_batch_before_pushing(void) {
    syn_ring *ring = make_ring(64);
    uint8_t data[128] = {0};
    uint32_t lengths[] = {4, 57, 1};
    CHECK_EQ(syn_ring_push_packed(ring, data, 62, lengths, 3), SYN_ETOOBIG);
    CHECK_EQ(syn_ring_used_bytes(ring), 0); /* not even the first record */
    uint32_t fine[] = {4, 56, 1};
    CHECK_EQ(syn_ring_push_packed(ring, data, 60, fine, 3), SYN_EINVAL); /* 61 bytes described */
    CHECK_EQ(syn_ring_push_packed(ring, data, 62, fine, 3), SYN_EINVAL);
    CHECK_EQ(syn_ring_push_packed(ring, data, 1, NULL, 1), SYN_EINVAL);
    CHECK_EQ(syn_ring_used_bytes(ring), 0);
    /* An empty batch, and empty records with no data at all. */
    CHECK_EQ(syn_ring_push_packed(ring, NULL, 0, NULL, 0), 0);
    uint32_t empties[] = {0, 0, 0};
    CHECK_EQ(syn_ring_push_packed(ring, NULL, 0, empties, 3), 3);
    CHECK_EQ(syn_ring_used_bytes(ring), 24);
    CHECK_EQ(syn_ring_pop(ring, data, sizeof data), 0);
    /* The longest record is accepted in a batch like anywhere else (here it does not fit yet). */
    CHECK_EQ(syn_ring_push_packed(ring, data, 56, fine + 1, 1), 0);
    CHECK_EQ(syn_ring_consume(ring, 2), SYN_OK);
    CHECK_EQ(syn_ring_push_packed(ring, data, 56, fine + 1, 1), 1);
    CHECK_EQ(syn_ring_used_bytes(ring), 64);
    syn_ring_free(ring);
}

int main(void) {
    fprintf(stderr, "test_ring\n");
    RUN(test_capacity_must_be_a_power_of_two_in_range);
    RUN(test_push_pop_round_trip_and_empty);
    RUN(test_full_ring_refuses_without_writing);
    RUN(test_oversize_records_are_refused);
    RUN(test_small_buffer_leaves_the_record);
    RUN(test_wrap_around_many_sizes);
    RUN(test_push2_joins_parts_across_the_end);
    RUN(test_batch_pop_layout_and_limits);
    RUN(test_peek_batch_describes_records_in_place);
    RUN(test_front_and_discard);
    RUN(test_reserve_and_commit);
    RUN(test_push_packed_pushes_a_prefix_when_nearly_full);
    RUN(test_push_packed_wraps_inside_a_batch);
    RUN(test_push_packed_matches_a_model);
    RUN(test_push_packed_checks_the_batch_before_pushing);
    return 0;
}
