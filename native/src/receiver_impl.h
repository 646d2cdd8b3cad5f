/* The receiver pump's state, shared by its public API (receiver.c) and its thread
 * (receiver_loop.c).
 *
 * Threads: the pump thread (producer of `in`, consumer of `out`), one consumer of `in`
 * (drain/wait), one producer of `out` (send), and any thread for stats/close.
 *
 * Inbound path. The pump recv()s into a fixed staging buffer and checks each frame header there
 * before it reserves ring space. A frame wholly in the staging buffer is pushed with one copy; a
 * frame that continues past it gets its ring record reserved, the staged part copied in, and
 * the rest read straight into the ring (readv into the reserved spans). While frames are large
 * the pump reads only a few KiB into the staging buffer at a time, so that most of each large
 * frame takes the direct path and is copied by the kernel alone. When the ring has no room for the
 * next frame the pump stops reading, the kernel's receive buffer fills, and TCP flow control pushes
 * back on the sender.
 */
#ifndef SYN_RECEIVER_IMPL_H
#define SYN_RECEIVER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "pumps.h"
#include "ring_impl.h"
#include "wake.h"

/* Staging buffer for recv(); the part of a frame beyond it is read straight into the ring. */
#define SYN_STAGE_BYTES (256u * 1024u)
/* Frames at least this long are worth reading straight into the ring: after one, the pump reads
 * only SYN_PEEK_READ bytes into the staging buffer (the next header and a little more). */
#define SYN_DIRECT_READ_MIN (16u * 1024u)
#define SYN_PEEK_READ       4096u

struct syn_receiver {
    int fd;        /* -1 once the pump has closed it */
    syn_ring *in;  /* pump -> consumer: whole frames */
    syn_ring *out; /* send -> pump: frames to write */
    uint32_t max_payload;
    uint64_t max_out_frame;

    pthread_t thread;
    pthread_mutex_t close_lock; /* serialises close/join */
    int joined;
    _Atomic int stop;
    _Atomic uint32_t state;      /* SYN_STREAM_*; CLOSED is stored (release) after reason */
    char reason[SYN_REASON_MAX]; /* why the stream closed */

    syn_waiter pump_waiter;      /* the pump sleeps here: send, drain (when stalled), close */
    syn_waiter data_waiter;      /* wait() sleeps here: the pump wakes it after pushing */
    _Atomic int pump_wants_room; /* the pump is stalled on a full ring */

    /* Pump only. */
    uint8_t *stage;
    size_t stage_start, stage_end;
    int direct;       /* reading the rest of a frame straight into reserved ring space */
    int large_frames; /* the last frame was at least SYN_DIRECT_READ_MIN bytes */
    syn_mut_span direct_spans[2];
    size_t direct_len, direct_have;
    size_t stalled_len; /* size of the frame waiting for ring room */
    size_t out_front_sent;

    _Atomic uint64_t frames_in, bytes_in, frames_out, bytes_out;
};

void *syn_receiver_main(void *receiver);

#endif
