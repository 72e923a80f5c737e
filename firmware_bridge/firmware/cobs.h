/* Consistent Overhead Byte Stuffing (Cheshire & Baker 1999). No heap, bounded buffers. */
#ifndef HAND_COBS_H
#define HAND_COBS_H
#include <stddef.h>
#include <stdint.h>

/* Encodes `length` bytes into `out` (capacity `out_capacity`); returns the encoded length, 0 if it does not fit.
 * The output contains no 0x00 byte; the caller appends the 0x00 frame delimiter. */
size_t cobs_encode(const uint8_t *in, size_t length, uint8_t *out, size_t out_capacity);

/* Decodes one frame (without its delimiter); returns the decoded length, or -1 on malformed input or overflow. */
long cobs_decode(const uint8_t *in, size_t length, uint8_t *out, size_t out_capacity);

#endif
