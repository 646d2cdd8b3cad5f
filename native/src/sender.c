/* The sender pump's public API: lifecycle, clients, producing frames, consuming events, stats.
 * The pump thread itself is in sender_loop.c. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "sender_impl.h"
#include "sockio.h"
#include "spans.h"
#include "thread.h"

/* The event ring holds at least this many of the largest events, and at least 1 MiB. */
#define EVENTS_OF_MAX_SIZE  4
#define MIN_EVENT_RING_SIZE (1u << 20)

static uint64_t next_power_of_two(uint64_t n) {
    uint64_t p = 1;
    while (p < n) {
        p <<= 1;
    }
    return p;
}

static void destroy(syn_sender *s) {
    for (size_t i = 0; i < s->clients_len; i++) {
        syn_client_free(s->clients[i]);
    }
    for (size_t i = 0; i < s->commands_len; i++) {
        syn_client_free(s->commands[i].client); /* an ADD the pump never applied */
    }
    free(s->clients);
    free(s->commands);
    free(s->pollfds);
    syn_waiter_destroy(&s->pump_waiter);
    syn_waiter_destroy(&s->event_waiter);
    pthread_mutex_destroy(&s->commands_lock);
    pthread_mutex_destroy(&s->clients_lock);
    pthread_mutex_destroy(&s->stop_lock);
    syn_ring_free(s->ring);
    syn_ring_free(s->events);
    free(s);
}

int syn_sender_new(uint64_t ring_capacity, uint64_t client_queue_bytes,
                   uint32_t max_inbound_payload, syn_sender **out) {
    if (out == NULL) {
        return SYN_EINVAL;
    }
    uint64_t largest_event = syn_ring_record_size(SYN_EVENT_PREFIX + SYN_FRAME_HEADER_SIZE +
                                                  (uint64_t)max_inbound_payload);
    uint64_t events_size = next_power_of_two(largest_event * EVENTS_OF_MAX_SIZE);
    if (events_size < MIN_EVENT_RING_SIZE) {
        events_size = MIN_EVENT_RING_SIZE;
    }
    if (events_size > SYN_RING_MAX_CAPACITY) {
        return SYN_EINVAL;
    }
    syn_sender *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return SYN_ENOMEM;
    }
    s->pump_waiter.fd = -1;
    s->event_waiter.fd = -1;
    pthread_mutex_init(&s->commands_lock, NULL);
    pthread_mutex_init(&s->clients_lock, NULL);
    pthread_mutex_init(&s->stop_lock, NULL);
    int rc = syn_ring_new(ring_capacity, &s->ring);
    if (rc == SYN_OK) {
        rc = syn_ring_new(events_size, &s->events);
    }
    if (rc == SYN_OK && !syn_is_valid_ring_capacity(client_queue_bytes)) {
        rc = SYN_EINVAL;
    }
    if (rc == SYN_OK &&
        (syn_waiter_init(&s->pump_waiter) != 0 || syn_waiter_init(&s->event_waiter) != 0)) {
        rc = SYN_ESYS;
    }
    if (rc == SYN_OK && (s->pollfds = calloc(1, sizeof *s->pollfds)) == NULL) {
        rc = SYN_ENOMEM;
    }
    if (rc != SYN_OK) {
        destroy(s);
        return rc;
    }
    s->client_queue_bytes = client_queue_bytes;
    s->max_inbound_payload = max_inbound_payload;
    uint64_t ring_max = syn_ring_max_record(s->ring) - SYN_TARGET_PREFIX;
    uint64_t queue_max = client_queue_bytes - SYN_RING_RECORD_ALIGN;
    s->max_frame = ring_max < queue_max ? ring_max : queue_max;
    if (syn_start_thread(&s->thread, "syn-sender", syn_sender_main, s) != 0) {
        destroy(s);
        return SYN_ESYS;
    }
    *out = s;
    return SYN_OK;
}

void syn_sender_stop(syn_sender *s) {
    pthread_mutex_lock(&s->stop_lock);
    if (!s->joined) {
        atomic_store_explicit(&s->stop, 1, memory_order_release);
        syn_waiter_kick(&s->pump_waiter);
        pthread_join(s->thread, NULL);
        s->joined = 1;
    }
    pthread_mutex_unlock(&s->stop_lock);
    syn_waiter_kick(&s->event_waiter);
}

