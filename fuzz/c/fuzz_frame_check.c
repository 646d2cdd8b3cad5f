/* libFuzzer target: the frame header check both pumps make before buffering a payload byte.
 * Input: u32 max_payload (little-endian), then the 32-byte header (zero-padded when short).
 * A header that passes must have the magic, version 1 and a length within max_payload; a header
 * that fails must come with a NUL-terminated reason inside the buffer. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "errors.h"
#include "frame.h"
#include "frame_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t input[4 + SYN_FRAME_HEADER_SIZE] = {0};
    memcpy(input, data, size < sizeof input ? size : sizeof input);
    uint32_t max_payload;
    memcpy(&max_payload, input, 4);
    const uint8_t *header = input + 4;
    char reason[SYN_REASON_MAX];
    memset(reason, 'x', sizeof reason);
    uint32_t payload_len = 0xdeadbeef;
    int rc = syn_frame_check_header(header, max_payload, &payload_len, reason, sizeof reason);
    if (rc == SYN_OK) {
        uint32_t length;
        memcpy(&length, header + SYN_FRAME_LENGTH_OFFSET, 4);
        assert(memcmp(header, "SYNP", 4) == 0);
        assert(header[4] == SYN_PROTOCOL_VERSION && header[5] == 0);
        assert(payload_len == length && length <= max_payload);
    } else {
        assert(rc == SYN_EINVAL);
        assert(memchr(reason, '\0', sizeof reason) != NULL);
    }
    return 0;
}
