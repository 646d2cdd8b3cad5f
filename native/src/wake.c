/* The eventfd side of syn_waiter (the handshake is explained in wake.h). */
#include "wake.h"

#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

int syn_waiter_init(syn_waiter *waiter) {
    atomic_init(&waiter->sleeping, 0);
    waiter->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return waiter->fd < 0 ? -1 : 0;
}

void syn_waiter_destroy(syn_waiter *waiter) {
    if (waiter->fd >= 0) {
        close(waiter->fd);
        waiter->fd = -1;
    }
}

void syn_waiter_prepare(syn_waiter *waiter) {
    atomic_store_explicit(&waiter->sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
}

void syn_waiter_finish(syn_waiter *waiter) {
    atomic_store_explicit(&waiter->sleeping, 0, memory_order_relaxed);
    uint64_t count;
    /* Non-blocking: fails with EAGAIN when nobody wrote, which is fine. */
    ssize_t ignored = read(waiter->fd, &count, sizeof count);
    (void)ignored;
}

void syn_waiter_kick(syn_waiter *waiter) {
    uint64_t one = 1;
    /* Can only fail when the counter is about to overflow, i.e. a wake-up is pending anyway. */
    ssize_t ignored = write(waiter->fd, &one, sizeof one);
    (void)ignored;
}

void syn_waiter_notify(syn_waiter *waiter) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&waiter->sleeping, memory_order_relaxed)) {
        syn_waiter_kick(waiter);
    }
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int syn_waiter_wait(syn_waiter *waiter, int timeout_ms, int (*state)(void *ctx), void *ctx) {
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int now = state(ctx);
        if (now != 0) {
            return now;
        }
        int64_t left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left <= 0) {
            return 0;
        }
        syn_waiter_prepare(waiter);
        if (state(ctx) == 0) {
            struct pollfd pfd = {.fd = waiter->fd, .events = POLLIN};
            poll(&pfd, 1, left < 0 ? -1 : (int)left);
        }
        syn_waiter_finish(waiter);
    }
}
