/* The receiver pump over loopback TCP: whole frames of every size in order, backpressure when
 * the ring is full, bad headers rejected with a reason, outbound frames, prompt closing. */
#include <pthread.h>
#include <stdatomic.h>

#include "pumps.h"
#include "ring.h"
#include "test_util.h"

#define TIMEOUT_MS 5000

static syn_receiver *make_receiver(int fd, uint64_t ring, uint32_t max_payload) {
    syn_receiver *r = NULL;
    CHECK_EQ(syn_receiver_new(fd, ring, max_payload, &r), SYN_OK);
    return r;
}

/* ---- a writer thread on the peer's end --------------------------------------------------- */

typedef struct {
    int fd;
    uint32_t frames;
    uint64_t seed; /* sizes follow from it; see writer_size */
    uint32_t max_payload;
} writer;

static uint32_t writer_size(uint64_t *random, uint32_t max_payload) {
    uint64_t r = next_random(random);
    switch (r % 16) {
    case 0:
        return max_payload; /* far larger than the staging buffer when max_payload is */
    case 1:
    case 2:
        return (uint32_t)((r >> 8) % max_payload);
    default:
        return (uint32_t)((r >> 8) % 300);
    }
}

static void *write_frames(void *arg) {
    writer *w = arg;
    uint8_t *frame = malloc(SYN_FRAME_HEADER_SIZE + w->max_payload);
    CHECK(frame != NULL);
    uint64_t random = w->seed;
    for (uint32_t seq = 0; seq < w->frames; seq++) {
        write_all(w->fd, frame, make_frame(frame, seq, writer_size(&random, w->max_payload)));
    }
    free(frame);
    return NULL;
}

/* Drains until `frames` frames arrived, checking each; optionally pauses to let the ring fill. */
static void drain_and_check(syn_receiver *r, const writer *w, int pause_ms) {
    size_t cap = SYN_FRAME_HEADER_SIZE + w->max_payload + 4;
    uint8_t *batch = malloc(cap);
    CHECK(batch != NULL);
    uint64_t random = w->seed;
    syn_receiver_stats stats;
    for (uint32_t seq = 0; seq < w->frames;) {
        CHECK_EQ(syn_receiver_wait(r, TIMEOUT_MS), 1);
        if (pause_ms > 0) {
            sleep_ms(pause_ms);
        }
        if (seq % 2 == 0) { /* copy out with drain */
            size_t used = 0;
            int64_t count = syn_receiver_drain(r, batch, cap, 1000, &used);
            CHECK(count > 0);
            size_t at = 0;
            for (int64_t i = 0; i < count; i++, seq++) {
                size_t len = get_le32(batch + at);
                CHECK_EQ(len, SYN_FRAME_HEADER_SIZE + writer_size(&random, w->max_payload));
                CHECK(frame_is_valid(batch + at + 4, len, seq));
                at += 4 + len;
            }
        } else { /* read in place with peek_batch, then consume */
            uint64_t pairs[2 * 64];
            int64_t count = syn_receiver_peek_batch(r, pairs, 64);
            CHECK(count > 0);
            const uint8_t *storage = syn_receiver_storage(r);
            uint64_t capacity = syn_receiver_ring_capacity(r);
            for (int64_t i = 0; i < count; i++, seq++) {
                uint64_t start = pairs[2 * i], len = pairs[2 * i + 1];
                CHECK_EQ(len, SYN_FRAME_HEADER_SIZE + writer_size(&random, w->max_payload));
                uint64_t first = start + len <= capacity ? len : capacity - start;
                memcpy(batch, storage + start, first);
                memcpy(batch + first, storage, len - first);
                CHECK(frame_is_valid(batch, len, seq));
            }
            CHECK_EQ(syn_receiver_consume(r, (size_t)count), SYN_OK);
        }
        syn_receiver_stats_get(r, &stats);
        CHECK(stats.ring_used_bytes <= stats.ring_capacity);
    }
    syn_receiver_stats_get(r, &stats);
    CHECK_EQ(stats.frames_in, w->frames);
    CHECK_EQ(stats.state, SYN_STREAM_OPEN);
    free(batch);
}

