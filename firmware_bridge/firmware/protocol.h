/* Serial protocol v1, device side (docs/PROTOCOL.md). Portable C99, no heap. */
#ifndef HAND_PROTOCOL_H
#define HAND_PROTOCOL_H
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1u
#define PROTO_MAX_JOINTS 16u
#define PROTO_HEADER_SIZE 9u
#define PROTO_CRC_SIZE 2u
#define PROTO_MAX_PAYLOAD 255u
#define PROTO_MAX_BODY (PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD + PROTO_CRC_SIZE)
#define PROTO_MAX_ENCODED (PROTO_MAX_BODY + PROTO_MAX_BODY / 254u + 1u)
#define PROTO_CLEAR_ESTOP_MAGIC 0xC1EAu

/* Header layout (byte offsets into the body), docs/PROTOCOL.md "Framing". */
#define PROTO_HDR_VERSION 0u
#define PROTO_HDR_TYPE 1u
#define PROTO_HDR_SEQ 2u
#define PROTO_HDR_TIMESTAMP 4u /* u32 as two little-endian u16 halves */
#define PROTO_HDR_PAYLOAD_LEN 8u

/* Payload layouts (byte offsets), docs/PROTOCOL.md "Messages". Joint values are i16/u16: 2 bytes each. */
#define PROTO_JOINT_VALUE_SIZE 2u
#define PROTO_CMD_FLAGS 0u
#define PROTO_CMD_FLAG_ACTIVE 0x01u /* the runtime's gate is open: follow the targets */
#define PROTO_CMD_FLAG_SAFE 0x02u   /* go-safe: ease to the configured safe pose now (wins over ACTIVE) */
#define PROTO_CMD_CONFIDENCE 1u
#define PROTO_CMD_COUNT 2u
#define PROTO_CMD_TARGETS 3u /* n x i16 */
#define PROTO_CFG_WATCHDOG 0u
#define PROTO_CFG_COUNT 2u
#define PROTO_CFG_LIMITS 3u /* n x PROTO_CFG_LIMIT_SIZE */
#define PROTO_CFG_LIMIT_SIZE 8u
#define PROTO_CFG_LIMIT_MIN 0u
#define PROTO_CFG_LIMIT_MAX 2u
#define PROTO_CFG_LIMIT_SLEW 4u
#define PROTO_CFG_LIMIT_SAFE 6u
#define PROTO_CLEAR_ESTOP_SIZE 2u
#define PROTO_TEL_ACKED_SEQ 0u
#define PROTO_TEL_ACKED_TYPE 2u
#define PROTO_TEL_STATE 3u
#define PROTO_TEL_FAULTS 4u
#define PROTO_TEL_COUNT 6u
#define PROTO_TEL_POSITIONS 7u /* n x i16 */
#define PROTO_FAULT_CODE 0u
#define PROTO_FAULT_DETAIL 1u
#define PROTO_FAULT_SIZE 3u

/* The watchdog range a device accepts, from CONFIGURE and from every other way in (docs/PROTOCOL.md). */
#define PROTO_WATCHDOG_MIN_MS 20u
#define PROTO_WATCHDOG_MAX_MS 2000u

enum proto_type {
    MSG_JOINT_COMMAND = 0x01,
    MSG_HEARTBEAT = 0x02,
    MSG_ESTOP = 0x03,
    MSG_CLEAR_ESTOP = 0x04,
    MSG_CONFIGURE = 0x05,
    MSG_TELEMETRY = 0x81,
    MSG_FAULT = 0x82
};

enum proto_drop {
    DROP_COBS = 0,
    DROP_TOO_SHORT,
    DROP_TOO_LONG,
    DROP_CRC,
    DROP_VERSION,
    DROP_LENGTH,
    DROP_UNKNOWN_TYPE,
    DROP_COUNT
};

typedef struct {
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint32_t timestamp_us;
    uint8_t payload_len;
    uint8_t payload[PROTO_MAX_PAYLOAD];
} proto_frame;

typedef struct {
    uint8_t buffer[PROTO_MAX_ENCODED];
    size_t fill;
    int overflow;
    uint32_t frames;
    uint32_t drops[DROP_COUNT];
    uint8_t last_bad_version;
} proto_decoder;

/* Every function below accepts NULL pointers and does nothing with them (returns 0). */
void proto_decoder_init(proto_decoder *decoder);

/* Feeds one byte; returns 1 and fills *frame when a whole valid frame ends with this byte, else 0.
 * Never fails on any input: bad frames are dropped and counted in decoder->drops. */
int proto_decoder_feed(proto_decoder *decoder, uint8_t byte, proto_frame *frame);

/* Encodes a frame onto the wire (COBS + 0x00); returns the byte count, 0 if `capacity` is too small. */
size_t proto_encode(const proto_frame *frame, uint8_t *out, size_t capacity);

/* Little-endian helpers for payloads. */
void proto_put_u16(uint8_t *at, uint16_t value);
uint16_t proto_get_u16(const uint8_t *at);
int16_t proto_get_i16(const uint8_t *at);

#endif
