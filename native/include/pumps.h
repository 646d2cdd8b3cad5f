/* The socket pumps: C threads that move frames between rings and sockets without the GIL.
 *
 * Declaration-only (read into ffi.cdef). Error codes are those of errors.h; frame constants are in
 * frame.h. Both pumps take ownership of a file descriptor only when they return SYN_OK.
 *
 * Sender (trainer side): one producer thread pushes frames with broadcast/send_to (never
 * blocking); the pump thread fans them out to per-client bounded queues and writes them, drops a
 * frame for a client whose queue is full, and reports frames read from clients and closed
 * clients as events. add_client/remove_client/stats may be called from any thread.
 *
 * Receiver (app side): the pump thread reads one connection, checks every frame header, and pushes
 * whole frames into a ring that one consumer thread drains; it stops reading while the ring is
 * full (TCP backpressure). send queues an outbound frame that the pump writes.
 */
#ifndef SYN_PUMPS_H
#define SYN_PUMPS_H

#include <stddef.h>
#include <stdint.h>

/* Event kinds reported by the sender. */
#define SYN_EVENT_FRAME  1 /* the payload is one whole frame read from the client */
#define SYN_EVENT_CLOSED 2 /* the payload is the reason text (no NUL); the client is gone */

/* Receiver states. */
#define SYN_STREAM_OPEN   0
#define SYN_STREAM_CLOSED 1

/* Bytes of the receiver's outbound ring (CONTROL frames are small). */
#define SYN_RECEIVER_OUTBOUND_BYTES 1048576

typedef struct syn_sender syn_sender;
typedef struct syn_receiver syn_receiver;

typedef struct {
    uint32_t kind;      /* SYN_EVENT_* */
    uint32_t client_id; /* the client it concerns */
} syn_event;

typedef struct {
    uint64_t ring_drops;        /* frames refused by broadcast/send_to because the ring was full */
    uint64_t ring_used_bytes;   /* bytes waiting in the ring for the pump */
    uint64_t ring_capacity;     /* the ring's size in bytes */
    uint64_t clients;           /* connected clients */
    uint64_t frames_unroutable; /* send_to frames whose client was gone when the pump saw them */
} syn_sender_stats;

typedef struct {
    uint64_t client_id;
    uint64_t frames_sent;     /* frames written completely to the socket */
    uint64_t frames_dropped;  /* frames dropped because the client's queue was full */
    uint64_t bytes_sent;      /* bytes written to the socket */
    uint64_t bytes_queued;    /* frame bytes waiting in the client's queue */
    uint64_t frames_received; /* frames read from the client and delivered as events */
} syn_client_stats;

typedef struct {
    uint64_t frames_in;       /* frames read and pushed into the ring */
    uint64_t bytes_in;        /* bytes of those frames */
    uint64_t frames_out;      /* frames written by send */
    uint64_t bytes_out;       /* bytes written by send */
    uint64_t ring_used_bytes; /* bytes waiting in the ring for drain */
    uint64_t ring_capacity;   /* the ring's size in bytes */
    uint32_t state;           /* SYN_STREAM_* */
    uint32_t reserved;
} syn_receiver_stats;

/* ---- sender ---- */

/* ring_capacity and client_queue_bytes are powers of two (see ring.h); frames read from clients
 * may carry at most max_inbound_payload payload bytes. Starts the pump thread. */
int syn_sender_new(uint64_t ring_capacity, uint64_t client_queue_bytes,
                   uint32_t max_inbound_payload, syn_sender **out);
/* Stops the thread (idempotent; any thread). Wakes wait_event callers. */
void syn_sender_stop(syn_sender *sender);
/* Stops, joins, closes every client; nobody may use the sender during or after this call. */
void syn_sender_free(syn_sender *sender);

/* Takes ownership of a connected stream socket and returns its client id (> 0). */
int64_t syn_sender_add_client(syn_sender *sender, int fd);
/* Closes and forgets a client (no event is reported for it). */
int syn_sender_remove_client(syn_sender *sender, uint32_t client_id);

/* Producer (one thread at a time). SYN_OK, SYN_EFULL (dropped and counted), SYN_ETOOBIG,
 * SYN_ENOCLIENT (an id never handed out) or SYN_ECLOSED. Never block. */
