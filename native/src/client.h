/* One connected client of the sender pump: its bounded outbound queue, its partial-write
 * progress, the inbound frame it is assembling, and its counters. Used by the pump thread only,
 * except the counters, which stats readers load under the sender's clients lock. */
#ifndef SYN_CLIENT_H
#define SYN_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "ring_impl.h"

typedef struct {
    uint32_t id;
    uint64_t first_record; /* broadcasts routed before this ring record are not for it */
    int fd;                /* -1 once closed */
    syn_ring *queue;   /* whole frames waiting to be written; the pump is producer and consumer */
    size_t front_sent; /* bytes of the oldest queued frame already written */
    int writable;      /* 0 from EAGAIN until poll() reports POLLOUT */

    /* Inbound: the header is read first (into frame[0..32)), checked, then the payload. */
    uint8_t *frame;
    size_t frame_cap;
    size_t have;      /* bytes of the current frame read so far */
    size_t frame_len; /* 0 until the header has been checked */
    int frame_ready;  /* a whole frame waits to be delivered as an event */

    /* Closing: the fd is gone, a "closed" event waits to be delivered with this reason. */
    int closed;
    char reason[SYN_REASON_MAX];
    _Atomic int connected; /* 1 until closed; what stats readers may look at */

    _Atomic uint64_t frames_sent;
    _Atomic uint64_t frames_dropped;
    _Atomic uint64_t bytes_sent;
    _Atomic uint64_t bytes_queued;
    _Atomic uint64_t frames_received;
} syn_client;

/* Allocates a client for fd with a queue of queue_bytes; does not take fd on failure. */
int syn_client_new(uint32_t id, int fd, uint64_t queue_bytes, syn_client **out);
/* Closes the fd if still open and frees everything. */
void syn_client_free(syn_client *client);

/* Queues one frame (given as two spans), or writes a large one at once when nothing waits
 * ahead of it; flushes first when the queue is full, and drops the frame (counted) when it still
 * does not fit. Returns 1 if the frame was written or queued. */
int syn_client_enqueue(syn_client *client, const syn_span *frame, size_t len);
/* Writes queued frames until the socket would block; closes the client on a socket error. */
void syn_client_flush(syn_client *client);
int syn_client_has_output(const syn_client *client);

/* Reads until a whole frame is ready (frame_ready), the socket would block, or the client is
 * closed (EOF, error or a header that fails the checks). */
void syn_client_read(syn_client *client, uint32_t max_payload);
/* Forgets the delivered frame so that reading can resume. */
void syn_client_frame_delivered(syn_client *client);

/* Shuts the socket, drops queued frames, and records why (printf-style). */
void syn_client_close(syn_client *client, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Single-writer counter update: a plain load and store, no locked instruction. */
static inline void syn_counter_add(_Atomic uint64_t *counter, uint64_t n) {
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

#endif