void syn_sender_free(syn_sender *s) {
    if (s != NULL) {
        syn_sender_stop(s);
        destroy(s);
    }
}

/* ---- clients ----------------------------------------------------------------------------- */

static int push_command(syn_sender *s, syn_command command) {
    if (s->commands_len == s->commands_cap) {
        size_t cap = s->commands_cap == 0 ? 8 : 2 * s->commands_cap;
        syn_command *bigger = realloc(s->commands, cap * sizeof *bigger);
        if (bigger == NULL) {
            return SYN_ENOMEM;
        }
        s->commands = bigger;
        s->commands_cap = cap;
    }
    s->commands[s->commands_len++] = command;
    atomic_store_explicit(&s->commands_pending, 1, memory_order_release);
    return SYN_OK;
}

int64_t syn_sender_add_client(syn_sender *s, int fd) {
    if (fd < 0) {
        return SYN_EINVAL;
    }
    if (atomic_load_explicit(&s->stop, memory_order_acquire)) {
        return SYN_ECLOSED;
    }
    int rc = syn_prepare_socket(fd);
    if (rc != SYN_OK) {
        return rc;
    }
    pthread_mutex_lock(&s->commands_lock);
    uint32_t id = atomic_load_explicit(&s->last_id, memory_order_relaxed) + 1;
    syn_client *client = NULL;
    rc = syn_client_new(id, fd, s->client_queue_bytes, &client);
    if (rc == SYN_OK) {
        client->first_record = atomic_load_explicit(&s->pushed, memory_order_relaxed);
        rc = push_command(s, (syn_command){SYN_COMMAND_ADD, id, client});
    }
    if (rc == SYN_OK) {
        atomic_store_explicit(&s->last_id, id, memory_order_release);
    } else if (client != NULL) {
        client->fd = -1; /* the caller keeps the fd on failure */
        syn_client_free(client);
    }
    pthread_mutex_unlock(&s->commands_lock);
    if (rc != SYN_OK) {
        return rc;
    }
    syn_waiter_notify(&s->pump_waiter);
    return id;
}

static int is_issued_id(syn_sender *s, uint32_t client_id) {
    return client_id != SYN_TARGET_ALL &&
           client_id <= atomic_load_explicit(&s->last_id, memory_order_acquire);
}

int syn_sender_remove_client(syn_sender *s, uint32_t client_id) {
    if (!is_issued_id(s, client_id)) {
        return SYN_ENOCLIENT;
    }
    pthread_mutex_lock(&s->commands_lock);
    int rc = push_command(s, (syn_command){SYN_COMMAND_REMOVE, client_id, NULL});
    pthread_mutex_unlock(&s->commands_lock);
    if (rc == SYN_OK) {
        syn_waiter_notify(&s->pump_waiter);
    }
    return rc;
}

/* ---- producer ---------------------------------------------------------------------------- */

static int produce(syn_sender *s, uint32_t target, const void *frame, size_t len) {
    if (atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        return SYN_ECLOSED;
    }
    if (len > s->max_frame) {
        return SYN_ETOOBIG;
    }
    int rc = syn_ring_push2(s->ring, &target, sizeof target, frame, len);
    if (rc == SYN_EFULL) {
        atomic_fetch_add_explicit(&s->ring_drops, 1, memory_order_relaxed);
        return rc;
    }
    if (rc == SYN_OK) {
        atomic_fetch_add_explicit(&s->pushed, 1, memory_order_relaxed);
    }
    syn_waiter_notify(&s->pump_waiter); /* a syscall only when the pump is asleep */
    return rc;
}

int syn_sender_broadcast(syn_sender *s, const void *frame, size_t len) {
    return produce(s, SYN_TARGET_ALL, frame, len);
}

int64_t syn_sender_broadcast_packed(syn_sender *s, const void *frames, size_t frames_len,
                                    const uint32_t *lengths, size_t count) {
    if (atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        return SYN_ECLOSED;
    }
    if (count != 0 && lengths == NULL) {
        return SYN_EINVAL;
    }
    for (size_t i = 0; i < count; i++) {
        if (lengths[i] > s->max_frame) {
            return SYN_ETOOBIG; /* the ring checks its own limit; the client queues are smaller */
        }
    }
    uint32_t target = SYN_TARGET_ALL;
    int64_t pushed = syn_ring_push_packed_prefixed(s->ring, &target, sizeof target, frames,
                                                   frames_len, lengths, count);
    if (pushed < 0) {
        return pushed;
    }
    atomic_fetch_add_explicit(&s->pushed, (uint64_t)pushed, memory_order_relaxed);
    if ((size_t)pushed < count) {
        atomic_fetch_add_explicit(&s->ring_drops, count - (size_t)pushed, memory_order_relaxed);
    }
    if (pushed > 0) {
        syn_waiter_notify(&s->pump_waiter); /* once for the batch; a syscall only if it sleeps */
    }
    return pushed;
}

