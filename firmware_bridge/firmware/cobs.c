#include "cobs.h"

size_t cobs_encode(const uint8_t *in, size_t length, uint8_t *out, size_t out_capacity)
{
    size_t read = 0, write = 1, code_at = 0;
    uint8_t code = 1;
    if (out_capacity == 0) {
        return 0;
    }
    while (read < length) {
        if (write >= out_capacity) {
            return 0;
        }
        if (in[read] == 0) {
            out[code_at] = code;
            code = 1;
            code_at = write++;
        } else {
            out[write++] = in[read];
            ++code;
            if (code == 0xFF) {
                out[code_at] = code;
                code = 1;
                code_at = write;
                if (read + 1 < length) {
                    ++write;
                }
            }
        }
        ++read;
    }
    if (code_at < write) { /* else the input ended exactly at a full 254-byte block: no final code byte */
        out[code_at] = code;
    }
    return write;
}

long cobs_decode(const uint8_t *in, size_t length, uint8_t *out, size_t out_capacity)
{
    size_t read = 0, write = 0;
    while (read < length) {
        uint8_t code = in[read++];
        uint8_t i;
        if (code == 0) {
            return -1;
        }
        for (i = 1; i < code; ++i) {
            if (read >= length || in[read] == 0 || write >= out_capacity) {
                return -1;
            }
            out[write++] = in[read++];
        }
        if (code != 0xFF && read < length) {
            if (write >= out_capacity) {
                return -1;
            }
            out[write++] = 0;
        }
    }
    return (long)write;
}
