/* The sender pump thread: route ring records into client queues, write them, read inbound
 * frames, report events, sleep in poll() when there is nothing to do. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "sender_impl.h"
#include "spans.h"

/* Ring records routed before the pump looks at its sockets again. */
#define ROUTE_BATCH 256
/* Inbound frames taken from one client per wake-up, so a chatty client cannot starve others. */
#define FRAMES_PER_READ 16

/* ---- the client list ---------------------------------------------------------------------- */

static syn_client *find_client(syn_sender *s, uint32_t id) {
    for (size_t i = 0; i < s->clients_len; i++) {
        if (s->clients[i]->id == id) {
            return s->clients[i];
        }
    }
    return NULL;
}

static int link_client(syn_sender *s, syn_client *client) {
    if (s->clients_len == s->clients_cap) {
        size_t cap = s->clients_cap == 0 ? 8 : 2 * s->clients_cap;
        struct pollfd *pollfds = realloc(s->pollfds, (1 + cap) * sizeof *pollfds);
        if (pollfds == NULL) {
            return 0;
        }
        s->pollfds = pollfds;
        pthread_mutex_lock(&s->clients_lock);
        syn_client **clients = realloc(s->clients, cap * sizeof *clients);
        if (clients != NULL) {
            s->clients = clients;
            s->clients_cap = cap;
        }
        pthread_mutex_unlock(&s->clients_lock);
        if (clients == NULL) {
            return 0;
        }
    }
    pthread_mutex_lock(&s->clients_lock);
    s->clients[s->clients_len++] = client;
    pthread_mutex_unlock(&s->clients_lock);
    return 1;
}

/* Frees clients[index]; the last client takes its place. */
static void unlink_client(syn_sender *s, size_t index) {
    syn_client *client = s->clients[index];
    pthread_mutex_lock(&s->clients_lock);
    s->clients[index] = s->clients[--s->clients_len];
    pthread_mutex_unlock(&s->clients_lock);
    syn_client_free(client);
}

static void apply_commands(syn_sender *s) {
    pthread_mutex_lock(&s->commands_lock);
    syn_command *commands = s->commands;
    size_t count = s->commands_len;
    s->commands = NULL;
    s->commands_len = s->commands_cap = 0;
    atomic_store_explicit(&s->commands_pending, 0, memory_order_relaxed);
    pthread_mutex_unlock(&s->commands_lock);

    for (size_t i = 0; i < count; i++) {
        if (commands[i].kind == SYN_COMMAND_ADD) {
            if (!link_client(s, commands[i].client)) {
                syn_client_free(commands[i].client); /* out of memory: drop the connection */
            }
            continue;
        }
        for (size_t j = 0; j < s->clients_len; j++) {
            if (s->clients[j]->id == commands[i].client_id) {
                unlink_client(s, j);
                break;
            }
        }
    }
    free(commands);
}

static int commands_pending(syn_sender *s) {
    return atomic_load_explicit(&s->commands_pending, memory_order_acquire);
}

/* ---- events ------------------------------------------------------------------------------- */

static int push_event(syn_sender *s, uint32_t kind, uint32_t client_id, const void *payload,
                      size_t len) {
    syn_event event = {.kind = kind, .client_id = client_id};
    return syn_ring_push2(s->events, &event, sizeof event, payload, len) == SYN_OK;
}

static size_t pending_event_size(const syn_client *c) {
    return SYN_EVENT_PREFIX + (c->frame_ready ? c->frame_len : strlen(c->reason));
}

/* Delivers what the client holds back (a frame, then its close notice). Returns 1 if the client
 * is finished and should be unlinked. */
static int deliver(syn_sender *s, syn_client *c, int *delivered) {
    if (c->frame_ready) {
        if (!push_event(s, SYN_EVENT_FRAME, c->id, c->frame, c->frame_len)) {
            return 0;
        }
        syn_client_frame_delivered(c);
        *delivered = 1;
    }
    if (c->closed) {
        if (!push_event(s, SYN_EVENT_CLOSED, c->id, c->reason, strlen(c->reason))) {
            return 0;
        }
        *delivered = 1;
        return 1;
    }
    return 0;
}

static void deliver_pending(syn_sender *s) {
    int delivered = 0;
    for (size_t i = s->clients_len; i-- > 0;) {
        syn_client *c = s->clients[i];
        if ((c->frame_ready || c->closed) && deliver(s, c, &delivered)) {
            unlink_client(s, i);
        }
    }
    if (delivered) {
        syn_waiter_notify(&s->event_waiter);
    }
}

static int pending_event_fits(syn_sender *s) {
    for (size_t i = 0; i < s->clients_len; i++) {
        syn_client *c = s->clients[i];
        if ((c->frame_ready || c->closed) && syn_ring_has_room(s->events, pending_event_size(c))) {
            return 1;
        }
    }
    return 0;
}

/* ---- routing ------------------------------------------------------------------------------ */