int syn_sender_send_to(syn_sender *s, uint32_t client_id, const void *frame, size_t len) {
    if (!is_issued_id(s, client_id)) {
        return SYN_ENOCLIENT;
    }
    return produce(s, client_id, frame, len);
}

uint64_t syn_sender_max_frame(const syn_sender *s) {
    return s->max_frame;
}

/* ---- events ------------------------------------------------------------------------------ */

uint64_t syn_sender_max_event(const syn_sender *s) {
    uint64_t max_frame = SYN_FRAME_HEADER_SIZE + (uint64_t)s->max_inbound_payload;
    return max_frame > SYN_REASON_MAX ? max_frame : SYN_REASON_MAX;
}

int64_t syn_sender_pop_event(syn_sender *s, syn_event *event, void *buf, size_t cap) {
    syn_ring_cursor cursor = syn_ring_read_begin(s->events);
    syn_span spans[2];
    int64_t len = syn_ring_read_next(s->events, &cursor, spans);
    if (len < 0) {
        return len;
    }
    size_t payload_len = (size_t)len - SYN_EVENT_PREFIX;
    if (payload_len > cap) {
        return SYN_ETOOSMALL;
    }
    syn_spans_copy(spans, 0, event, sizeof *event);
    syn_spans_copy(spans, SYN_EVENT_PREFIX, buf, payload_len);
    syn_ring_release_to(s->events, cursor.pos);
    /* The pump may be holding an event back for lack of room. */
    syn_waiter_notify(&s->pump_waiter);
    return (int64_t)payload_len;
}

/* 1 when an event waits, SYN_ECLOSED when the pump is gone and none waits, else 0. */
static int event_state(syn_sender *s) {
    if (syn_ring_peek_len(s->events) >= 0) {
        return 1;
    }
    if (atomic_load_explicit(&s->pump_exited, memory_order_acquire)) {
        /* The pump's last events were published before it exited: look once more. */
        return syn_ring_peek_len(s->events) >= 0 ? 1 : SYN_ECLOSED;
    }
    return 0;
}

static int event_state_of(void *sender) {
    return event_state(sender);
}

int syn_sender_wait_event(syn_sender *s, int timeout_ms) {
    return syn_waiter_wait(&s->event_waiter, timeout_ms, event_state_of, s);
}

/* ---- stats ------------------------------------------------------------------------------- */

static uint64_t load(_Atomic uint64_t *counter) {
    return atomic_load_explicit(counter, memory_order_relaxed);
}

int64_t syn_sender_stats_get(syn_sender *s, syn_sender_stats *stats, syn_client_stats *clients,
                             size_t max_clients) {
    stats->ring_drops = load(&s->ring_drops);
    stats->ring_used_bytes = syn_ring_used_bytes(s->ring);
    stats->ring_capacity = syn_ring_capacity(s->ring);
    stats->frames_unroutable = load(&s->frames_unroutable);
    size_t open = 0;
    pthread_mutex_lock(&s->clients_lock);
    for (size_t i = 0; i < s->clients_len; i++) {
        syn_client *c = s->clients[i];
        if (!atomic_load_explicit(&c->connected, memory_order_relaxed)) {
            continue; /* closed, its "closed" event not yet delivered */
        }
        if (open < max_clients) {
            clients[open] = (syn_client_stats){
                .client_id = c->id,
                .frames_sent = load(&c->frames_sent),
                .frames_dropped = load(&c->frames_dropped),
                .bytes_sent = load(&c->bytes_sent),
                .bytes_queued = load(&c->bytes_queued),
                .frames_received = load(&c->frames_received),
            };
        }
        open++;
    }
    pthread_mutex_unlock(&s->clients_lock);
    stats->clients = open;
    return (int64_t)open;
}
