/* libFuzzer target: the app's sparse-frame scanner (grid.c, syn_sparse_scan).
 * Input: u16-length-prefixed frames (as fuzz/seeds.py writes them), laid end to end for the
 * scanner. Checked independently here: each frame the scanner passes has a valid header, a
 * payload of exactly 16 + 8 n bytes within the limit, n <= n_above and strictly ascending
 * indices, and its head says what the frame says. ASan + UBSan watch every read. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "grid.h"

#define MAX_FRAMES  64
#define MAX_PAYLOAD (1u << 20)

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t lengths[MAX_FRAMES];
    size_t n = 0, at = 0, total = 0;
    uint8_t *joined = malloc(size ? size : 1);
    assert(joined != NULL);
    while (at + 2 <= size && n < MAX_FRAMES) {
        size_t len = (size_t)data[at] | (size_t)data[at + 1] << 8;
        at += 2;
        if (len > size - at) {
            len = size - at;
        }
        memcpy(joined + total, data + at, len);
        lengths[n++] = len;
        total += len;
        at += len;
    }
    /* An exact-size copy, so that ASan sees any read past the frames. */
    uint8_t *buf = malloc(total ? total : 1);
    assert(buf != NULL);
    memcpy(buf, joined, total);
    free(joined);
    syn_sparse_head heads[MAX_FRAMES];
    size_t good = syn_sparse_scan(buf, total, lengths, n, MAX_PAYLOAD, heads);
    assert(good <= n);
    const uint8_t *frame = buf;
    for (size_t i = 0; i < good; i++) {
        uint64_t len = lengths[i];
        assert(len >= SYN_FRAME_HEADER_SIZE + SYN_SPARSE_FIXED_SIZE);
        assert(memcmp(frame, "SYNP", 4) == 0 && frame[4] == 1 && frame[5] == 0);
        assert(frame[6] == SYN_MSG_SPARSE_ACTIVATIONS && frame[7] == 0);
        uint32_t payload = le32(frame + SYN_FRAME_LENGTH_OFFSET);
        assert(payload <= MAX_PAYLOAD && payload == len - SYN_FRAME_HEADER_SIZE);
        uint32_t count = le32(frame + SYN_FRAME_HEADER_SIZE + 8);
        assert(count == heads[i].n && payload == SYN_SPARSE_FIXED_SIZE + 8ull * count);
        assert(heads[i].n <= heads[i].n_above);
        assert(heads[i].site_id == le32(frame + SYN_FRAME_HEADER_SIZE));
        const uint8_t *indices = frame + SYN_FRAME_HEADER_SIZE + SYN_SPARSE_FIXED_SIZE;
        for (uint32_t k = 1; k < count; k++) {
            assert(le32(indices + 4 * (k - 1)) < le32(indices + 4 * k));
        }
        frame += len;
    }
    free(buf);
    return 0;
}
