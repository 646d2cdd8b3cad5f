/* The sender pump over loopback TCP: fan-out of whole frames, a stalled client that loses only
 * its own frames, unicast to a just-added client, batched broadcasts, inbound frames and bad
 * headers as events. */
#include <pthread.h>
#include <stdatomic.h>

#include "pumps.h"
#include "ring.h"
#include "test_util.h"

#define MAX_INBOUND 65536
#define TIMEOUT_MS  5000
#define BIG_FRAME   (SYN_FRAME_HEADER_SIZE + 65536)

static syn_sender *make_sender(uint64_t ring, uint64_t queue) {
    syn_sender *s = NULL;
    CHECK_EQ(syn_sender_new(ring, queue, MAX_INBOUND, &s), SYN_OK);
    return s;
}

/* Connects a client; returns our end and stores the pump's client id. */
static int connect_client(syn_sender *s, uint32_t *id) {
    int fds[2];
    tcp_pair(fds);
    int64_t got = syn_sender_add_client(s, fds[1]);
    CHECK(got > 0);
    *id = (uint32_t)got;
    return fds[0];
}

/* Broadcasts, retrying while the ring is full (these tests want every frame to go out). */
static void broadcast_all(syn_sender *s, const uint8_t *frame, size_t len) {
    int rc;
    while ((rc = syn_sender_broadcast(s, frame, len)) == SYN_EFULL) {
        sleep_ms(1);
    }
    CHECK_EQ(rc, SYN_OK);
}

/* Broadcasts count frames packed in data as batches, retrying the part that did not fit. */
static void broadcast_packed_all(syn_sender *s, const uint8_t *data, const uint32_t *lengths,
                                 size_t count) {
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        total += lengths[i];
    }
    size_t done = 0, at = 0;
    while (done < count) {
        int64_t pushed =
            syn_sender_broadcast_packed(s, data + at, total - at, lengths + done, count - done);
        CHECK(pushed >= 0);
        for (int64_t k = 0; k < pushed; k++) {
            at += lengths[done++];
        }
        if (done < count) {
            sleep_ms(1);
        }
    }
}

static void next_event(syn_sender *s, syn_event *event, uint8_t *buf, size_t cap, int64_t *len) {
    CHECK_EQ(syn_sender_wait_event(s, TIMEOUT_MS), 1);
    *len = syn_sender_pop_event(s, event, buf, cap);
    CHECK(*len >= 0);
}

static syn_client_stats client_stats(syn_sender *s, uint32_t id) {
    syn_sender_stats stats;
    syn_client_stats clients[8];
    int64_t n = syn_sender_stats_get(s, &stats, clients, 8);
    for (int64_t i = 0; i < n && i < 8; i++) {
        if (clients[i].client_id == id) {
            return clients[i];
        }
    }
    CHECK(!"client not in stats");
    return clients[0];
}

/* The pump counts a frame after writing it, so a reader can be a little ahead of the stats. */
static syn_client_stats settled_stats(syn_sender *s, uint32_t id, uint64_t frames_sent) {
    syn_client_stats stats = client_stats(s, id);
    for (int tries = 0; tries < 500 && stats.frames_sent < frames_sent; tries++) {
        sleep_ms(10);
        stats = client_stats(s, id);
    }
    return stats;
}

/* ---- a reader thread that checks every frame it gets --------------------------------------- */

typedef struct {
    int fd;
    uint32_t expected;
    _Atomic uint32_t received;
    int in_order; /* every frame valid and numbered 0, 1, 2, ... */
} reader;

static void *read_frames(void *arg) {
    reader *r = arg;
    uint8_t *buf = malloc(BIG_FRAME);
    CHECK(buf != NULL);
    r->in_order = 1;
    uint32_t n = 0;
    while (n < r->expected) {
        ssize_t len = read_frame(r->fd, buf, BIG_FRAME, TIMEOUT_MS);
        if (len <= 0) {
            break;
        }
        r->in_order &= frame_is_valid(buf, (size_t)len, n);
        atomic_store(&r->received, ++n);
    }
    free(buf);
    return NULL;
}

