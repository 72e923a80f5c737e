/* The C codec as a line-oriented tool, so the same test vectors and fuzz runs check both implementations.
 *
 *   codec decode   stdin: one hex string per line, fed in order into ONE streaming decoder ("RESET" starts a
 *                  new one); stdout: "FRAME <type> <seq> <timestamp> <payload-hex>" per decoded frame and,
 *                  after each line, "STATS <frames> <cobs> <too_short> <too_long> <crc> <version> <length> <type>"
 *   codec encode   stdin: "<version> <type> <seq> <timestamp> <payload-hex>" per line; stdout: wire hex
 *   codec fuzz N SEED   N bytes of valid frames, garbage, bit flips and truncations through the decoder;
 *                  prints "FUZZ sent=<frames> accepted=<frames> corrupted=<accepted frames never sent> drops=<n>" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../protocol.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static size_t parse_hex(const char *text, uint8_t *out, size_t capacity)
{
    size_t n = 0;
    while (text[0] && text[1] && hexval(text[0]) >= 0 && hexval(text[1]) >= 0 && n < capacity) {
        out[n++] = (uint8_t)(hexval(text[0]) * 16 + hexval(text[1]));
        text += 2;
    }
    return n;
}

static void print_stats(const proto_decoder *d)
{
    int i;
    printf("STATS %lu", (unsigned long)d->frames);
    for (i = 0; i < DROP_COUNT; ++i) {
        printf(" %lu", (unsigned long)d->drops[i]);
    }
    printf("\n");
}

static int run_decode(void)
{
    static char line[1 << 16];
    static uint8_t bytes[1 << 15];
    proto_decoder decoder;
    proto_decoder_init(&decoder);
    while (fgets(line, sizeof line, stdin)) {
        size_t n, i;
        if (strncmp(line, "RESET", 5) == 0) {
            proto_decoder_init(&decoder);
            continue;
        }
        n = parse_hex(line, bytes, sizeof bytes);
        for (i = 0; i < n; ++i) {
            proto_frame frame;
            if (proto_decoder_feed(&decoder, bytes[i], &frame)) {
                unsigned k;
                printf("FRAME %u %u %lu ", frame.type, frame.seq, (unsigned long)frame.timestamp_us);
                for (k = 0; k < frame.payload_len; ++k) {
                    printf("%02x", frame.payload[k]);
                }
                printf("\n");
            }
        }
        print_stats(&decoder);
    }
    return 0;
}

static int run_encode(void)
{
    char line[1024], payload_hex[600];
    unsigned version, type, seq;
    unsigned long stamp;
    while (fgets(line, sizeof line, stdin)) {
        proto_frame frame;
        uint8_t wire[PROTO_MAX_ENCODED + 1];
        size_t n, i;
        payload_hex[0] = 0;
        if (sscanf(line, "%u %u %u %lu %599s", &version, &type, &seq, &stamp, payload_hex) < 4) {
            fprintf(stderr, "codec encode: bad line\n");
            return 2;
        }
        frame.version = (uint8_t)version;
        frame.type = (uint8_t)type;
        frame.seq = (uint16_t)seq;
        frame.timestamp_us = (uint32_t)stamp;
        frame.payload_len = (uint8_t)parse_hex(payload_hex, frame.payload, PROTO_MAX_PAYLOAD);
        n = proto_encode(&frame, wire, sizeof wire);
        for (i = 0; i < n; ++i) {
            printf("%02x", wire[i]);
        }
        printf("\n");
    }
    return 0;
}

/* xorshift32: deterministic, no libc rand() differences between platforms */
static uint32_t rng_state;
static uint32_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

#define HISTORY 64
static int run_fuzz(unsigned long total, uint32_t seed)
{
    static proto_frame sent[HISTORY];
    unsigned long produced = 0, sent_count = 0, accepted = 0, corrupted = 0;
    proto_decoder decoder;
    rng_state = seed ? seed : 1u;
    proto_decoder_init(&decoder);
    while (produced < total) {
        uint8_t wire[PROTO_MAX_ENCODED + 1];
        size_t n = 0, i;
        uint32_t kind = next_random() % 4;
        if (kind == 0) { /* random garbage */
            n = 1 + next_random() % 64;
            for (i = 0; i < n; ++i) wire[i] = (uint8_t)next_random();
        } else { /* a valid frame, sometimes damaged */
            proto_frame *f = &sent[sent_count % HISTORY];
            f->version = PROTO_VERSION;
            f->type = (uint8_t)((next_random() % 2) ? MSG_JOINT_COMMAND : MSG_TELEMETRY);
            f->seq = (uint16_t)next_random();
            f->timestamp_us = next_random();
            f->payload_len = (uint8_t)(next_random() % 40);
            for (i = 0; i < f->payload_len; ++i) f->payload[i] = (uint8_t)next_random();
            n = proto_encode(f, wire, sizeof wire);
            sent_count++;
            if (kind == 2) { /* flip 1-3 bits */
                uint32_t flips = 1 + next_random() % 3, k;
                for (k = 0; k < flips; ++k) wire[next_random() % n] ^= (uint8_t)(1u << (next_random() % 8));
            } else if (kind == 3 && n > 2) { /* truncate */
                n = 1 + next_random() % (n - 1);
            }
        }
        for (i = 0; i < n; ++i) {
            proto_frame got;
            if (proto_decoder_feed(&decoder, wire[i], &got)) {
                unsigned long back;
                int found = 0;
                accepted++;
                for (back = 0; back < HISTORY && back < sent_count && !found; ++back) {
                    const proto_frame *s = &sent[(sent_count - 1 - back) % HISTORY];
                    found = s->type == got.type && s->seq == got.seq && s->timestamp_us == got.timestamp_us &&
                            s->payload_len == got.payload_len &&
                            memcmp(s->payload, got.payload, got.payload_len) == 0;
                }
                if (!found) corrupted++;
            }
        }
        produced += n;
    }
    {
        unsigned long drops = 0;
        int d;
        for (d = 0; d < DROP_COUNT; ++d) drops += decoder.drops[d];
        printf("FUZZ bytes=%lu sent=%lu accepted=%lu corrupted=%lu drops=%lu\n", produced, sent_count, accepted,
               corrupted, drops);
    }
    return corrupted == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "decode") == 0) return run_decode();
    if (argc >= 2 && strcmp(argv[1], "encode") == 0) return run_encode();
    if (argc >= 4 && strcmp(argv[1], "fuzz") == 0) {
        return run_fuzz(strtoul(argv[2], NULL, 10), (uint32_t)strtoul(argv[3], NULL, 10));
    }
    fprintf(stderr, "usage: %s decode | encode | fuzz N SEED\n", argv[0]);
    return 2;
}