static void run_stream(uint64_t ring, uint32_t max_payload, uint32_t frames, int pause_ms) {
    int fds[2];
    tcp_pair(fds);
    syn_receiver *r = make_receiver(fds[1], ring, max_payload);
    writer w = {.fd = fds[0], .frames = frames, .seed = 99, .max_payload = max_payload};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, write_frames, &w) == 0);
    drain_and_check(r, &w, pause_ms);
    CHECK(pthread_join(thread, NULL) == 0);
    close(fds[0]);
    syn_receiver_free(r);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_frames_of_every_size_arrive_whole_and_in_order(void) {
    /* 1 MiB frames are four times the staging buffer: they are read straight into the ring. */
    run_stream(8 << 20, 1 << 20, 400, 0);
}

static void test_full_ring_pauses_reading_without_losing_frames(void) {
    /* A 64 KiB ring, a slow consumer and a writer that never stops: the pump must wait for
     * room, be woken by drain, and resume. */
    run_stream(1 << 16, 16 << 10, 600, 1);
}

static void expect_rejected(const uint8_t *bad, size_t len, const char *reason) {
    int fds[2];
    tcp_pair(fds);
    syn_receiver *r = make_receiver(fds[1], 1 << 16, 1024);
    uint8_t good[64];
    write_all(fds[0], good, make_frame(good, 3, 16));
    write_all(fds[0], bad, len);

    /* The frame before the bad header is delivered; then the stream reports closed. */
    CHECK_EQ(syn_receiver_wait(r, TIMEOUT_MS), 1);
    uint8_t batch[256];
    size_t used;
    CHECK_EQ(syn_receiver_drain(r, batch, sizeof batch, 10, &used), 1);
    CHECK(frame_is_valid(batch + 4, 48, 3));
    CHECK_EQ(syn_receiver_wait(r, TIMEOUT_MS), SYN_ECLOSED);
    char text[SYN_REASON_MAX];
    syn_receiver_close_reason(r, text, sizeof text);
    if (strcmp(text, reason) != 0) {
        fprintf(stderr, "reason: '%s', expected '%s'\n", text, reason);
        CHECK(0);
    }
    syn_receiver_stats stats;
    syn_receiver_stats_get(r, &stats);
    CHECK_EQ(stats.state, SYN_STREAM_CLOSED);
    CHECK_EQ(read_exact(fds[0], batch, 1, TIMEOUT_MS), 0); /* the pump hung up */
    CHECK_EQ(syn_receiver_send(r, good, 48), SYN_ECLOSED);
    close(fds[0]);
    syn_receiver_free(r);
}

static void test_bad_headers_are_rejected_with_a_reason(void) {
    uint8_t frame[32];
    memcpy(frame, "HTTP/1.1 200 OK\r\nContent-Type: x", 32);
    expect_rejected(frame, 32, "bad magic 48 54 54 50 (expected \"SYNP\")");
    make_frame(frame, 0, 0);
    frame[4] = 7;
    expect_rejected(frame, 32, "unsupported protocol version 7 (this build speaks 1)");
    make_frame(frame, 0, 0);
    put_le32(frame + SYN_FRAME_LENGTH_OFFSET, 99999999);
    expect_rejected(frame, 32, "payload of 99999999 bytes exceeds the 1024-byte limit");
}

static void test_unknown_message_types_pass_through(void) {
    int fds[2];
    tcp_pair(fds);
    syn_receiver *r = make_receiver(fds[1], 1 << 16, 1024);
    uint8_t frame[64], batch[128];
    size_t len = make_frame(frame, 1, 8);
    frame[6] = 0xff;
    frame[7] = 0xff;
    write_all(fds[0], frame, len);
    CHECK_EQ(syn_receiver_wait(r, TIMEOUT_MS), 1);
    size_t used;
    CHECK_EQ(syn_receiver_drain(r, batch, sizeof batch, 10, &used), 1);
    CHECK(memcmp(batch + 4, frame, len) == 0);
    close(fds[0]);
    CHECK_EQ(syn_receiver_wait(r, TIMEOUT_MS), SYN_ECLOSED);
    char text[SYN_REASON_MAX];
    syn_receiver_close_reason(r, text, sizeof text);
    CHECK(strcmp(text, "peer closed the connection") == 0);
    syn_receiver_free(r);
}