static uint32_t slowest(reader *readers, int count) {
    uint32_t low = UINT32_MAX;
    for (int i = 0; i < count; i++) {
        uint32_t got = atomic_load(&readers[i].received);
        low = got < low ? got : low;
    }
    return low;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_broadcast_reaches_every_client_whole_and_in_order(void) {
    enum { CLIENTS = 3, FRAMES = 3000 };
    syn_sender *s = make_sender(1 << 20, 1 << 20);
    reader readers[CLIENTS];
    pthread_t threads[CLIENTS];
    uint32_t ids[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        readers[i] = (reader){.fd = connect_client(s, &ids[i]), .expected = FRAMES};
        CHECK(pthread_create(&threads[i], NULL, read_frames, &readers[i]) == 0);
    }
    uint8_t *frame = malloc(BIG_FRAME);
    uint64_t random = 12345;
    for (uint32_t seq = 0; seq < FRAMES; seq++) {
        /* Stay within 64 frames of the slowest reader so that no queue overflows. */
        while (seq - slowest(readers, CLIENTS) > 64) {
            sleep_ms(1);
        }
        size_t len = make_frame(frame, seq, (uint32_t)(next_random(&random) % 8192));
        broadcast_all(s, frame, len);
    }
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK_EQ(readers[i].received, FRAMES);
        CHECK(readers[i].in_order);
        syn_client_stats stats = settled_stats(s, ids[i], FRAMES);
        CHECK_EQ(stats.frames_sent, FRAMES);
        CHECK_EQ(stats.frames_dropped, 0);
        CHECK_EQ(stats.bytes_queued, 0);
        close(readers[i].fd);
    }
    free(frame);
    syn_sender_free(s);
}

