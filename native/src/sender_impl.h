/* The sender pump's state, shared by its public API (sender.c) and its thread (sender_loop.c).
 *
 * Threads: one producer (broadcast/send_to), one event consumer (pop_event/wait_event), the pump
 * thread, and any thread for add_client/remove_client/stats/stop.
 *
 * Add/remove ordering. add_client appends a command under commands_lock and only then returns
 * the id, so a send_to for that id is pushed into the ring after the command exists. When the
 * pump meets a target it does not know, it applies pending commands before giving up: the
 * ring's acquire (C1) of that record happens after the producer's release (P2), which comes
 * after the mutex unlock that published the command, so the command is visible by then.
 *
 * Exact joins. A new client gets exactly the broadcasts pushed after add_client returned (when
 * the caller orders add_client with the producer, as the probe's server does under its publisher
 * lock): add_client stamps the client with `pushed`, the count of records in the ring so far,
 * and the pump, which counts the records it routes in `routed`, gives a broadcast to a client
 * only from that record on. Before routing a broadcast the pump applies pending commands, so a
 * client is never linked too late for a broadcast pushed after its ADD (by the argument above);
 * linked early, it skips the records before its stamp.
 */
#ifndef SYN_SENDER_IMPL_H
#define SYN_SENDER_IMPL_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "pumps.h"
#include "ring_impl.h"
#include "wake.h"

/* A data-ring record is [u32 target client id, 0 = every client][frame bytes]. */
#define SYN_TARGET_ALL    0u
#define SYN_TARGET_PREFIX 4
/* An event-ring record is a syn_event followed by its payload. */
#define SYN_EVENT_PREFIX 8

typedef enum { SYN_COMMAND_ADD, SYN_COMMAND_REMOVE } syn_command_kind;

typedef struct {
    syn_command_kind kind;
    uint32_t client_id;
    syn_client *client; /* ADD: the client to link in (owns the fd) */
} syn_command;

struct syn_sender {
    syn_ring *ring;   /* producer -> pump: frames with their target */
    syn_ring *events; /* pump -> event consumer: inbound frames and close notices */
    uint64_t client_queue_bytes;
    uint32_t max_inbound_payload;
    uint64_t max_frame;

    pthread_t thread;
    pthread_mutex_t stop_lock; /* serialises stop/join */
    int joined;
    _Atomic int stop;
    _Atomic int pump_exited;

    syn_waiter pump_waiter;  /* the pump sleeps here: pushes, commands, event reads wake it */
    syn_waiter event_waiter; /* wait_event sleeps here: the pump wakes it */

    pthread_mutex_t commands_lock;
    syn_command *commands;
    size_t commands_len, commands_cap;
    _Atomic uint32_t last_id;
    _Atomic int commands_pending;

    /* The pump owns the array; it takes clients_lock to change its shape, stats to read it. */
    pthread_mutex_t clients_lock;
    syn_client **clients;
    size_t clients_len, clients_cap;

    struct pollfd *pollfds; /* pump only: [0] = pump_waiter.fd, [1 + i] = clients[i] */

    _Atomic uint64_t ring_drops;
    _Atomic uint64_t frames_unroutable;

    _Atomic uint64_t pushed; /* records the producer has put in the ring (exact joins) */
    uint64_t routed;         /* pump only: records it has taken out of the ring */
};

void *syn_sender_main(void *sender);

#endif
