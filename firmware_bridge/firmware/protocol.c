#include "protocol.h"

#include "cobs.h"
#include "crc16.h"

void proto_put_u16(uint8_t *at, uint16_t value)
{
    at[0] = (uint8_t)(value & 0xFFu);
    at[1] = (uint8_t)(value >> 8);
}

uint16_t proto_get_u16(const uint8_t *at)
{
    return (uint16_t)(at[0] | (uint16_t)(at[1] << 8));
}

int16_t proto_get_i16(const uint8_t *at)
{
    uint16_t raw = proto_get_u16(at);
    return (raw & 0x8000u) ? (int16_t)(-(int32_t)((~raw & 0xFFFFu) + 1u)) : (int16_t)raw;
}

void proto_decoder_init(proto_decoder *decoder)
{
    size_t i;
    if (decoder == NULL) {
        return;
    }
    decoder->fill = 0;
    decoder->overflow = 0;
    decoder->frames = 0;
    decoder->last_bad_version = 0;
    for (i = 0; i < DROP_COUNT; ++i) {
        decoder->drops[i] = 0;
    }
}

static int known_type(uint8_t type)
{
    return type == MSG_JOINT_COMMAND || type == MSG_HEARTBEAT || type == MSG_ESTOP || type == MSG_CLEAR_ESTOP ||
           type == MSG_CONFIGURE || type == MSG_TELEMETRY || type == MSG_FAULT;
}

static int finish_frame(proto_decoder *decoder, proto_frame *frame)
{
    uint8_t body[PROTO_MAX_BODY];
    long length = cobs_decode(decoder->buffer, decoder->fill, body, sizeof body);
    uint16_t crc;
    if (length < 0) {
        decoder->drops[DROP_COBS]++;
        return 0;
    }
    if ((size_t)length < PROTO_HEADER_SIZE + PROTO_CRC_SIZE) {
        decoder->drops[DROP_TOO_SHORT]++;
        return 0;
    }
    crc = crc16_ccitt_false(body, (size_t)length - PROTO_CRC_SIZE);
    if (crc != proto_get_u16(&body[(size_t)length - PROTO_CRC_SIZE])) {
        decoder->drops[DROP_CRC]++;
        return 0;
    }
    if (body[PROTO_HDR_VERSION] != PROTO_VERSION) {
        decoder->drops[DROP_VERSION]++;
        decoder->last_bad_version = body[PROTO_HDR_VERSION];
        return 0;
    }
    if ((size_t)body[PROTO_HDR_PAYLOAD_LEN] != (size_t)length - PROTO_HEADER_SIZE - PROTO_CRC_SIZE) {
        decoder->drops[DROP_LENGTH]++;
        return 0;
    }
    if (!known_type(body[PROTO_HDR_TYPE])) {
        decoder->drops[DROP_UNKNOWN_TYPE]++;
        return 0;
    }
    frame->version = body[PROTO_HDR_VERSION];
    frame->type = body[PROTO_HDR_TYPE];
    frame->seq = proto_get_u16(&body[PROTO_HDR_SEQ]);
    frame->timestamp_us = (uint32_t)proto_get_u16(&body[PROTO_HDR_TIMESTAMP]) |
                          ((uint32_t)proto_get_u16(&body[PROTO_HDR_TIMESTAMP + 2u]) << 16);
    frame->payload_len = body[PROTO_HDR_PAYLOAD_LEN];
    {
        size_t i;
        for (i = 0; i < frame->payload_len; ++i) {
            frame->payload[i] = body[PROTO_HEADER_SIZE + i];
        }
    }
    decoder->frames++;
    return 1;
}

int proto_decoder_feed(proto_decoder *decoder, uint8_t byte, proto_frame *frame)
{
    int complete = 0;
    if (decoder == NULL || frame == NULL) {
        return 0;
    }
    if (byte == 0) {
        if (decoder->overflow) {
            decoder->drops[DROP_TOO_LONG]++;
        } else if (decoder->fill > 0) {
            complete = finish_frame(decoder, frame);
        }
        decoder->fill = 0;
        decoder->overflow = 0;
        return complete;
    }
    if (decoder->overflow) {
        return 0;
    }
    if (decoder->fill >= sizeof decoder->buffer) {
        decoder->overflow = 1;
        decoder->fill = 0;
        return 0;
    }
    decoder->buffer[decoder->fill++] = byte;
    return 0;
}

size_t proto_encode(const proto_frame *frame, uint8_t *out, size_t capacity)
{
    uint8_t body[PROTO_MAX_BODY];
    size_t length, i, encoded;
    if (frame == NULL || out == NULL) {
        return 0;
    }
    length = PROTO_HEADER_SIZE + frame->payload_len;
    body[PROTO_HDR_VERSION] = frame->version;
    body[PROTO_HDR_TYPE] = frame->type;
    proto_put_u16(&body[PROTO_HDR_SEQ], frame->seq);
    proto_put_u16(&body[PROTO_HDR_TIMESTAMP], (uint16_t)(frame->timestamp_us & 0xFFFFu));
    proto_put_u16(&body[PROTO_HDR_TIMESTAMP + 2u], (uint16_t)(frame->timestamp_us >> 16));
    body[PROTO_HDR_PAYLOAD_LEN] = frame->payload_len;
    for (i = 0; i < frame->payload_len; ++i) {
        body[PROTO_HEADER_SIZE + i] = frame->payload[i];
    }
    proto_put_u16(&body[length], crc16_ccitt_false(body, length));
    length += PROTO_CRC_SIZE;
    if (capacity < 1) {
        return 0;
    }
    encoded = cobs_encode(body, length, out, capacity - 1);
    if (encoded == 0) {
        return 0;
    }
    out[encoded] = 0;
    return encoded + 1;
}
