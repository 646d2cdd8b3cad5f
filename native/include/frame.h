/* The part of the wire contract the pumps check: the 32-byte little-endian frame header.
 *
 * Declaration-only (read into ffi.cdef). docs/PROTOCOL.md specifies the rest of the header;
 * the pumps look at the magic, the version and the payload length, nothing else.
 *   bytes 0-3   magic "SYNP"
 *   bytes 4-5   u16 protocol version (must be SYN_PROTOCOL_VERSION)
 *   bytes 6-7   u16 message type (not checked here: unknown types are skipped by the codec)
 *   bytes 8-11  u32 payload length; the frame is SYN_FRAME_HEADER_SIZE + length bytes
 *   bytes 12-31 fields the pumps do not read
 */
#ifndef SYN_FRAME_H
#define SYN_FRAME_H

#define SYN_FRAME_MAGIC         0x504E5953 /* "SYNP" read as a little-endian u32 */
#define SYN_PROTOCOL_VERSION    1
#define SYN_FRAME_HEADER_SIZE   32
#define SYN_FRAME_LENGTH_OFFSET 8
#define SYN_DEFAULT_MAX_PAYLOAD 16777216
#define SYN_REASON_MAX          160 /* bytes for a close reason, NUL included */

#endif
