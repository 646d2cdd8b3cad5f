/* Non-blocking vectored writes of queued frames (see sockio.h). */
#include "sockio.h"

#include "spans.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Records per sendmsg call; each record contributes at most two iovecs. */
#define RECORDS_PER_WRITE 32

syn_io_status syn_write_records(int fd, syn_ring *queue, size_t *front_sent,
                                syn_io_progress *progress, int *err) {
    for (;;) {
        struct iovec iov[2 * RECORDS_PER_WRITE];
        size_t lengths[RECORDS_PER_WRITE];
        uint64_t ends[RECORDS_PER_WRITE];
        size_t records = 0, iovs = 0, total = 0;

        syn_ring_cursor cursor = syn_ring_read_begin(queue);
        syn_span spans[2], rest[2];
        while (records < RECORDS_PER_WRITE) {
            int64_t len = syn_ring_read_next(queue, &cursor, spans);
            if (len < 0) {
                break;
            }
            syn_spans_skip(spans, records == 0 ? *front_sent : 0, rest);
            for (int i = 0; i < 2; i++) {
                if (rest[i].len != 0) {
                    iov[iovs].iov_base = (void *)rest[i].base;
                    iov[iovs].iov_len = rest[i].len;
                    total += rest[i].len;
                    iovs++;
                }
            }
            lengths[records] = (size_t)len - (records == 0 ? *front_sent : 0);
            ends[records] = cursor.pos;
            records++;
        }
        if (records == 0) {
            return SYN_IO_IDLE;
        }

        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = iovs};
        ssize_t written = iovs == 0 ? 0 : sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (written < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return SYN_IO_BLOCKED;
            }
            *err = errno;
            return SYN_IO_ERROR;
        }

        /* Consume the records written completely; remember how far into the next one we got. */
        size_t left = (size_t)written;
        size_t done = 0;
        while (done < records && left >= lengths[done]) {
            left -= lengths[done];
            done++;
        }
        if (done > 0) {
            syn_ring_release_to(queue, ends[done - 1]);
            *front_sent = 0;
        }
        *front_sent += left;
        progress->frames += done;
        progress->bytes += (uint64_t)written;
        if ((size_t)written < total) {
            return SYN_IO_BLOCKED; /* the socket buffer filled up */
        }
    }
}

void syn_close_socket(int fd) {
    shutdown(fd, SHUT_RDWR);
    close(fd);
}

void syn_format_errno(char *reason, size_t cap, const char *what, int err) {
    char buffer[128];
    const char *text = strerror_r(err, buffer, sizeof buffer); /* GNU variant (_GNU_SOURCE) */
    snprintf(reason, cap, "%s: %s", what, text);
}

/* The socket must be a stream socket; it becomes non-blocking, and TCP gets TCP_NODELAY so that
 * small CONTROL_ACK frames are not held back by Nagle's algorithm. */
int syn_prepare_socket(int fd) {
    int type = 0, domain = 0;
    socklen_t size = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) != 0) {
        return SYN_ESYS;
    }
    if (type != SOCK_STREAM) {
        return SYN_EINVAL;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        return SYN_ESYS;
    }
    size = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &size) == 0 &&
        (domain == AF_INET || domain == AF_INET6)) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return SYN_OK;
}