static void route_frame(syn_sender *s, uint32_t target, const syn_span *frame, size_t len) {
    uint64_t record = s->routed++;
    if (target == SYN_TARGET_ALL) {
        if (commands_pending(s)) {
            apply_commands(s); /* a client added before this frame was pushed gets it */
        }
        for (size_t i = 0; i < s->clients_len; i++) {
            if (record >= s->clients[i]->first_record) {
                syn_client_enqueue(s->clients[i], frame, len);
            }
        }
        return;
    }
    syn_client *client = find_client(s, target);
    if (client == NULL && commands_pending(s)) {
        apply_commands(s); /* the client may have been added just before this frame */
        client = find_client(s, target);
    }
    if (client == NULL || client->closed) {
        atomic_fetch_add_explicit(&s->frames_unroutable, 1, memory_order_relaxed);
        return;
    }
    syn_client_enqueue(client, frame, len);
}

/* Routes up to ROUTE_BATCH records; returns 1 if it stopped at the limit (more may wait). */
static int route_records(syn_sender *s) {
    for (int routed = 0; routed < ROUTE_BATCH; routed++) {
        syn_ring_cursor cursor = syn_ring_read_begin(s->ring);
        syn_span record[2], frame[2];
        int64_t len = syn_ring_read_next(s->ring, &cursor, record);
        if (len < 0) {
            return 0;
        }
        uint32_t target;
        syn_spans_copy(record, 0, &target, sizeof target);
        syn_spans_skip(record, SYN_TARGET_PREFIX, frame);
        route_frame(s, target, frame, (size_t)len - SYN_TARGET_PREFIX);
        syn_ring_release_to(s->ring, cursor.pos);
    }
    return 1;
}

/* ---- sockets ------------------------------------------------------------------------------ */

static void flush_clients(syn_sender *s) {
    for (size_t i = 0; i < s->clients_len; i++) {
        if (syn_client_has_output(s->clients[i])) {
            syn_client_flush(s->clients[i]);
        }
    }
}

static void read_client(syn_sender *s, syn_client *c) {
    int delivered = 0;
    for (int frames = 0; frames < FRAMES_PER_READ; frames++) {
        syn_client_read(c, s->max_inbound_payload);
        if (!c->frame_ready) {
            break;
        }
        /* The frame goes out now; a close notice waits for deliver_pending (it unlinks). */
        if (!push_event(s, SYN_EVENT_FRAME, c->id, c->frame, c->frame_len)) {
            break;
        }
        syn_client_frame_delivered(c);
        delivered = 1;
    }
    if (delivered) {
        syn_waiter_notify(&s->event_waiter);
    }
}

static short client_events(const syn_client *c) {
    if (c->closed) {
        return 0;
    }
    short events = c->frame_ready ? 0 : POLLIN; /* a held-back frame pauses reading */
    if (!c->writable && syn_client_has_output(c)) {
        events |= POLLOUT;
    }
    return events;
}

/* Whether something is waiting that poll() would not report. */
static int work_waiting(syn_sender *s) {
    return atomic_load_explicit(&s->stop, memory_order_acquire) || commands_pending(s) ||
           syn_ring_peek_len(s->ring) >= 0 || pending_event_fits(s);
}

static void poll_clients(syn_sender *s, int busy) {
    size_t count = 1 + s->clients_len;
    struct pollfd *pfd = s->pollfds;
    pfd[0] = (struct pollfd){.fd = s->pump_waiter.fd, .events = POLLIN};
    for (size_t i = 0; i < s->clients_len; i++) {
        short events = client_events(s->clients[i]);
        pfd[1 + i] = (struct pollfd){.fd = events ? s->clients[i]->fd : -1, .events = events};
    }
    int timeout = busy ? 0 : -1;
    if (!busy) {
        syn_waiter_prepare(&s->pump_waiter); /* Dekker handshake: see wake.h */
        if (work_waiting(s)) {
            timeout = 0;
        }
    }
    int ready = poll(pfd, count, timeout);
    if (!busy) {
        syn_waiter_finish(&s->pump_waiter);
    }
    if (ready <= 0) {
        return;
    }
    for (size_t i = 0; i < s->clients_len; i++) {
        syn_client *c = s->clients[i];
        short revents = pfd[1 + i].revents;
        if (pfd[1 + i].fd < 0 || revents == 0) {
            continue;
        }
        if (revents & POLLOUT) {
            c->writable = 1;
        }
        if ((revents & (POLLERR | POLLHUP)) && c->frame_ready) {
            /* Not reading until the held frame is delivered, so close now rather than spin. */
            syn_client_close(c, "peer closed the connection");
        } else if (revents & (POLLIN | POLLERR | POLLHUP)) {
            read_client(s, c);
        }
    }
}

void *syn_sender_main(void *arg) {
    syn_sender *s = arg;
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        if (commands_pending(s)) {
            apply_commands(s);
        }
        int busy = route_records(s);
        deliver_pending(s);
        flush_clients(s);
        poll_clients(s, busy);
    }
    atomic_store_explicit(&s->pump_exited, 1, memory_order_release);
    syn_waiter_kick(&s->event_waiter);
    return NULL;
}