static void test_stalled_client_only_loses_its_own_frames(void) {
    enum { FRAMES = 1500, PAYLOAD = 16384 };
    syn_sender *s = make_sender(1 << 20, 128 * 1024);
    int small = 16 * 1024;
    int stalled_fds[2];
    tcp_pair(stalled_fds);
    setsockopt(stalled_fds[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(stalled_fds[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    uint32_t stalled_id = (uint32_t)syn_sender_add_client(s, stalled_fds[1]);
    CHECK(stalled_id > 0);

    uint32_t live_id;
    reader live = {.fd = connect_client(s, &live_id), .expected = FRAMES};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, read_frames, &live) == 0);
    uint8_t *frame = malloc(BIG_FRAME);
    for (uint32_t seq = 0; seq < FRAMES; seq++) {
        while (seq - atomic_load(&live.received) > 4) {
            sleep_ms(1);
        }
        broadcast_all(s, frame, make_frame(frame, seq, PAYLOAD));
    }
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK_EQ(live.received, FRAMES);
    CHECK(live.in_order);
    CHECK_EQ(client_stats(s, live_id).frames_dropped, 0);
    syn_client_stats stalled = client_stats(s, stalled_id);
    CHECK(stalled.frames_dropped > 0);
    CHECK(stalled.frames_sent + stalled.frames_dropped <= FRAMES);

    /* What the stalled client does get is whole frames, in order, with gaps where drops were. */
    int64_t last = -1;
    uint32_t whole = 0;
    ssize_t len;
    while (whole + stalled.frames_dropped < FRAMES &&
           (len = read_frame(stalled_fds[0], frame, BIG_FRAME, TIMEOUT_MS)) > 0) {
        uint32_t seq = get_le32(frame + 12);
        CHECK((int64_t)seq > last);
        CHECK(frame_is_valid(frame, (size_t)len, seq));
        last = seq;
        whole++;
    }
    CHECK(whole > 0);
    CHECK_EQ(whole + stalled.frames_dropped, FRAMES);
    CHECK_EQ(read_exact(stalled_fds[0], frame, 1, 50), -1); /* and nothing more */
    free(frame);
    close(live.fd);
    close(stalled_fds[0]);
    syn_sender_free(s);
}

static void test_send_to_reaches_a_just_added_client_only(void) {
    syn_sender *s = make_sender(1 << 16, 1 << 16);
    uint8_t frame[256], got[256];
    uint32_t bystander_id;
    int bystander = connect_client(s, &bystander_id);
    for (uint32_t round = 0; round < 100; round++) {
        uint32_t id;
        int fd = connect_client(s, &id);
        CHECK_EQ(syn_sender_send_to(s, id, frame, make_frame(frame, round, 100)), SYN_OK);
        CHECK_EQ(read_frame(fd, got, sizeof got, TIMEOUT_MS), 132);
        CHECK(frame_is_valid(got, 132, round));
        CHECK_EQ(syn_sender_remove_client(s, id), SYN_OK);
        CHECK_EQ(read_exact(fd, got, 1, TIMEOUT_MS), 0); /* removed: EOF */
        close(fd);
    }
    /* The bystander saw none of the unicasts: its first frame is this broadcast. */
    broadcast_all(s, frame, make_frame(frame, 7777, 10));
    CHECK_EQ(read_frame(bystander, got, sizeof got, TIMEOUT_MS), 42);
    CHECK(frame_is_valid(got, 42, 7777));
    CHECK_EQ(syn_sender_send_to(s, 0, frame, 42), SYN_ENOCLIENT);
    CHECK_EQ(syn_sender_send_to(s, 100000, frame, 42), SYN_ENOCLIENT);
    CHECK_EQ(syn_sender_remove_client(s, 100000), SYN_ENOCLIENT);
    close(bystander);
    syn_sender_free(s);
}

static void test_inbound_frames_become_events(void) {
    syn_sender *s = make_sender(1 << 16, 1 << 16);
    uint32_t id;
    int fd = connect_client(s, &id);
    uint8_t frame[2048], buf[SYN_FRAME_HEADER_SIZE + MAX_INBOUND];
    uint32_t sizes[] = {0, 1000, 17};
    for (uint32_t i = 0; i < 3; i++) {
        write_all(fd, frame, make_frame(frame, i, sizes[i]));
    }
    for (uint32_t i = 0; i < 3; i++) {
        syn_event event;
        int64_t len;
        next_event(s, &event, buf, sizeof buf, &len);
        CHECK_EQ(event.kind, SYN_EVENT_FRAME);
        CHECK_EQ(event.client_id, id);
        CHECK_EQ(len, SYN_FRAME_HEADER_SIZE + sizes[i]);
        CHECK(frame_is_valid(buf, (size_t)len, i));
    }
    for (int tries = 0; tries < 500 && client_stats(s, id).frames_received < 3; tries++) {
        sleep_ms(10); /* counted just after the event is published */
    }
    CHECK_EQ(client_stats(s, id).frames_received, 3);
    CHECK_EQ(syn_sender_pop_event(s, &(syn_event){0, 0}, buf, sizeof buf), SYN_EEMPTY);
    close(fd);
    syn_sender_free(s);
}

static void test_broadcast_packed_reaches_every_client_whole_and_in_order(void) {
    enum { CLIENTS = 2, FRAMES = 3000, MAX_BATCH = 16, MAX_PAYLOAD = 4096 };
    syn_sender *s = make_sender(1 << 18, 1 << 20);
    reader readers[CLIENTS];
    pthread_t threads[CLIENTS];
    uint32_t ids[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        readers[i] = (reader){.fd = connect_client(s, &ids[i]), .expected = FRAMES};
        CHECK(pthread_create(&threads[i], NULL, read_frames, &readers[i]) == 0);
    }
    uint8_t *data = malloc(MAX_BATCH * (SYN_FRAME_HEADER_SIZE + MAX_PAYLOAD));
    uint32_t lengths[MAX_BATCH];
    uint64_t random = 4242;
    for (uint32_t seq = 0; seq < FRAMES;) {
        while (seq - slowest(readers, CLIENTS) > 64) {
            sleep_ms(1);
        }
        size_t count = 1 + (size_t)(next_random(&random) % MAX_BATCH), at = 0;
        count = count < FRAMES - seq ? count : FRAMES - seq;
        for (size_t k = 0; k < count; k++) {
            uint32_t payload = (uint32_t)(next_random(&random) % MAX_PAYLOAD);
            lengths[k] = (uint32_t)make_frame(data + at, seq + (uint32_t)k, payload);
            at += lengths[k];
        }
        broadcast_packed_all(s, data, lengths, count);
        seq += (uint32_t)count;
    }
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK_EQ(readers[i].received, FRAMES);
        CHECK(readers[i].in_order);
        syn_client_stats stats = settled_stats(s, ids[i], FRAMES);
        CHECK_EQ(stats.frames_sent, FRAMES);
        CHECK_EQ(stats.frames_dropped, 0);
        close(readers[i].fd);
    }
    free(data);
    syn_sender_free(s);
}

/* Waits until the pump has taken everything out of its ring. */
static void wait_ring_empty(syn_sender *s) {
    syn_sender_stats stats;
    syn_sender_stats_get(s, &stats, NULL, 0);
    for (int tries = 0; tries < 500 && stats.ring_used_bytes != 0; tries++) {
        sleep_ms(10);
        syn_sender_stats_get(s, &stats, NULL, 0);
    }
    CHECK_EQ(stats.ring_used_bytes, 0);
}

static uint64_t ring_drops(syn_sender *s) {
    syn_sender_stats stats;
    syn_sender_stats_get(s, &stats, NULL, 0);
    return stats.ring_drops;
}

static void test_broadcast_packed_pushes_a_prefix_and_counts_the_rest(void) {
    /* A 4 KiB ring holds four records of a 1000-byte frame (4 + 4 + 1000 -> 1008 bytes each). The
     * pump sees nothing of a batch until the whole call is done, so an empty ring takes exactly
     * the first four frames of a batch of eight. */
    syn_sender *s = make_sender(4096, 1 << 16);
    uint32_t id;
    int fd = connect_client(s, &id);
    enum { PAYLOAD = 1000 - SYN_FRAME_HEADER_SIZE };
    uint8_t data[8 * 1000], got[2048];
    uint32_t lengths[8];
    for (uint32_t k = 0; k < 8; k++) {
        lengths[k] = (uint32_t)make_frame(data + 1000 * k, k, PAYLOAD);
    }
    CHECK_EQ(syn_sender_broadcast_packed(s, data, sizeof data, lengths, 8), 4);
    CHECK_EQ(ring_drops(s), 4);
    for (uint32_t k = 0; k < 4; k++) {
        CHECK_EQ(read_frame(fd, got, sizeof got, TIMEOUT_MS), 1000);
        CHECK(frame_is_valid(got, 1000, k));
    }
    wait_ring_empty(s);
    /* The caller may queue the rest later. */
    CHECK_EQ(syn_sender_broadcast_packed(s, data + 4000, 4000, lengths + 4, 4), 4);
    for (uint32_t k = 4; k < 8; k++) {
        CHECK_EQ(read_frame(fd, got, sizeof got, TIMEOUT_MS), 1000);
        CHECK(frame_is_valid(got, 1000, k));
    }
    wait_ring_empty(s);

    /* A frame over the limit, or lengths that do not match the data, refuse the whole batch. */
    uint64_t max_frame = syn_sender_max_frame(s);
    CHECK_EQ(max_frame, 4096 - 8 - 4);
    static uint8_t big[8192];
    make_frame(big, 100, (uint32_t)(max_frame + 1 - SYN_FRAME_HEADER_SIZE));
    memcpy(big + max_frame + 1, data, 1000);
    uint32_t too_big[] = {1000, (uint32_t)max_frame + 1};
    uint32_t with_big[] = {(uint32_t)max_frame + 1, 1000};
    CHECK_EQ(syn_sender_broadcast_packed(s, big, max_frame + 1001, with_big, 2), SYN_ETOOBIG);
    CHECK_EQ(syn_sender_broadcast_packed(s, data, max_frame + 1001, too_big, 2), SYN_ETOOBIG);
    CHECK_EQ(syn_sender_broadcast_packed(s, data, 1999, lengths, 2), SYN_EINVAL);
    CHECK_EQ(syn_sender_broadcast_packed(s, data, 0, NULL, 0), 0);
    CHECK_EQ(ring_drops(s), 4);
    /* None of those reached the client: its next frame is this one. */
    CHECK_EQ(syn_sender_broadcast_packed(s, data + 7000, 1000, lengths + 7, 1), 1);
    CHECK_EQ(read_frame(fd, got, sizeof got, TIMEOUT_MS), 1000);
    CHECK(frame_is_valid(got, 1000, 7));

    syn_sender_stop(s);
    CHECK_EQ(syn_sender_broadcast_packed(s, data, 1000, lengths, 1), SYN_ECLOSED);
    syn_sender_free(s);
    close(fd);
}

/* Sends `bytes` from a new client (then hangs up if asked) and expects the pump to close it
 * with `reason`. */
static void expect_closed_with(syn_sender *s, const uint8_t *bytes, size_t len, int hang_up,
                               const char *reason) {
    uint32_t id;
    int fd = connect_client(s, &id);
    write_all(fd, bytes, len);
    if (hang_up) {
        shutdown(fd, SHUT_WR);
    }
    syn_event event;
    char text[SYN_REASON_MAX + 1];
    int64_t got;
    next_event(s, &event, (uint8_t *)text, SYN_REASON_MAX, &got);
    text[got] = '\0';
    CHECK_EQ(event.kind, SYN_EVENT_CLOSED);
    CHECK_EQ(event.client_id, id);
    if (strcmp(text, reason) != 0) {
        fprintf(stderr, "reason: '%s', expected '%s'\n", text, reason);
        CHECK(0);
    }
    /* A header that failed the checks is answered with ERROR MALFORMED naming the reason; then
     * (and otherwise at once) the pump hangs up. */
    uint8_t head[SYN_FRAME_HEADER_SIZE];
    int64_t n = read_exact(fd, head, 1, TIMEOUT_MS);
    if (n == 1) {
        CHECK_EQ(read_exact(fd, head + 1, sizeof head - 1, TIMEOUT_MS), (int64_t)sizeof head - 1);
        CHECK_EQ(head[6], 8); /* ERROR */
        uint32_t payload = (uint32_t)head[8] | (uint32_t)head[9] << 8;
        uint8_t body[8 + SYN_REASON_MAX + 8];
        CHECK(payload <= sizeof body);
        CHECK_EQ(read_exact(fd, body, payload, TIMEOUT_MS), (int64_t)payload);
        CHECK_EQ(body[0], 3); /* MALFORMED */
        CHECK(memcmp(body + 8, reason, strlen(reason)) == 0);
        n = read_exact(fd, head, 1, TIMEOUT_MS);
    }
    CHECK_EQ(n, 0); /* the pump hung up */
    close(fd);
}

static void test_bad_headers_close_only_that_client(void) {
    syn_sender *s = make_sender(1 << 16, 1 << 16);
    uint32_t good_id;
    int good = connect_client(s, &good_id);
    uint8_t frame[64], got[64];

    memset(frame, 'x', sizeof frame);
    expect_closed_with(s, frame, 32, 0, "bad magic 78 78 78 78 (expected \"SYNP\")");
    make_frame(frame, 1, 0);
    frame[4] = 7;
    expect_closed_with(s, frame, 32, 0, "unsupported protocol version 7 (this build speaks 1)");
    make_frame(frame, 1, 0);
    put_le32(frame + SYN_FRAME_LENGTH_OFFSET, 99999999);
    expect_closed_with(s, frame, 32, 0, "payload of 99999999 bytes exceeds the 65536-byte limit");
    expect_closed_with(s, frame, 0, 1, "peer closed the connection");
    make_frame(frame, 1, 20);
    expect_closed_with(s, frame, 40, 1, "peer closed the connection mid-frame");

    /* The well-behaved client is unaffected. */
    broadcast_all(s, frame, make_frame(frame, 5, 8));
    CHECK_EQ(read_frame(good, got, sizeof got, TIMEOUT_MS), 40);
    CHECK(frame_is_valid(got, 40, 5));
    syn_sender_stats stats;
    CHECK_EQ(syn_sender_stats_get(s, &stats, NULL, 0), 1);
    close(good);
    syn_sender_free(s);
}

static void test_limits_and_closing(void) {
    syn_sender *s = NULL;
    CHECK_EQ(syn_sender_new(1000, 1 << 16, MAX_INBOUND, &s), SYN_EINVAL);
    CHECK_EQ(syn_sender_new(1 << 16, 1000, MAX_INBOUND, &s), SYN_EINVAL);
    s = make_sender(1 << 16, 1 << 12);
    CHECK_EQ(syn_sender_max_frame(s), (1 << 12) - 8);
    static uint8_t big[1 << 13];
    CHECK_EQ(syn_sender_broadcast(s, big, (1 << 12) - 7), SYN_ETOOBIG);
    int not_a_socket[2];
    CHECK(pipe(not_a_socket) == 0);
    CHECK_EQ(syn_sender_add_client(s, not_a_socket[0]), SYN_ESYS);
    close(not_a_socket[0]);
    close(not_a_socket[1]);

    /* Nothing to report: wait_event times out. */
    CHECK_EQ(syn_sender_wait_event(s, 30), 0);

    /* Freeing with clients connected returns promptly and hangs up on them. */
    uint32_t ids[3];
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = connect_client(s, &ids[i]);
    }
    uint8_t frame[64];
    broadcast_all(s, frame, make_frame(frame, 0, 4));
    syn_sender_stop(s);
    CHECK_EQ(syn_sender_wait_event(s, -1), SYN_ECLOSED);
    CHECK_EQ(syn_sender_broadcast(s, frame, 36), SYN_ECLOSED);
    syn_sender_free(s);
    for (int i = 0; i < 3; i++) {
        ssize_t got;
        while ((got = read_exact(fds[i], frame, 1, TIMEOUT_MS)) > 0) {
        }
        CHECK_EQ(got, 0);
        close(fds[i]);
    }
}

int main(void) {
    fprintf(stderr, "test_sender\n");
    RUN(test_broadcast_reaches_every_client_whole_and_in_order);
    RUN(test_stalled_client_only_loses_its_own_frames);
    RUN(test_send_to_reaches_a_just_added_client_only);
    RUN(test_broadcast_packed_reaches_every_client_whole_and_in_order);
    RUN(test_broadcast_packed_pushes_a_prefix_and_counts_the_rest);
    RUN(test_inbound_frames_become_events);
    RUN(test_bad_headers_close_only_that_client);
    RUN(test_limits_and_closing);
    return 0;
}
