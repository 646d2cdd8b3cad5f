/* Validation of the 32-byte frame header, shared by both pumps. */
#ifndef SYN_FRAME_CHECK_H
#define SYN_FRAME_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/* Checks magic, version and payload length against max_payload. Returns SYN_OK and stores the
 * payload length, or returns SYN_EINVAL with a human-readable reason in `reason`. */
int syn_frame_check_header(const uint8_t *header, uint32_t max_payload, uint32_t *payload_len,
                           char *reason, size_t reason_cap);

#endif
