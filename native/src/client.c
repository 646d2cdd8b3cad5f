/* A sender pump client: queue, writes, inbound frames (see client.h). */
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "frame_check.h"
#include "sockio.h"

/* Frames at least this long are written straight from the producer's ring when the client's
 * queue is empty; smaller ones are queued and written in batches (fewer system calls). */
#define SYN_DIRECT_SEND_MIN 16384
/* Initial inbound buffer: room for a header and a small CONTROL payload. */
#define INITIAL_FRAME_CAP 512

int syn_client_new(uint32_t id, int fd, uint64_t queue_bytes, syn_client **out) {
    syn_client *client = calloc(1, sizeof *client);
    if (client == NULL) {
        return SYN_ENOMEM;
    }
    int rc = syn_ring_new(queue_bytes, &client->queue);
    client->frame = malloc(INITIAL_FRAME_CAP);
    if (rc != SYN_OK || client->frame == NULL) {
        syn_ring_free(client->queue);
        free(client->frame);
        free(client);
        return rc != SYN_OK ? rc : SYN_ENOMEM;
    }
    client->id = id;
    client->fd = fd;
    client->frame_cap = INITIAL_FRAME_CAP;
    client->writable = 1;
    atomic_init(&client->connected, 1);
    *out = client;
    return SYN_OK;
}

void syn_client_free(syn_client *client) {
    if (client == NULL) {
        return;
    }
    if (client->fd >= 0) {
        syn_close_socket(client->fd);
    }
    syn_ring_free(client->queue);
    free(client->frame);
    free(client);
}

void syn_client_close(syn_client *client, const char *fmt, ...) {
    if (client->closed) {
        return;
    }
    va_list args;
    va_start(args, fmt);
    vsnprintf(client->reason, sizeof client->reason, fmt, args);
    va_end(args);
    syn_close_socket(client->fd);
    client->fd = -1;
    client->closed = 1;
    atomic_store_explicit(&client->connected, 0, memory_order_relaxed);
    /* Queued frames can never be sent now. */
    syn_ring_cursor cursor = syn_ring_read_begin(client->queue);
    syn_span spans[2];
    while (syn_ring_read_next(client->queue, &cursor, spans) >= 0) {
    }
    syn_ring_release_to(client->queue, cursor.pos);
    client->front_sent = 0;
    atomic_store_explicit(&client->bytes_queued, 0, memory_order_relaxed);
}

int syn_client_has_output(const syn_client *client) {
    return !client->closed && syn_ring_used_bytes(client->queue) != 0;
}

void syn_client_flush(syn_client *client) {
    if (client->closed || !client->writable) {
        return;
    }
    syn_io_progress progress = {0, 0};
    int err = 0;
    syn_io_status status =
        syn_write_records(client->fd, client->queue, &client->front_sent, &progress, &err);
    syn_counter_add(&client->frames_sent, progress.frames);
    syn_counter_add(&client->bytes_sent, progress.bytes);
    syn_counter_add(&client->bytes_queued, (uint64_t)0 - progress.bytes);
    if (status == SYN_IO_BLOCKED) {
        client->writable = 0;
    } else if (status == SYN_IO_ERROR) {
        char reason[SYN_REASON_MAX];
        syn_format_errno(reason, sizeof reason, "write failed", err);
        syn_client_close(client, "%s", reason);
    }
}

/* Writes a large frame straight from the producer's ring when nothing is queued ahead of it
 * (a client that keeps up), saving a copy into the queue. Returns the bytes the socket took, or
 * -1 if the client was closed. */
