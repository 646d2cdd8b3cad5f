/* The receiver pump thread: socket -> checked frames -> ring, and queued frames -> socket. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "client.h" /* syn_counter_add */
#include "frame_check.h"
#include "receiver_impl.h"
#include "sockio.h"

/* recv() calls before the pump turns to its outbound queue and the stop flag again. */
#define READS_PER_ROUND 64

typedef enum {
    IN_BLOCKED, /* the socket has nothing more: wait for POLLIN */
    IN_STALLED, /* the ring has no room for the next frame: wait for drain */
    IN_BUSY,    /* more may be readable right away */
    IN_CLOSED,  /* EOF, error or a bad header: reason is set */
} in_status;

static void set_reason(syn_receiver *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_reason(syn_receiver *r, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, args);
    va_end(args);
}

static in_status read_failed(syn_receiver *r, ssize_t n) {
    if (n == 0) {
        int mid_frame = r->direct || r->stage_end > r->stage_start;
        set_reason(r, mid_frame ? "peer closed the connection mid-frame"
                                : "peer closed the connection");
        return IN_CLOSED;
    }
    if (errno == EINTR) {
        return IN_BUSY;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return IN_BLOCKED;
    }
    syn_format_errno(r->reason, sizeof r->reason, "read failed", errno);
    return IN_CLOSED;
}

static void frame_pushed(syn_receiver *r, size_t len, int *pushed) {
    syn_counter_add(&r->frames_in, 1);
    syn_counter_add(&r->bytes_in, len);
    *pushed = 1;
}

/* Reads the rest of a large frame straight into its reserved ring record. */
static in_status read_direct(syn_receiver *r, int *pushed) {
    struct iovec iov[2];
    int count = 0;
    size_t skip = r->direct_have;
    for (int i = 0; i < 2; i++) {
        size_t len = r->direct_spans[i].len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        iov[count].iov_base = (uint8_t *)r->direct_spans[i].base + skip;
        iov[count].iov_len = len - skip;
        skip = 0;
        count++;
    }
    ssize_t n = readv(r->fd, iov, count);
    if (n <= 0) {
        return read_failed(r, n);
    }
    r->direct_have += (size_t)n;
    if (r->direct_have == r->direct_len) {
        syn_ring_commit(r->in);
        r->direct = 0;
        frame_pushed(r, r->direct_len, pushed);
    }
    return IN_BUSY;
}

/* Moves the whole frames of the staging buffer into the ring; a frame cut off at the end of the
 * staging buffer switches to direct reading. */
static in_status unstage(syn_receiver *r, int *pushed) {
    while (r->stage_end - r->stage_start >= SYN_FRAME_HEADER_SIZE) {
        const uint8_t *frame = r->stage + r->stage_start;
        uint32_t payload_len;
        if (syn_frame_check_header(frame, r->max_payload, &payload_len, r->reason,
                                   sizeof r->reason) != SYN_OK) {
            return IN_CLOSED;
        }
        size_t frame_len = SYN_FRAME_HEADER_SIZE + (size_t)payload_len;
        r->large_frames = frame_len >= SYN_DIRECT_READ_MIN;
        if (!syn_ring_has_room(r->in, frame_len)) {
            r->stalled_len = frame_len;
            return IN_STALLED;
        }
        size_t staged = r->stage_end - r->stage_start;
        if (staged >= frame_len) {
            syn_ring_push(r->in, frame, frame_len);
            r->stage_start += frame_len;
            frame_pushed(r, frame_len, pushed);
            continue;
        }
        syn_ring_reserve(r->in, frame_len, r->direct_spans); /* room was checked above */
        size_t first = staged < r->direct_spans[0].len ? staged : r->direct_spans[0].len;
        memcpy(r->direct_spans[0].base, frame, first);
        memcpy(r->direct_spans[1].base, frame + first, staged - first);
        r->direct = 1;
        r->direct_len = frame_len;
        r->direct_have = staged;
        r->stage_start = r->stage_end = 0;
        return IN_BUSY;
    }
    return IN_BUSY;
}

