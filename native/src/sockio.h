/* Socket helpers shared by the pumps: non-blocking writes of queued frames, closing, reasons. */
#ifndef SYN_SOCKIO_H
#define SYN_SOCKIO_H

#include <stddef.h>
#include <stdint.h>

#include "ring_impl.h"

typedef enum {
    SYN_IO_IDLE,    /* nothing left to write */
    SYN_IO_BLOCKED, /* the socket buffer is full: wait for POLLOUT */
    SYN_IO_ERROR,   /* the socket failed; *err holds errno */
} syn_io_status;

typedef struct {
    uint64_t frames; /* records written completely */
    uint64_t bytes;  /* bytes written, partial records included */
} syn_io_progress;

/* Writes the records of `queue` (one frame each) to the non-blocking socket fd with sendmsg,
 * several records per call. *front_sent is how much of the oldest record an earlier call already
 * wrote; it is updated so that a partially written frame resumes where it stopped. The caller
 * must be the queue's consumer. Adds what was written to *progress. */
syn_io_status syn_write_records(int fd, syn_ring *queue, size_t *front_sent,
                                syn_io_progress *progress, int *err);

/* Checks that fd is a stream socket and makes it non-blocking (TCP also gets TCP_NODELAY).
 * Returns SYN_OK, SYN_EINVAL (not a stream socket) or SYN_ESYS. */
int syn_prepare_socket(int fd);

/* Ends the connection even if other descriptors share it (shutdown), then closes fd. */
void syn_close_socket(int fd);

/* Formats "what: strerror(err)" into reason. */
void syn_format_errno(char *reason, size_t cap, const char *what, int err);

#endif
