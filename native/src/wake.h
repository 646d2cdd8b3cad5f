/* Sleeping and waking a thread without a syscall on the waker's fast path.
 *
 * A sleeper blocks in poll() on an eventfd; a waker writes to the eventfd only when the sleeper
 * has announced that it is about to sleep. The handshake is Dekker's:
 *   sleeper: sleeping = 1;  seq_cst fence;  re-check its condition;  poll(...)
 *   waker:   make the condition true;  seq_cst fence;  if (sleeping) write(eventfd)
 * The two fences are ordered with respect to each other, so at least one side sees the other's
 * store: either the sleeper sees the new condition and skips the poll, or the waker sees the flag
 * and writes, which makes the poll return. Without the fences each side's load could be satisfied
 * before its own store became visible (store buffering) and the wake-up would be lost.
 */
#ifndef SYN_WAKE_H
#define SYN_WAKE_H

#include <stdatomic.h>

typedef struct {
    int fd;               /* eventfd the sleeper polls for POLLIN */
    _Atomic int sleeping; /* 1 between syn_waiter_prepare and syn_waiter_finish */
} syn_waiter;

/* Returns 0 or -1 with errno set. */
int syn_waiter_init(syn_waiter *waiter);
void syn_waiter_destroy(syn_waiter *waiter);

/* Sleeper: announce, then re-check the condition before polling waiter->fd. */
void syn_waiter_prepare(syn_waiter *waiter);
/* Sleeper: after poll() returned; clears the flag and drains the eventfd. */
void syn_waiter_finish(syn_waiter *waiter);

/* Waker: call after making the sleeper's condition true. */
void syn_waiter_notify(syn_waiter *waiter);
/* Waker: unconditional wake-up, for rare events such as shutdown. */
void syn_waiter_kick(syn_waiter *waiter);

/* Sleeper, the whole loop: returns state(ctx) as soon as it is non-zero, or 0 once timeout_ms
 * has passed (timeout_ms < 0 waits forever). state is re-checked after every wake-up and after
 * announcing the sleep, so a notify between the check and the poll is never lost. */
int syn_waiter_wait(syn_waiter *waiter, int timeout_ms, int (*state)(void *ctx), void *ctx);

#endif