static in_status pump_inbound(syn_receiver *r) {
    in_status status = IN_BUSY;
    int pushed = 0;
    for (int round = 0; round < READS_PER_ROUND && status == IN_BUSY; round++) {
        if (r->direct) {
            status = read_direct(r, &pushed);
            continue;
        }
        status = unstage(r, &pushed);
        if (status != IN_BUSY || r->direct) {
            continue;
        }
        if (r->stage_start > 0) {
            memmove(r->stage, r->stage + r->stage_start, r->stage_end - r->stage_start);
            r->stage_end -= r->stage_start;
            r->stage_start = 0;
        }
        /* After a large frame, expect another: read a little, so that its header arrives in the
         * staging buffer and its payload goes straight into the ring (read_direct). */
        size_t room = SYN_STAGE_BYTES - r->stage_end;
        size_t want = r->large_frames && room > SYN_PEEK_READ ? SYN_PEEK_READ : room;
        ssize_t n = recv(r->fd, r->stage + r->stage_end, want, 0);
        if (n <= 0) {
            status = read_failed(r, n);
            continue;
        }
        r->stage_end += (size_t)n;
        if (pushed) {
            syn_waiter_notify(&r->data_waiter); /* let the consumer start on what we have */
            pushed = 0;
        }
    }
    if (pushed) {
        syn_waiter_notify(&r->data_waiter);
    }
    return status;
}

/* Writes queued outbound frames; returns the socket's state. */
static syn_io_status pump_outbound(syn_receiver *r) {
    syn_io_progress progress = {0, 0};
    int err = 0;
    syn_io_status status = syn_write_records(r->fd, r->out, &r->out_front_sent, &progress, &err);
    syn_counter_add(&r->frames_out, progress.frames);
    syn_counter_add(&r->bytes_out, progress.bytes);
    if (status == SYN_IO_ERROR) {
        syn_format_errno(r->reason, sizeof r->reason, "write failed", err);
    }
    return status;
}

/* Whether something is waiting that poll() would not report. */
static int work_waiting(syn_receiver *r, in_status in, syn_io_status out) {
    if (atomic_load_explicit(&r->stop, memory_order_acquire)) {
        return 1;
    }
    if (out == SYN_IO_IDLE && syn_ring_peek_len(r->out) >= 0) {
        return 1;
    }
    return in == IN_STALLED && syn_ring_has_room(r->in, r->stalled_len);
}

static void sleep_until_ready(syn_receiver *r, in_status in, syn_io_status out) {
    short events = (short)((in == IN_BLOCKED ? POLLIN : 0) | (out == SYN_IO_BLOCKED ? POLLOUT : 0));
    struct pollfd pfd[2] = {
        {.fd = r->pump_waiter.fd, .events = POLLIN},
        {.fd = events ? r->fd : -1, .events = events},
    };
    atomic_store_explicit(&r->pump_wants_room, in == IN_STALLED, memory_order_relaxed);
    syn_waiter_prepare(&r->pump_waiter); /* Dekker handshake: see wake.h */
    int timeout = work_waiting(r, in, out) ? 0 : -1;
    poll(pfd, 2, timeout);
    syn_waiter_finish(&r->pump_waiter);
    atomic_store_explicit(&r->pump_wants_room, 0, memory_order_relaxed);
}

void *syn_receiver_main(void *arg) {
    syn_receiver *r = arg;
    for (;;) {
        if (atomic_load_explicit(&r->stop, memory_order_acquire)) {
            set_reason(r, "closed by the application");
            break;
        }
        in_status in = pump_inbound(r);
        if (in == IN_CLOSED) {
            break;
        }
        syn_io_status out = pump_outbound(r);
        if (out == SYN_IO_ERROR) {
            break;
        }
        if (in != IN_BUSY) {
            sleep_until_ready(r, in, out);
        }
    }
    syn_close_socket(r->fd);
    r->fd = -1;
    atomic_store_explicit(&r->state, SYN_STREAM_CLOSED, memory_order_release);
    syn_waiter_kick(&r->data_waiter); /* a waiting consumer learns that the stream closed */
    return NULL;
}
