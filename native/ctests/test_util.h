/* Tiny helpers for the C tests: checks that abort with a location, loopback TCP pairs, frames. */
#ifndef SYN_TEST_UTIL_H
#define SYN_TEST_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ != check_b_) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,  \
                    #a, #b, check_a_, check_b_);                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define RUN(test)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "  %s\n", #test);                                                          \
        test();                                                                                    \
    } while (0)

/* A connected loopback TCP pair: fds[0] and fds[1] are the two ends (blocking). */
static inline void tcp_pair(int fds[2]) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(listener >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    CHECK(bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0);
    CHECK(listen(listener, 1) == 0);
    CHECK(getsockname(listener, (struct sockaddr *)&addr, &len) == 0);
    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fds[0] >= 0);
    CHECK(connect(fds[0], (struct sockaddr *)&addr, sizeof addr) == 0);
    fds[1] = accept(listener, NULL, NULL);
    CHECK(fds[1] >= 0);
    close(listener);
}

static inline void put_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Writes a frame of SYN_FRAME_HEADER_SIZE + payload_len bytes into out: a valid header whose
 * bytes 12-15 carry `seq`, and a payload derived from seq. Returns the frame length. */
static inline size_t make_frame(uint8_t *out, uint32_t seq, uint32_t payload_len) {
    memset(out, 0, SYN_FRAME_HEADER_SIZE);
    memcpy(out, "SYNP", 4);
    out[4] = SYN_PROTOCOL_VERSION;
    out[6] = 7; /* a message type the pumps do not care about */
    put_le32(out + SYN_FRAME_LENGTH_OFFSET, payload_len);
    put_le32(out + 12, seq);
    for (uint32_t i = 0; i < payload_len; i++) {
        out[SYN_FRAME_HEADER_SIZE + i] = (uint8_t)(seq * 131u + i);
    }
    return SYN_FRAME_HEADER_SIZE + payload_len;
}

/* Whether frame is exactly what make_frame(seq, ...) produced. */
static inline int frame_is_valid(const uint8_t *frame, size_t len, uint32_t seq) {
    if (len < SYN_FRAME_HEADER_SIZE || memcmp(frame, "SYNP", 4) != 0 ||
        get_le32(frame + 12) != seq ||
        get_le32(frame + SYN_FRAME_LENGTH_OFFSET) != len - SYN_FRAME_HEADER_SIZE) {
        return 0;
    }
    for (size_t i = 0; i < len - SYN_FRAME_HEADER_SIZE; i++) {
        if (frame[SYN_FRAME_HEADER_SIZE + i] != (uint8_t)(seq * 131u + i)) {
            return 0;
        }
    }
    return 1;
}

/* Reads exactly n bytes within timeout_ms; returns n, 0 on EOF before any byte, -1 otherwise. */
static inline ssize_t read_exact(int fd, void *buf, size_t n, int timeout_ms) {
    size_t have = 0;
    while (have < n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0) {
            return -1;
        }
        ssize_t got = recv(fd, (uint8_t *)buf + have, n - have, 0);
        if (got == 0) {
            return have == 0 ? 0 : -1;
        }
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        have += (size_t)got;
    }
    return (ssize_t)n;
}

/* Reads one whole frame into buf (cap bytes); returns its length, 0 on EOF, -1 on error. */
static inline ssize_t read_frame(int fd, uint8_t *buf, size_t cap, int timeout_ms) {
    ssize_t got = read_exact(fd, buf, SYN_FRAME_HEADER_SIZE, timeout_ms);
    if (got <= 0) {
        return got;
    }
    size_t payload = get_le32(buf + SYN_FRAME_LENGTH_OFFSET);
    if (SYN_FRAME_HEADER_SIZE + payload > cap) {
        return -1;
    }
    if (payload > 0 && read_exact(fd, buf + SYN_FRAME_HEADER_SIZE, payload, timeout_ms) <= 0) {
        return -1;
    }
    return (ssize_t)(SYN_FRAME_HEADER_SIZE + payload);
}

static inline void write_all(int fd, const void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(fd, (const uint8_t *)buf + done, n - done, MSG_NOSIGNAL);
        CHECK(w > 0 || (w < 0 && errno == EINTR));
        if (w > 0) {
            done += (size_t)w;
        }
    }
}

static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline uint64_t env_u64(const char *name, uint64_t fallback) {
    const char *value = getenv(name);
    return value != NULL ? strtoull(value, NULL, 10) : fallback;
}

/* xorshift64: reproducible sizes for the tests. */
static inline uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

#endif