static ssize_t send_direct(syn_client *client, const syn_span *frame) {
    struct iovec iov[2] = {{(void *)frame[0].base, frame[0].len},
                           {(void *)frame[1].base, frame[1].len}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = frame[1].len != 0 ? 2 : 1};
    ssize_t n;
    do {
        n = sendmsg(client->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        client->writable = 0;
        return 0;
    }
    char reason[SYN_REASON_MAX];
    syn_format_errno(reason, sizeof reason, "write failed", errno);
    syn_client_close(client, "%s", reason);
    return -1;
}

int syn_client_enqueue(syn_client *client, const syn_span *frame, size_t len) {
    if (client->closed) {
        return 0;
    }
    if (len >= SYN_DIRECT_SEND_MIN && client->writable && syn_ring_used_bytes(client->queue) == 0) {
        ssize_t sent = send_direct(client, frame);
        if (sent < 0) {
            return 0;
        }
        syn_counter_add(&client->bytes_sent, (uint64_t)sent);
        if ((size_t)sent == len) {
            syn_counter_add(&client->frames_sent, 1);
            return 1;
        }
        /* The rest waits in the queue: the whole frame, marked as partly written. It fits,
         * since the queue is empty and frames are no longer than its longest record. */
        syn_ring_push2(client->queue, frame[0].base, frame[0].len, frame[1].base, frame[1].len);
        client->front_sent = (size_t)sent;
        client->writable = 0; /* the socket buffer is full */
        syn_counter_add(&client->bytes_queued, len - (size_t)sent);
        return 1;
    }
    int rc =
        syn_ring_push2(client->queue, frame[0].base, frame[0].len, frame[1].base, frame[1].len);
    if (rc == SYN_EFULL && client->writable) {
        syn_client_flush(client); /* make room if the socket takes more */
        if (client->closed) {
            return 0;
        }
        rc =
            syn_ring_push2(client->queue, frame[0].base, frame[0].len, frame[1].base, frame[1].len);
    }
    if (rc != SYN_OK) {
        syn_counter_add(&client->frames_dropped, 1);
        return 0;
    }
    syn_counter_add(&client->bytes_queued, len);
    return 1;
}

#define ERROR_MSG_TYPE  8 /* ERROR (docs/PROTOCOL.md, 5.8) */
#define ERROR_MALFORMED 3
#define ERROR_FIXED     8 /* code, text_len, reserved */

static void put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v) {
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

/* Best effort, never blocking: tell a client whose frame header failed the checks why, with an
 * ERROR MALFORMED frame (docs/PROTOCOL.md, section 7), before it is closed. Only when nothing
 * is queued ahead of it (after one flush), so that the ERROR never lands inside another frame. */
static void send_malformed(syn_client *client, const char *reason) {
    syn_client_flush(client);
    if (client->closed || syn_ring_used_bytes(client->queue) != 0) {
        return;
    }
    uint8_t frame[SYN_FRAME_HEADER_SIZE + ERROR_FIXED + SYN_REASON_MAX + 8] = {0};
    size_t text_len = strlen(reason); /* ASCII, shorter than SYN_REASON_MAX */
    size_t payload = ERROR_FIXED + ((text_len + 7) & ~(size_t)7);
    put_le32(frame, SYN_FRAME_MAGIC);
    put_le16(frame + 4, SYN_PROTOCOL_VERSION);
    put_le16(frame + 6, ERROR_MSG_TYPE);
    put_le32(frame + SYN_FRAME_LENGTH_OFFSET, (uint32_t)payload);
    put_le32(frame + SYN_FRAME_HEADER_SIZE, ERROR_MALFORMED);
    put_le16(frame + SYN_FRAME_HEADER_SIZE + 4, (uint16_t)text_len);
    memcpy(frame + SYN_FRAME_HEADER_SIZE + ERROR_FIXED, reason, text_len);
    ssize_t n;
    do {
        n = send(client->fd, frame, SYN_FRAME_HEADER_SIZE + payload, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
}

/* Called once the 32-byte header is in: check it and make room for the whole frame. */
static int accept_header(syn_client *client, uint32_t max_payload) {
    uint32_t payload_len;
    char reason[SYN_REASON_MAX];
    if (syn_frame_check_header(client->frame, max_payload, &payload_len, reason, sizeof reason) !=
        SYN_OK) {
        send_malformed(client, reason);
        syn_client_close(client, "%s", reason);
        return 0;
    }
    size_t frame_len = SYN_FRAME_HEADER_SIZE + (size_t)payload_len;
    if (frame_len > client->frame_cap) {
        uint8_t *bigger = realloc(client->frame, frame_len);
        if (bigger == NULL) {
            syn_client_close(client, "out of memory for a %zu-byte frame", frame_len);
            return 0;
        }
        client->frame = bigger;
        client->frame_cap = frame_len;
    }
    client->frame_len = frame_len;
    return 1;
}

void syn_client_read(syn_client *client, uint32_t max_payload) {
    while (!client->closed && !client->frame_ready) {
        size_t want = client->frame_len == 0 ? SYN_FRAME_HEADER_SIZE : client->frame_len;
        ssize_t n =
            recv(client->fd, client->frame + client->have, want - client->have, MSG_DONTWAIT);
        if (n == 0) {
            syn_client_close(client, client->have == 0 ? "peer closed the connection"
                                                       : "peer closed the connection mid-frame");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                char reason[SYN_REASON_MAX];
                syn_format_errno(reason, sizeof reason, "read failed", errno);
                syn_client_close(client, "%s", reason);
            }
            return;
        }
        client->have += (size_t)n;
        if (client->frame_len == 0 && client->have == SYN_FRAME_HEADER_SIZE &&
            !accept_header(client, max_payload)) {
            return;
        }
        if (client->frame_len != 0 && client->have == client->frame_len) {
            client->frame_ready = 1;
        }
    }
}

void syn_client_frame_delivered(syn_client *client) {
    client->frame_ready = 0;
    client->have = 0;
    client->frame_len = 0;
    syn_counter_add(&client->frames_received, 1);
}
