/* The receiver pump's public API: lifecycle, send, drain/wait, stats. The thread is in
 * receiver_loop.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "receiver_impl.h"
#include "sockio.h"
#include "thread.h"

static void destroy(syn_receiver *r) {
    syn_waiter_destroy(&r->pump_waiter);
    syn_waiter_destroy(&r->data_waiter);
    pthread_mutex_destroy(&r->close_lock);
    syn_ring_free(r->in);
    syn_ring_free(r->out);
    free(r->stage);
    free(r);
}

int syn_receiver_new(int fd, uint64_t ring_capacity, uint32_t max_payload, syn_receiver **out) {
    if (out == NULL || fd < 0 || !syn_is_valid_ring_capacity(ring_capacity) ||
        SYN_FRAME_HEADER_SIZE + (uint64_t)max_payload >
            ring_capacity - SYN_RING_RECORD_ALIGN /* the ring's longest record */) {
        return SYN_EINVAL;
    }
    syn_receiver *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return SYN_ENOMEM;
    }
    r->fd = fd;
    r->max_payload = max_payload;
    r->pump_waiter.fd = -1;
    r->data_waiter.fd = -1;
    pthread_mutex_init(&r->close_lock, NULL);
    int rc = syn_ring_new(ring_capacity, &r->in);
    if (rc == SYN_OK) {
        rc = syn_ring_new(SYN_RECEIVER_OUTBOUND_BYTES, &r->out);
    }
    if (rc == SYN_OK && (r->stage = malloc(SYN_STAGE_BYTES)) == NULL) {
        rc = SYN_ENOMEM;
    }
    if (rc == SYN_OK &&
        (syn_waiter_init(&r->pump_waiter) != 0 || syn_waiter_init(&r->data_waiter) != 0)) {
        rc = SYN_ESYS;
    }
    if (rc == SYN_OK) {
        rc = syn_prepare_socket(fd);
    }
    if (rc == SYN_OK && syn_start_thread(&r->thread, "syn-receiver", syn_receiver_main, r) != 0) {
        rc = SYN_ESYS;
    }
    if (rc != SYN_OK) {
        destroy(r); /* the caller keeps fd */
        return rc;
    }
    r->max_out_frame = syn_ring_max_record(r->out);
    *out = r;
    return SYN_OK;
}

void syn_receiver_close(syn_receiver *r) {
    pthread_mutex_lock(&r->close_lock);
    if (!r->joined) {
        atomic_store_explicit(&r->stop, 1, memory_order_release);
        syn_waiter_kick(&r->pump_waiter);
        pthread_join(r->thread, NULL);
        r->joined = 1;
    }
    pthread_mutex_unlock(&r->close_lock);
}

void syn_receiver_free(syn_receiver *r) {
    if (r != NULL) {
        syn_receiver_close(r);
        destroy(r);
    }
}

static int is_closed(syn_receiver *r) {
    return atomic_load_explicit(&r->state, memory_order_acquire) == SYN_STREAM_CLOSED;
}

int syn_receiver_send(syn_receiver *r, const void *frame, size_t len) {
    if (len > r->max_out_frame) {
        return SYN_ETOOBIG;
    }
    if (is_closed(r) || atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        return SYN_ECLOSED;
    }
    int rc = syn_ring_push(r->out, frame, len);
    if (rc == SYN_OK) {
        syn_waiter_notify(&r->pump_waiter);
    }
    return rc;
}

/* Dekker handshake (wake.h): the consumer released ring space before this fence, the pump
 * raised "I want room" and its sleeping flag before its own. */
static void room_made(syn_receiver *r) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->pump_wants_room, memory_order_relaxed) &&
        atomic_load_explicit(&r->pump_waiter.sleeping, memory_order_relaxed)) {
        syn_waiter_kick(&r->pump_waiter);
    }
}

int64_t syn_receiver_drain(syn_receiver *r, void *out, size_t cap, size_t max_frames,
                           size_t *out_used) {
    int64_t count = syn_ring_pop_batch(r->in, out, cap, max_frames, out_used);
    if (count > 0) {
        room_made(r);
    }
    return count;
}

int64_t syn_receiver_peek_batch(syn_receiver *r, uint64_t *out, size_t max_frames) {
    return syn_ring_peek_batch(r->in, out, max_frames);
}

int syn_receiver_consume(syn_receiver *r, size_t count) {
    int rc = syn_ring_consume(r->in, count);
    if (rc == SYN_OK && count > 0) {
        room_made(r);
    }
    return rc;
}

const void *syn_receiver_storage(const syn_receiver *r) {
    return syn_ring_storage(r->in);
}

uint64_t syn_receiver_ring_capacity(const syn_receiver *r) {
    return syn_ring_capacity(r->in);
}

int64_t syn_receiver_peek_len(syn_receiver *r) {
    return syn_ring_peek_len(r->in);
}

/* 1 when a frame waits, SYN_ECLOSED when closed and drained, else 0. */
static int data_state(syn_receiver *r) {
    if (syn_ring_peek_len(r->in) >= 0) {
        return 1;
    }
    if (is_closed(r)) {
        /* Frames pushed before the close are visible after its acquire: look once more. */
        return syn_ring_peek_len(r->in) >= 0 ? 1 : SYN_ECLOSED;
    }
    return 0;
}

static int data_state_of(void *receiver) {
    return data_state(receiver);
}

int syn_receiver_wait(syn_receiver *r, int timeout_ms) {
    return syn_waiter_wait(&r->data_waiter, timeout_ms, data_state_of, r);
}

static uint64_t load(_Atomic uint64_t *counter) {
    return atomic_load_explicit(counter, memory_order_relaxed);
}

void syn_receiver_stats_get(syn_receiver *r, syn_receiver_stats *stats) {
    *stats = (syn_receiver_stats){
        .frames_in = load(&r->frames_in),
        .bytes_in = load(&r->bytes_in),
        .frames_out = load(&r->frames_out),
        .bytes_out = load(&r->bytes_out),
        .ring_used_bytes = syn_ring_used_bytes(r->in),
        .ring_capacity = syn_ring_capacity(r->in),
        .state = atomic_load_explicit(&r->state, memory_order_acquire),
    };
}

void syn_receiver_close_reason(syn_receiver *r, char *buf, size_t cap) {
    if (cap == 0) {
        return;
    }
    if (!is_closed(r)) {
        buf[0] = '\0';
        return;
    }
    snprintf(buf, cap, "%s", r->reason);
}
