/* syn_bench_pumps: sender pump -> loopback TCP -> receiver pump, with no Python in the loop
 * (see include/bench.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "frame.h"
#include "pumps.h"
#include "ring.h"
#include "thread.h"

#define IN_FLIGHT   192
#define QUEUE_BYTES (1u << 24)

typedef struct {
    syn_sender *sender;
    const uint8_t *frame;
    size_t len;
    uint64_t frames;
    _Atomic uint64_t received;
} bench_state;

static void pause_briefly(void) {
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
}

static void *produce(void *arg) {
    bench_state *b = arg;
    for (uint64_t sent = 0; sent < b->frames; sent++) {
        while (sent - atomic_load(&b->received) >= IN_FLIGHT ||
               syn_sender_broadcast(b->sender, b->frame, b->len) != SYN_OK) {
            pause_briefly();
        }
    }
    return NULL;
}

/* A connected loopback TCP pair, or -1. */
static int loopback_pair(int fds[2]) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t size = sizeof addr;
    int ok = listener >= 0 && bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0 &&
             listen(listener, 1) == 0 &&
             getsockname(listener, (struct sockaddr *)&addr, &size) == 0;
    fds[0] = ok ? socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
    ok = ok && fds[0] >= 0 && connect(fds[0], (struct sockaddr *)&addr, sizeof addr) == 0;
    fds[1] = ok ? accept(listener, NULL, NULL) : -1;
    if (listener >= 0) {
        close(listener);
    }
    if (fds[1] < 0 && fds[0] >= 0) {
        close(fds[0]);
    }
    return fds[1] >= 0 ? 0 : -1;
}

static int64_t run(syn_sender *sender, syn_receiver *receiver, uint32_t payload, uint64_t frames) {
    size_t len = SYN_FRAME_HEADER_SIZE + (size_t)payload, cap = 4u << 20;
    uint8_t *frame = calloc(1, len);
    uint8_t *batch = malloc(cap > len + 4 ? cap : len + 4);
    if (frame == NULL || batch == NULL) {
        free(frame);
        free(batch);
        return SYN_ENOMEM;
    }
    memcpy(frame, "SYNP", 4);
    frame[4] = SYN_PROTOCOL_VERSION;
    for (int i = 0; i < 4; i++) {
        frame[SYN_FRAME_LENGTH_OFFSET + i] = (uint8_t)(payload >> (8 * i)); /* little-endian */
    }
    bench_state b = {.sender = sender, .frame = frame, .len = len, .frames = frames};
    atomic_init(&b.received, 0);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pthread_t producer;
    if (syn_start_thread(&producer, "syn-bench", produce, &b) != 0) {
        free(frame);
        free(batch);
        return SYN_ESYS;
    }
    int stalled = 0;
    while (atomic_load(&b.received) < frames && !stalled) {
        stalled = syn_receiver_wait(receiver, 10000) != 1;
        size_t used;
        int64_t count = syn_receiver_drain(receiver, batch, cap, 4096, &used);
        if (count > 0) {
            atomic_fetch_add(&b.received, (uint64_t)count);
        }
    }
    if (stalled) {
        atomic_store(&b.received, frames + IN_FLIGHT); /* let the producer finish */
    }
    pthread_join(producer, NULL);
    clock_gettime(CLOCK_MONOTONIC, &end);
    free(frame);
    free(batch);
    if (stalled) {
        return SYN_EINVAL;
    }
    return (int64_t)(end.tv_sec - start.tv_sec) * 1000000000 + (end.tv_nsec - start.tv_nsec);
}

int64_t syn_bench_pumps(uint32_t payload, uint64_t frames) {
    int fds[2];
    if (loopback_pair(fds) != 0) {
        return SYN_ESYS;
    }
    syn_sender *sender = NULL;
    syn_receiver *receiver = NULL;
    int rc = syn_sender_new(1u << 24, QUEUE_BYTES, 1u << 16, &sender);
    int64_t added = rc == SYN_OK ? syn_sender_add_client(sender, fds[0]) : rc;
    if (added > 0) {
        fds[0] = -1; /* the pump owns it now */
        rc = syn_receiver_new(fds[1], 1u << 25, 1u << 24, &receiver);
        if (rc == SYN_OK) {
            fds[1] = -1;
        }
    }
    int64_t result = added < 0 ? added : rc != SYN_OK ? rc : run(sender, receiver, payload, frames);
    syn_receiver_free(receiver);
    syn_sender_free(sender);
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    return result;
}