static void test_send_writes_frames_to_the_peer(void) {
    int fds[2];
    tcp_pair(fds);
    syn_receiver *r = make_receiver(fds[1], 1 << 16, 1024);
    uint8_t frame[512], got[512];
    for (uint32_t i = 0; i < 20; i++) {
        CHECK_EQ(syn_receiver_send(r, frame, make_frame(frame, i, i * 20)), SYN_OK);
    }
    for (uint32_t i = 0; i < 20; i++) {
        ssize_t len = read_frame(fds[0], got, sizeof got, TIMEOUT_MS);
        CHECK_EQ(len, SYN_FRAME_HEADER_SIZE + i * 20);
        CHECK(frame_is_valid(got, (size_t)len, i));
    }
    static uint8_t huge[SYN_RECEIVER_OUTBOUND_BYTES];
    CHECK_EQ(syn_receiver_send(r, huge, sizeof huge), SYN_ETOOBIG);
    syn_receiver_stats stats;
    for (int tries = 0; tries < 500; tries++) { /* the peer may read before the pump counts */
        syn_receiver_stats_get(r, &stats);
        if (stats.frames_out == 20) {
            break;
        }
        sleep_ms(10);
    }
    CHECK_EQ(stats.frames_out, 20);
    close(fds[0]);
    syn_receiver_free(r);
}

typedef struct {
    syn_receiver *r;
    int result;
} waiter_args;

static void *wait_forever(void *arg) {
    waiter_args *w = arg;
    w->result = syn_receiver_wait(w->r, -1);
    return NULL;
}

static void test_close_is_prompt_and_wakes_a_waiter(void) {
    int fds[2];
    tcp_pair(fds);
    syn_receiver *r = make_receiver(fds[1], 1 << 16, 1024);
    CHECK_EQ(syn_receiver_wait(r, 20), 0); /* nothing yet: times out */
    waiter_args w = {r, 0};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, wait_forever, &w) == 0);
    sleep_ms(20);
    syn_receiver_close(r);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_EQ(w.result, SYN_ECLOSED);
    char text[SYN_REASON_MAX];
    syn_receiver_close_reason(r, text, sizeof text);
    CHECK(strcmp(text, "closed by the application") == 0);
    uint8_t byte;
    CHECK_EQ(read_exact(fds[0], &byte, 1, TIMEOUT_MS), 0);
    close(fds[0]);
    syn_receiver_free(r);
}

static void test_arguments_are_checked(void) {
    int fds[2];
    tcp_pair(fds);
    syn_receiver *r = NULL;
    CHECK_EQ(syn_receiver_new(fds[1], 1 << 16, 1 << 16, &r), SYN_EINVAL); /* frame > ring */
    CHECK_EQ(syn_receiver_new(fds[1], 3000, 1024, &r), SYN_EINVAL);
    CHECK_EQ(syn_receiver_new(-1, 1 << 16, 1024, &r), SYN_EINVAL);
    int not_a_socket[2];
    CHECK(pipe(not_a_socket) == 0);
    CHECK_EQ(syn_receiver_new(not_a_socket[0], 1 << 16, 1024, &r), SYN_ESYS);
    CHECK(r == NULL);
    close(not_a_socket[0]);
    close(not_a_socket[1]);
    close(fds[0]);
    close(fds[1]); /* failures leave the descriptor with the caller */
}

int main(void) {
    fprintf(stderr, "test_receiver\n");
    RUN(test_frames_of_every_size_arrive_whole_and_in_order);
    RUN(test_full_ring_pauses_reading_without_losing_frames);
    RUN(test_bad_headers_are_rejected_with_a_reason);
    RUN(test_unknown_message_types_pass_through);
    RUN(test_send_writes_frames_to_the_peer);
    RUN(test_close_is_prompt_and_wakes_a_waiter);
    RUN(test_arguments_are_checked);
    return 0;
}