int syn_sender_broadcast(syn_sender *sender, const void *frame, size_t len);
int syn_sender_send_to(syn_sender *sender, uint32_t client_id, const void *frame, size_t len);
/* Producer, batched: broadcasts `count` frames laid end to end in `frames` (frame i is lengths[i]
 * bytes; frames_len is their sum) with one ring publication and at most one wake-up of the pump.
 * All or prefix, as syn_ring_push_packed: returns how many frames went in (0..count); the rest
 * did not fit the ring now and are dropped and counted in ring_drops. Before queueing anything:
 * SYN_ETOOBIG (a frame is longer than syn_sender_max_frame), SYN_EINVAL (the lengths do not add
 * up to frames_len) or SYN_ECLOSED. Never blocks. */
int64_t syn_sender_broadcast_packed(syn_sender *sender, const void *frames, size_t frames_len,
                                    const uint32_t *lengths, size_t count);
/* Longest frame broadcast/send_to accept. */
uint64_t syn_sender_max_frame(const syn_sender *sender);

/* Event consumer (one thread at a time). pop_event copies the oldest event's payload into buf and
 * returns its length, or SYN_EEMPTY / SYN_ETOOSMALL. wait_event returns 1 when an event is
 * waiting, 0 on timeout, SYN_ECLOSED once stopped and empty; timeout_ms < 0 waits forever. */
int64_t syn_sender_pop_event(syn_sender *sender, syn_event *event, void *buf, size_t cap);
int syn_sender_wait_event(syn_sender *sender, int timeout_ms);
/* Longest event payload pop_event can return. */
uint64_t syn_sender_max_event(const syn_sender *sender);

/* Fills *stats and up to max_clients entries of clients; returns the number of connected clients
 * (which may exceed max_clients). */
int64_t syn_sender_stats_get(syn_sender *sender, syn_sender_stats *stats, syn_client_stats *clients,
                             size_t max_clients);

/* ---- receiver ---- */

/* Takes ownership of a connected stream socket; frames may carry at most max_payload payload
 * bytes, and a whole frame must fit in the ring. Starts the pump thread. */
int syn_receiver_new(int fd, uint64_t ring_capacity, uint32_t max_payload, syn_receiver **out);
/* Shuts the connection down and joins the thread (idempotent; any thread). Frames already in
 * the ring can still be drained. */
void syn_receiver_close(syn_receiver *receiver);
/* Closes and frees; nobody may use the receiver during or after this call. */
void syn_receiver_free(syn_receiver *receiver);

/* Outbound producer (one thread at a time): SYN_OK, SYN_EFULL, SYN_ETOOBIG or SYN_ECLOSED. */
int syn_receiver_send(syn_receiver *receiver, const void *frame, size_t len);

/* Consumer (one thread at a time). drain works as syn_ring_pop_batch on the inbound ring.
 * wait returns 1 when a frame is waiting, 0 on timeout, SYN_ECLOSED when the stream is closed
 * and the ring is empty; timeout_ms < 0 waits forever. */
int64_t syn_receiver_drain(syn_receiver *receiver, void *out, size_t cap, size_t max_frames,
                           size_t *out_used);
int64_t syn_receiver_peek_len(syn_receiver *receiver);
/* Consumer, zero-copy: as syn_ring_peek_batch / syn_ring_consume / syn_ring_storage on the
 * inbound ring (consume also wakes the pump when it waits for room). */
int64_t syn_receiver_peek_batch(syn_receiver *receiver, uint64_t *out, size_t max_frames);
int syn_receiver_consume(syn_receiver *receiver, size_t count);
const void *syn_receiver_storage(const syn_receiver *receiver);
uint64_t syn_receiver_ring_capacity(const syn_receiver *receiver);
int syn_receiver_wait(syn_receiver *receiver, int timeout_ms);

/* Any thread. close_reason copies the NUL-terminated reason (empty while open) into buf. */
void syn_receiver_stats_get(syn_receiver *receiver, syn_receiver_stats *stats);
void syn_receiver_close_reason(syn_receiver *receiver, char *buf, size_t cap);

#endif
