/* Frame header validation: the checks a pump makes before it buffers a single payload byte. */
#include "frame_check.h"

#include <stdio.h>

#include "errors.h"

static uint32_t read_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t read_le16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}

int syn_frame_check_header(const uint8_t *header, uint32_t max_payload, uint32_t *payload_len,
                           char *reason, size_t reason_cap) {
    if (read_le32(header) != SYN_FRAME_MAGIC) {
        snprintf(reason, reason_cap, "bad magic %02x %02x %02x %02x (expected \"SYNP\")", header[0],
                 header[1], header[2], header[3]);
        return SYN_EINVAL;
    }
    uint16_t version = read_le16(header + 4);
    if (version != SYN_PROTOCOL_VERSION) {
        snprintf(reason, reason_cap, "unsupported protocol version %u (this build speaks %u)",
                 (unsigned)version, (unsigned)SYN_PROTOCOL_VERSION);
        return SYN_EINVAL;
    }
    uint32_t length = read_le32(header + SYN_FRAME_LENGTH_OFFSET);
    if (length > max_payload) {
        snprintf(reason, reason_cap, "payload of %lu bytes exceeds the %lu-byte limit",
                 (unsigned long)length, (unsigned long)max_payload);
        return SYN_EINVAL;
    }
    *payload_len = length;
    return SYN_OK;
}
